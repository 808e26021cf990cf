"""Users, their API tokens and their roles in each knowledge base.

Roles per knowledge base: ``owner`` (members, settings, delete), ``editor`` (upload, delete
documents, sync), ``reader`` (ask, search); each includes the ones after it. An admin may do
everything everywhere and is the only one who creates users and knowledge bases.
"""
from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ingest.state import StateDatabase
from ingest.state.database import upsert

from .passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    new_token,
    token_digest,
    verify_password,
)
from .schema import api_tokens, memberships, users

Role = Literal["reader", "editor", "owner"]
ROLES: tuple[Role, ...] = get_args(Role)
MAX_NAME_CHARS = 64
LOCKED = "!locked"  # a password hash no password matches
TOKEN_USE_RESOLUTION_S = 60.0  # how precisely a token's last use is kept


class AccountError(ValueError):
    """A user, token or membership change that cannot be made; the message says why."""


def role_at_least(role: Role | None, needed: Role) -> bool:
    return role is not None and ROLES.index(role) >= ROLES.index(needed)


def parse_role(value: str) -> Role:
    if value not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {value!r}")
    return value


@dataclass(frozen=True)
class User:
    id: int
    name: str
    is_admin: bool
    created_at: float

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "is_admin": self.is_admin, "created_at": self.created_at}


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    created_at: float
    last_used_at: float | None

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "prefix": self.prefix, "created_at": self.created_at,
                "last_used_at": self.last_used_at}


_USER_COLUMNS = (users.c.id, users.c.name, users.c.is_admin, users.c.created_at)


def _user(row: Any) -> User:
    return User(int(row[0]), str(row[1]), bool(row[2]), float(row[3]))


