"""The catalog of knowledge bases: id, name, description and folder-sync schedule of each.

The id names the knowledge base's stores (``kbs/<id>/``, Milvus collection ``<collection>_<id>``,
its rows of the registry), so it never changes; the name is what people see and may be renamed.
``default`` is the knowledge base a data directory from the single-knowledge-base layout opens as.
"""
from __future__ import annotations

import secrets
import time
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ingest.state import StateDatabase
from ingest.state.schema import DEFAULT_KB

from .schema import knowledge_bases

MAX_NAME_CHARS = 100
MAX_DESCRIPTION_CHARS = 2000


class KnowledgeBaseError(ValueError):
    """A knowledge base change that cannot be made; the message says why."""


@dataclass(frozen=True)
class KnowledgeBaseRecord:
    id: str
    name: str
    description: str
    sync_folder: str
    sync_cron: str
    created_at: float
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name).strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise KnowledgeBaseError(f"a knowledge base name has 1 to {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise KnowledgeBaseError("a knowledge base name has no control characters or line breaks")
    return name


def check_description(text: str) -> str:
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise KnowledgeBaseError(f"a description has at most {MAX_DESCRIPTION_CHARS} characters")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


class KnowledgeBaseCatalog:
    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    def list(self) -> list[KnowledgeBaseRecord]:
        with self.db.read() as conn:
            rows = conn.execute(select(knowledge_bases).order_by(knowledge_bases.c.created_at)).all()
        return [KnowledgeBaseRecord(*r) for r in rows]

    def get(self, kb_id: str) -> KnowledgeBaseRecord | None:
        with self.db.read() as conn:
            row = conn.execute(select(knowledge_bases).where(knowledge_bases.c.id == kb_id)).one_or_none()
        return KnowledgeBaseRecord(*row) if row else None

    def ensure_default(self, name: str = "Default") -> KnowledgeBaseRecord:
        """The ``default`` knowledge base's record, made on first start (its stores may already exist)."""
        record = self.get(DEFAULT_KB)
        if record is not None:
            return record
        try:
            with self.db.write() as conn:
                conn.execute(insert(knowledge_bases).values(id=DEFAULT_KB, name=name, created_at=time.time()))
        except IntegrityError:
            pass  # another replica made it first
        made = self.get(DEFAULT_KB)
        assert made is not None
        return made

    def create(self, name: str, description: str = "", created_by: str = "") -> KnowledgeBaseRecord:
        name, description = check_name(name), check_description(description)
        kb_id = "kb" + secrets.token_hex(5)
        try:
            with self.db.write() as conn:
                conn.execute(insert(knowledge_bases).values(
                    id=kb_id, name=name, description=description, created_at=time.time(), created_by=created_by))
        except IntegrityError:
            raise KnowledgeBaseError(f"a knowledge base named {name!r} already exists") from None
        made = self.get(kb_id)
        assert made is not None
        return made

    def update(self, kb_id: str, *, name: str | None = None, description: str | None = None,
               sync_folder: str | None = None, sync_cron: str | None = None) -> KnowledgeBaseRecord:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check_name(name)
        if description is not None:
            values["description"] = check_description(description)
        if sync_folder is not None:
            values["sync_folder"] = sync_folder.strip()
        if sync_cron is not None:
            values["sync_cron"] = sync_cron.strip()
        try:
            with self.db.write() as conn:
                if values:
                    conn.execute(update(knowledge_bases).where(knowledge_bases.c.id == kb_id).values(**values))
        except IntegrityError:
            raise KnowledgeBaseError(f"a knowledge base named {values.get('name')!r} already exists") from None
        record = self.get(kb_id)
        if record is None:
            raise KnowledgeBaseError("no such knowledge base")
        return record

    def remove(self, kb_id: str) -> None:
        """Forget the record (its memberships go with it); the stores are the caller's to empty first."""
        with self.db.write() as conn:
            conn.execute(delete(knowledge_bases).where(knowledge_bases.c.id == kb_id))
