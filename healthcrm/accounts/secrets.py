"""Passwords (argon2id, guessability checked offline with zxcvbn), random tokens (stored as SHA-256) and
the TOTP secret at rest (Fernet)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
# zxcvbn's scale: 0-2 fall to an online or a slow offline attack (common passwords, keyboard walks, a name
# with digits); 3 and up are "safely unguessable" against a slow-hash offline attack.
MIN_PASSWORD_SCORE = 3

_hashers: dict[bool, PasswordHasher] = {}
# Verified against when the email is unknown, so both answers take the same time.
_DUMMY_HASH: dict[bool, str] = {}


def _hasher() -> PasswordHasher:
    # Tests use argon2's cheapest profile; everything else the RFC 9106 low-memory profile (argon2id).
    cheap = bool(current_app.config.get("TESTING"))
    if cheap not in _hashers:
        params = profiles.CHEAPEST if cheap else profiles.RFC_9106_LOW_MEMORY
        _hashers[cheap] = PasswordHasher.from_parameters(params)
        _DUMMY_HASH[cheap] = _hashers[cheap].hash(secrets.token_hex(16))
    return _hashers[cheap]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher = _hasher()
    target = password_hash or _DUMMY_HASH[bool(current_app.config.get("TESTING"))]
    try:
        hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False
    return password_hash is not None


def password_problem(password: str, email: str | None = None, name: str | None = None) -> str | None:
    """A sentence saying what is wrong with a new password, or None.

    Besides length, zxcvbn estimates how guessable it is against common passwords, words, keyboard
    patterns, dates and the person's own name and email (`user_inputs`); below MIN_PASSWORD_SCORE it is
    refused with zxcvbn's own feedback, so the person knows what to change.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    if email and password.strip().lower() == email.strip().lower():
        return "Your password cannot be your email address."
    if len(set(password)) < 5:
        return "This password is too easy to guess; mix more different characters."
    estimate = zxcvbn(password, user_inputs=_personal_words(email, name))
    if estimate["score"] >= MIN_PASSWORD_SCORE:
        return None
    feedback = estimate["feedback"]
    sentences = [feedback["warning"] or "This password is too easy to guess.", *feedback["suggestions"]]
    return " ".join(sentence.strip() for sentence in sentences if sentence.strip())


def _personal_words(email: str | None, name: str | None) -> list[str]:
    """The person's email and name, whole and in parts, for zxcvbn to treat as easy to guess (the first
    words count as the easiest)."""
    local_part = (email or "").partition("@")[0]
    words = [value for value in (local_part, name, email) if value]
    for value in words[:]:
        words.extend(part for part in re.split(r"[\W_]+", value) if len(part) > 2)
    return words


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _fernet() -> Fernet:
    digest = hashlib.sha256(("totp-secret:" + current_app.config["SECRET_KEY"]).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def unseal(value: str) -> str | None:
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken:
        return None
