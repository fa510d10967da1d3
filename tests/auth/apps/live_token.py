"""The access token as an open session sees it: shown by a periodic callback, refreshes counted."""
import kernelstate as ks

token = ks.pane.Str(f"token {ks.state.access_token}")
refreshed = ks.pane.Str("refreshed 0")
count = [0]


def show():
    token.object = f"token {ks.state.access_token}"


def on_refresh(new_token):
    count[0] += 1
    refreshed.object = f"refreshed {count[0]} same={new_token == ks.state.access_token}"


ks.state.add_periodic_callback(show, period=200)
ks.state.on_access_token_refreshed(on_refresh)
ks.Column(ks.pane.Markdown(f"signed in as {ks.state.user}"), token, refreshed).servable(title="Live token")
