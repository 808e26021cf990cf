"""The audit log: who uploaded, deleted, synced, or changed settings or members, and when."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import insert, select

from ingest.state import StateDatabase

from .schema import audit_log


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    kb: str
    action: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    def record(self, actor: str, action: str, detail: str = "", kb: str = "") -> None:
        with self.db.write() as conn:
            conn.execute(insert(audit_log).values(at=time.time(), actor=actor, kb=kb, action=action,
                                                  detail=detail[:4000]))

    def entries(self, kb: str | None = None, limit: int = 200) -> list[AuditEntry]:
        """Newest first; ``kb`` = one knowledge base's entries, None = all."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if kb is not None:
            query = query.where(audit_log.c.kb == kb)
        with self.db.read() as conn:
            return [AuditEntry(*r) for r in conn.execute(query).all()]
