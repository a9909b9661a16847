"""The console's accounts: the people at the business who log in (not the contacts they write to).

Passwords are hashed with Argon2id (argon2-cffi's defaults: 64 MiB, 3 passes — about 50 ms a login on
this machine, which is the point). Nothing here knows about Flask; nurture.web.auth does the sessions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session

from nurture.people.contacts import InvalidContact, normalise_email
from nurture.store import console
from nurture.store.models import User

ROLES = ("owner", "viewer")  # owner: everything; viewer: reads only
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Checked when the email is unknown, so that a wrong address costs as long as a wrong password: the time
# a login takes must not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """Why an account could not be added or changed, in words for the person at the keyboard."""


@dataclass(frozen=True)
class Account:
    email: str
    role: str
    created_at: datetime
    last_login_at: datetime | None


def _email(value: str) -> str:
    try:
        return normalise_email(value)
    except InvalidContact as exc:
        raise AccountError(str(exc)) from exc


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")


def generate_password() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, 96 bits


def add(session: Session, email: str, password: str, role: str, now: datetime) -> User:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use {' or '.join(ROLES)}")
    address = _email(email)
    if console.user_by_email(session, address) is not None:
        raise AccountError(f"{address} already has an account")
    _check_password(password)
    user = User(email=address, password_hash=_hasher.hash(password), role=role,
                session_id=secrets.token_urlsafe(32), created_at=now)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, email: str, password: str) -> User:
    """A new password, and a new session id: every session opened with the old one ends."""
    user = _existing(session, email)
    _check_password(password)
    user.password_hash = _hasher.hash(password)
    user.session_id = secrets.token_urlsafe(32)
    session.add(user)
    return user


def remove(session: Session, email: str) -> None:
    session.delete(_existing(session, email))


def listing(session: Session) -> list[Account]:
    return [Account(u.email, u.role, u.created_at, u.last_login_at) for u in console.all_users(session)]


def authenticate(session: Session, email: str, password: str, now: datetime) -> User | None:
    """The user whose email and password these are, or None (which of the two was wrong is not said)."""
    try:
        user = console.user_by_email(session, normalise_email(email))
    except InvalidContact:
        user = None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):  # the library's defaults grew stronger since
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    session.add(user)
    return user


def _existing(session: Session, email: str) -> User:
    user = console.user_by_email(session, _email(email))
    if user is None:
        raise AccountError(f"no account for {email!r}")
    return user