def check_user_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name).strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise AccountError(f"a user name has 1 to {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in name) or ":" in name:
        raise AccountError("a user name has no control characters, line breaks or ':'")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise AccountError("a password has at most 1024 characters")
    return password


class Accounts:
    """The ``users``, ``api_tokens`` and ``memberships`` tables."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    # --- users --------------------------------------------------------------------------------------
    def count(self, *, made_in_app: bool = False) -> int:
        """Users (``made_in_app``: only those made in the app or by rag-admin, not the configured login)."""
        query = select(func.count()).select_from(users)
        if made_in_app:
            query = query.where(users.c.origin != "config")
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

    def users(self) -> list[User]:
        with self.db.read() as conn:
            return [_user(r) for r in conn.execute(select(*_USER_COLUMNS).order_by(users.c.name))]

    def get(self, user_id: int) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id)).one_or_none()
        return _user(row) if row else None

    def by_name(self, name: str) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(*_USER_COLUMNS).where(users.c.name == name)).one_or_none()
        return _user(row) if row else None

    def create(self, name: str, password: str, *, is_admin: bool = False, origin: str = "app",
               check: bool = True) -> User:
        """``check=False``: the configured login, whose password the operator chose (never empty)."""
        name = check_user_name(name)
        password = check_password(password) if check else password
        now = time.time()
        try:
            with self.db.write() as conn:
                conn.execute(insert(users).values(name=name, password_hash=hash_password(password),
                                                  is_admin=is_admin, created_at=now, origin=origin))
        except IntegrityError:
            raise AccountError(f"a user named {name!r} already exists") from None
        user = self.by_name(name)
        assert user is not None
        return user

    def lock_configured_logins(self, keep: str = "") -> int:
        """Lock out the configured logins (``origin`` config) other than ``keep``: a login taken out
        of the configuration stops working, its conversations stay. Returns how many were locked."""
        with self.db.write() as conn:
            locked = conn.execute(update(users).where(users.c.origin == "config", users.c.name != keep,
                                                      users.c.password_hash != LOCKED)
                                  .values(password_hash=LOCKED))
            return int(locked.rowcount)

    def set_password(self, user_id: int, password: str, *, check: bool = True) -> None:
        digest = hash_password(check_password(password) if check else password)
        with self.db.write() as conn:
            if conn.execute(update(users).where(users.c.id == user_id).values(password_hash=digest)).rowcount == 0:
                raise AccountError("no such user")

    def set_admin(self, user_id: int, is_admin: bool) -> None:
        with self.db.write() as conn:
            if not is_admin:
                admins = conn.execute(select(func.count()).select_from(users).where(users.c.is_admin)).scalar_one()
                target = conn.execute(select(users.c.is_admin).where(users.c.id == user_id)).scalar_one_or_none()
                if target and admins <= 1:
                    raise AccountError("the last admin cannot stop being one")
            conn.execute(update(users).where(users.c.id == user_id).values(is_admin=is_admin))

    def delete(self, user_id: int) -> None:
        """Remove a user with their tokens, memberships and conversations (foreign keys cascade)."""
        with self.db.write() as conn:
            target = conn.execute(select(users.c.is_admin).where(users.c.id == user_id)).scalar_one_or_none()
            if target is None:
                raise AccountError("no such user")
            admins = conn.execute(select(func.count()).select_from(users).where(users.c.is_admin)).scalar_one()
            if target and admins <= 1:
                raise AccountError("the last admin cannot be deleted")
            conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id))
            conn.execute(delete(memberships).where(memberships.c.user_id == user_id))
            conn.execute(delete(users).where(users.c.id == user_id))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, when ``password`` is theirs; a hash made with weaker parameters is renewed."""
        with self.db.read() as conn:
            row = conn.execute(select(*_USER_COLUMNS, users.c.password_hash).where(users.c.name == name)).one_or_none()
        stored = str(row[4]) if row else None
        if not verify_password(stored, password) or row is None or stored is None:
            return None
        if needs_rehash(stored):
            with self.db.write() as conn:
                conn.execute(update(users).where(users.c.id == row[0]).values(password_hash=hash_password(password)))
        return _user(row[:4])

    # --- API tokens ---------------------------------------------------------------------------------
    def create_token(self, user_id: int, name: str = "") -> tuple[str, TokenInfo]:
        """A new token for the user: the token itself (shown once, never stored) and its record."""
        token = new_token()
        now = time.time()
        with self.db.write() as conn:
            token_id = conn.execute(insert(api_tokens).values(
                user_id=user_id, name=name[:200], prefix=token[:12], token_hash=token_digest(token), created_at=now,
            ).returning(api_tokens.c.id)).scalar_one()
        return token, TokenInfo(int(token_id), name[:200], token[:12], now, None)

    def tokens(self, user_id: int) -> list[TokenInfo]:
        cols = (api_tokens.c.id, api_tokens.c.name, api_tokens.c.prefix, api_tokens.c.created_at,
                api_tokens.c.last_used_at)
        with self.db.read() as conn:
            rows = conn.execute(select(*cols).where(api_tokens.c.user_id == user_id).order_by(api_tokens.c.id)).all()
        return [TokenInfo(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def revoke_token(self, user_id: int, token_id: int) -> bool:
        with self.db.write() as conn:
            gone = conn.execute(delete(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.user_id == user_id))
            return bool(gone.rowcount)

    def user_for_token(self, token: str) -> User | None:
        """The token's user. ``last_used_at`` is written at most once a ``TOKEN_USE_RESOLUTION_S``: a
        request is a read, not a write, on the path every API call takes."""
        digest = token_digest(token)
        with self.db.read() as conn:
            row = conn.execute(
                select(*_USER_COLUMNS, api_tokens.c.last_used_at).join(api_tokens, api_tokens.c.user_id == users.c.id)
                .where(api_tokens.c.token_hash == digest)
            ).one_or_none()
        if row is None:
            return None
        now = time.time()
        if row[4] is None or now - row[4] >= TOKEN_USE_RESOLUTION_S:
            with self.db.write() as conn:
                conn.execute(update(api_tokens).where(api_tokens.c.token_hash == digest).values(last_used_at=now))
        return _user(row)

    # --- memberships --------------------------------------------------------------------------------
    def role_of(self, kb: str, user_id: int) -> Role | None:
        with self.db.read() as conn:
            role = conn.execute(
                select(memberships.c.role).where(memberships.c.kb == kb, memberships.c.user_id == user_id)
            ).scalar_one_or_none()
        return cast(Role, role) if role in ROLES else None

    def roles_of(self, user_id: int) -> dict[str, Role]:
        """The user's role in each knowledge base they are a member of."""
        with self.db.read() as conn:
            rows = conn.execute(select(memberships.c.kb, memberships.c.role).where(memberships.c.user_id == user_id))
            return {str(kb): cast(Role, role) for kb, role in rows if role in ROLES}

    def members(self, kb: str) -> list[tuple[User, Role]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(*_USER_COLUMNS, memberships.c.role).join(memberships, memberships.c.user_id == users.c.id)
                .where(memberships.c.kb == kb).order_by(users.c.name)
            ).all()
        return [(_user(r[:4]), cast(Role, r[4])) for r in rows]

    def set_role(self, kb: str, user_id: int, role: Role) -> None:
        parse_role(role)
        try:
            with self.db.write() as conn:
                conn.execute(upsert(conn, memberships, {"kb": kb, "user_id": user_id, "role": role},
                                    key=("kb", "user_id"), update={"role": role}))
        except IntegrityError:
            raise AccountError("no such user or knowledge base") from None

    def remove_member(self, kb: str, user_id: int) -> bool:
        with self.db.write() as conn:
            gone = conn.execute(delete(memberships).where(memberships.c.kb == kb, memberships.c.user_id == user_id))
            return bool(gone.rowcount)
