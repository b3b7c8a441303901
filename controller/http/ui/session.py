"""The dashboard's sign-in: the API's bearer token in a cookie, and form tokens.

A person signs in with the same token the API takes; the token is kept in a cookie
that is ``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's
page sends it), scoped to ``/ui``. ``controller.http.access`` reads it for the
dashboard's routes only, so the API still takes bearer headers alone.

Every form carries a token bound to the session: an HMAC keyed by the signed-in
token itself, which only that browser and the daemons know, so it holds on every
member of a cluster and across restarts. A forged POST, even one a browser would
send with the cookie, lacks it and is refused before it acts. With nobody signed in
(authentication off) the key is a secret of this process instead. The sign-in form
is bound to a random nonce kept in a cookie of its own (double submit), so another
site cannot sign a visitor in as someone else.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = ["COOKIE", "LOGIN_COOKIE", "FormTokens", "cookie_safe"]

COOKIE = "modelreg_session"
LOGIN_COOKIE = "modelreg_login"  # the sign-in form's nonce
_SAFE = re.compile(r"[A-Za-z0-9._~+/=-]+")  # kept verbatim in a cookie, never quoted


def cookie_safe(token: str) -> bool:
    """Whether ``token`` can be kept in the session cookie as it is."""
    return _SAFE.fullmatch(token) is not None


class FormTokens:
    """Form (CSRF) tokens: keyed by the session, else by a secret of this process."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def issue(self, session: str | None) -> str:
        """The form token for ``session`` (the signed-in token; None: nobody)."""
        key = session.encode() if session else self._secret
        return hmac.new(key, b"modelreg form", hashlib.sha256).hexdigest()[:40]

    def check(self, session: str | None, sent: str | None) -> bool:
        """Whether ``sent`` is the form token of ``session``."""
        return bool(sent) and hmac.compare_digest(self.issue(session), str(sent))

    @staticmethod
    def nonce() -> str:
        """A sign-in form's nonce: in the form and in ``LOGIN_COOKIE``."""
        return secrets.token_urlsafe(24)

    @staticmethod
    def check_login(cookie: str | None, sent: str | None) -> bool:
        """The sign-in form's nonce came back in both the form and its cookie."""
        return bool(cookie) and bool(sent) and hmac.compare_digest(str(cookie), str(sent))
