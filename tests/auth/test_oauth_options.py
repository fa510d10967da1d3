"""The ``--oauth-*`` flags: a secret is never taken from the command line, and a secret file must be owner-only."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernelstate.auth.oauth_options import SECRET_ENV, OAuthOptions
from kernelstate.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flag", ["--oauth-client-secret", "--oauth-secret"])
def test_a_secret_flag_is_refused(flag: str) -> None:
    result = subprocess.run([sys.executable, "-m", "kernelstate.cli", "serve", "app.py", "--oauth-provider", "github",
                             "--oauth-client-id", "x", flag, "hunter2"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "secrets never come from the command line" in result.stderr and SECRET_ENV in result.stderr


def test_serve_help_documents_the_oauth_flags() -> None:
    text = subprocess.run([sys.executable, "-m", "kernelstate.cli", "serve", "--help"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    for flag in ("--oauth-provider", "--oauth-issuer", "--oauth-client-id", "--oauth-client-secret-file",
                 "--oauth-scope", "--oauth-redirect-uri", "--oauth-authorize-url", "--oauth-token-url",
                 "--oauth-user-url", SECRET_ENV):
        assert flag in text, flag
    assert "--oauth-client-secret " not in text and "--oauth-secret" not in text


def test_the_secret_file_must_be_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0640\): chmod 600"):
        OAuthOptions("github", client_id="x", client_secret_file=str(secret))
    secret.chmod(0o600)
    assert OAuthOptions("github", client_id="x", client_secret_file=str(secret)).client_secret() == "from-the-file"
    with pytest.raises(ConfigError, match="cannot be read"):
        OAuthOptions("github", client_id="x", client_secret_file=str(tmp_path / "missing"))


def test_the_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    options = OAuthOptions("generic", issuer="https://op.example", client_id="x")
    with pytest.raises(ConfigError, match=f"set {SECRET_ENV} or give --oauth-client-secret-file"):
        options.client_secret()
    monkeypatch.setenv(SECRET_ENV, "from-the-env")
    assert options.client_secret() == "from-the-env"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"provider": "google"}, "must be one of generic, github, jupyterhub"),
    ({"provider": "generic", "client_id": "x"}, "needs --oauth-issuer"),
    ({"provider": "github"}, "needs --oauth-client-id"),
    ({"provider": "github", "client_id": "x", "issuer": "https://op.example"}, "is for --oauth-provider generic"),
    ({"provider": "generic", "issuer": "https://op.example", "client_id": "x", "token_url": "https://t"},
     "--oauth-token-url is for --oauth-provider github only"),
])
def test_invalid_combinations_say_what_to_do(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OAuthOptions(**kwargs)  # type: ignore[arg-type]


def test_plain_http_endpoints_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    with pytest.raises(ConfigError, match=r"--oauth-issuer must be an https:// URL; got 'http://op.example'"):
        OAuthOptions("generic", issuer="http://op.example", client_id="x")
    with pytest.raises(ConfigError, match="--oauth-token-url must be an https:// URL"):
        OAuthOptions("github", client_id="x", token_url="http://ghe.example/login/oauth/access_token")


def test_the_redirect_uri_must_be_the_callback_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelstate.auth.logins import LoginStore

    monkeypatch.setenv(SECRET_ENV, "x")
    options = OAuthOptions("github", client_id="x", redirect_uri="https://apps.example.org/dash/callback")
    with pytest.raises(ConfigError, match="must end in the server's callback path /dash/oauth_callback"):
        options.login_provider(LoginStore(), "/dash", 3600)
    fixed = OAuthOptions("github", client_id="x", redirect_uri="https://apps.example.org/dash/oauth_callback")
    assert fixed.login_provider(LoginStore(), "/dash", 3600).name == "github"
