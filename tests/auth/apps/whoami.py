"""Who am I: the signed-in user, a claim and the access token, as the app sees them."""
import kernelstate as ks

ks.Column(
    ks.pane.Markdown(f"signed in as {ks.state.user}"),
    ks.pane.Str(f"email {ks.state.user_info.get('email')}"),
    ks.pane.Str(f"token {ks.state.access_token}"),
).servable(title="Who am I")
