"""The dashboard's sign-in: the API's bearer token in a cookie, and form tokens.

A person signs in with the same token the API takes; the token is kept in a cookie
that is ``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's
page sends it), scoped to ``/ui``. ``controller.http.access`` reads it for the
dashboard's routes only, so the API still takes bearer headers alone.

Every form carries a token bound to the session (an HMAC of the signed-in token, or
of the page's purpose when nobody is signed in, under a secret made when the app is
built): a forged POST, even one a browser would send with the cookie, lacks it and
is refused before it acts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["COOKIE", "FormTokens"]

COOKIE = "modelreg_session"


class FormTokens:
    """Form (CSRF) tokens under a secret of this process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def issue(self, session: str | None) -> str:
        """The form token for ``session`` (the signed-in token; None: nobody)."""
        subject = f"session:{session}" if session else "anonymous"
        return hmac.new(self._secret, subject.encode(), hashlib.sha256).hexdigest()[:40]

    def check(self, session: str | None, sent: str | None) -> bool:
        """Whether ``sent`` is the form token of ``session``."""
        return bool(sent) and hmac.compare_digest(self.issue(session), str(sent))

    def login(self) -> str:
        """The sign-in form's token (no session yet)."""
        return hmac.new(self._secret, b"login", hashlib.sha256).hexdigest()[:40]

    def check_login(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.login(), str(sent))
