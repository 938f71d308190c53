"""Device cookies (OWASP's answer to account lock-out): a browser that signed in successfully gets a
signed, long-lived cookie naming the account. At sign-in, the per-account limit counts tries from such a
browser in a bucket of its own, so someone guessing the password elsewhere locks out only the browsers
that never signed in, never the owner's."""

from __future__ import annotations

import secrets

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from .secrets import token_digest

SALT = "healthcrm-device-cookie"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _account(email: str) -> str:
    # A digest, so the cookie does not carry the address itself.
    return token_digest(email.strip().lower())[:32]


def new_device_cookie(email: str) -> str:
    """A signed value naming this account and a random device id."""
    return _serializer().dumps({"a": _account(email), "d": secrets.token_urlsafe(12)})


def device_id(raw: str | None, email: str) -> str | None:
    """The device id in `raw` if it is a genuine, unexpired cookie for `email`'s account, else None."""
    if not raw or not email:
        return None
    max_age = int(current_app.config["DEVICE_COOKIE_DAYS"]) * 24 * 3600
    try:
        value = _serializer().loads(raw, max_age=max_age)
    except BadSignature:
        return None
    if (
        not isinstance(value, dict)
        or value.get("a") != _account(email)
        or not isinstance(value.get("d"), str)
    ):
        return None
    return value["d"]
