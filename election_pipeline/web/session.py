"""Sign-in sessions of the triage page, without a table of their own.

The session cookie is ``<token id>.<expiry>.<signature>``: the id of the API token the
observer signed in with (``api_tokens.id``), the end of the session (Unix seconds) and the
HMAC-SHA256 of the first two, keyed by the token's stored hash (``api_tokens.token_hash``).
Only someone who knew the token could have made it, and revoking the token (or a new
token hash) ends every session made with it: each request looks the token up again.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
page sends it) and ``Secure`` when the request came over HTTPS.

Forms are protected against cross-site requests three ways: the cookie is ``SameSite=Strict``;
every ``POST`` carries a CSRF token in a hidden field, the HMAC of the session cookie keyed
by the token's hash (:func:`csrf_token`), compared in constant time; and a request whose
``Origin`` (or, without it, ``Referer``) names another site is refused. The sign-in form,
before any session exists, uses a random value kept in a short-lived cookie and repeated in
the form (double submit), plus the same origin check.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response
from sqlalchemy.orm import Session

from election_pipeline.db.models import ApiToken

#: The session cookie.
COOKIE = "ep_session"
#: The double-submit cookie of the sign-in form.
LOGIN_COOKIE = "ep_login"
#: How long the sign-in form's value lasts (seconds).
LOGIN_SECONDS = 3600


@dataclass(frozen=True)
class SignedIn:
    """The person behind a valid session: the token's id, name and role, the CSRF token of
    the session and when it ends (Unix seconds)."""

    token_id: str
    name: str
    role: str
    csrf: str
    expires: int


def _sign(key: str, message: str) -> str:
    return hmac.new(key.encode("ascii"), message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def make_cookie(token: ApiToken, hours: float, now: float | None = None) -> tuple[str, int]:
    """The cookie value of a new session for ``token`` lasting ``hours``, and its lifetime in seconds."""
    seconds = max(1, int(hours * 3600))
    expires = int(now if now is not None else time.time()) + seconds
    body = f"{token.id}.{expires}"
    return f"{body}.{_sign(token.token_hash, body)}", seconds


def csrf_token(token_hash: str, cookie: str) -> str:
    """The CSRF token of the session ``cookie``."""
    return _sign(token_hash, "csrf|" + cookie)


def read_session(db: Session, cookie: str | None, now: float | None = None) -> SignedIn | None:
    """The person signed in with ``cookie``, or ``None`` (missing, malformed, expired,
    forged, or its token revoked)."""
    if not cookie or len(cookie) > 300:
        return None
    parts = cookie.rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    token_id, expiry, signature = parts
    expires = int(expiry)
    if expires <= int(now if now is not None else time.time()):
        return None
    token = db.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return None
    if not hmac.compare_digest(signature, _sign(token.token_hash, f"{token_id}.{expiry}")):
        return None
    return SignedIn(token.id, token.name, token.role, csrf_token(token.token_hash, cookie), expires)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """Set a cookie of the page: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")


def new_login_value() -> str:
    """The random value of the sign-in form's double submit."""
    return secrets.token_urlsafe(24)


def same_origin(request: Request) -> bool:
    """Whether the request's ``Origin`` (or, without one, ``Referer``) is this site; a request
    with neither passes (the CSRF token still has to be right)."""
    here = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.strip().lower() == here
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == here
    return True


def same_value(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two form values (``False`` when either is missing)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))
