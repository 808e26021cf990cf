"""Who is asking, and what they may do: the principal of a request and the two refusals.

A knowledge base the principal has no role in reads as missing (``NotFound``), never as forbidden:
its name and existence are none of their business. A role too low for the action is ``Forbidden``.
"""
from __future__ import annotations

from dataclasses import dataclass

from rag_app.team.accounts import User


class NotFound(LookupError):
    """No such thing, or not one this principal may see."""


class Forbidden(PermissionError):
    """The principal may see it but not do this."""


@dataclass(frozen=True)
class Principal:
    """The user behind a request; ``user`` None is the one-user setup without accounts (every right)."""

    user: User | None

    @property
    def name(self) -> str:
        return self.user.name if self.user else "local"

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def is_admin(self) -> bool:
        return self.user is None or self.user.is_admin


LOCAL = Principal(None)
