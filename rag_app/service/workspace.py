"""The application service of a team deployment: several knowledge bases, users with a role in each,
kept conversations, feedback and the audit log. Every front end (API, UI, CLIs) calls this.

Each knowledge base is a :class:`RagService` of its own (stores, upload store, job worker, folder
sync, calibration, tuned reranker), opened on first use; they share one embedder, one LLM and one
state database. Every method that touches a knowledge base takes the :class:`Principal` asking and
checks their role first (``rag_app.service.access``): the rules live here, not in the front ends.

Without accounts (no user in the database and no ``ui.auth_user``) the deployment is the one-user
setup it always was: the local principal may do everything, and the ``default`` knowledge base
is the data directory's existing index.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.state import StateDatabase
from ingest.state.knowledge_bases import forget_knowledge_base
from ingest.state.schema import DEFAULT_KB
from ingest.stores.milvus_store import MilvusVectorStore
from ingest.types import source_label
from rag_app.answering import Answerer, AnswerEvent, ErrorEvent, FinalEvent
from rag_app.answering.question import BoundedQuestion, History
from rag_app.config import SchedulerSettings, Settings
from rag_app.llm import LLMBackend
from rag_app.preview import PreviewError, render_pdf_passage
from rag_app.retrieval.multi import MultiRetriever
from rag_app.team import migrate_team_tables
from rag_app.team.accounts import AccountError, Accounts, Role, TokenInfo, User, parse_role, role_at_least
from rag_app.team.audit import AuditEntry, AuditLog
from rag_app.team.conversations import Conversation, Conversations, Message
from rag_app.team.feedback import FeedbackItem, FeedbackStore, Vote, judged_questions_zip, training_lines
from rag_app.team.knowledge_bases import KnowledgeBaseCatalog, KnowledgeBaseError, KnowledgeBaseRecord
from rag_app.team.passwords import MIN_PASSWORD_LENGTH

from .access import LOCAL, Forbidden, NotFound, Principal
from .facade import RagService, SearchResult
from .jobs import Job
from .knowledge_base import KnowledgeBase
from .uploads import UploadInput

log = logging.getLogger(__name__)

LOGIN_CACHE_S = 60.0  # a verified name and password is trusted this long (argon2 costs ~50 ms a check)


@dataclass(frozen=True)
class ChunkPreview:
    """A cited chunk in its place: the chunks around it in its document (``context``, the cited one
    marked), and for a PDF whose file the app keeps, its page with the passage highlighted."""

    kb: str
    chunk: dict[str, Any]
    context: list[dict[str, Any]]
    page_png: bytes | None = None
    page_note: str = ""  # why there is no page image, when there is none


@dataclass(frozen=True)
class SavedEvent:
    """After the final event of a kept conversation: where the answer was stored."""

    conversation_id: str
    message_id: str
    type: str = "saved"

    def to_dict(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "message_id": self.message_id}


def outcome_of(final: FinalEvent) -> str:
    if not final.refused:
        return "answered"
    return {"no_evidence": "refused", "not_in_sources": "not_in_documents", "unsupported": "unsupported",
            "off_question": "unsupported", "unsure": "unsupported",
            "model": "not_in_documents"}.get(final.refusal, "refused")


class _Sources:
    """Several warmed knowledge bases as one answer source (``Answerer``'s ``AnswerSource``)."""

    def __init__(self, services: dict[str, RagService]) -> None:
        first = next(iter(services.values()))
        self.settings = first.kb.settings
        self.embedder = first.kb.embedder
        self.tokenizer = first.kb.tokenizer
        self.retriever = MultiRetriever({kb: s.kb.ready_retriever() for kb, s in services.items()},
                                        top_k=first.settings.retrieval.top_k)


def knowledge_base_settings(settings: Settings, record: KnowledgeBaseRecord) -> Settings:
    """``settings`` for one knowledge base: its stores, and its folder-sync schedule when it has one
    (the default knowledge base keeps the configured schedule unless one was set in the app)."""
    schedule = None
    if record.sync_folder:
        schedule = SchedulerSettings(enabled=bool(record.sync_cron), folder=record.sync_folder, cron=record.sync_cron)
    elif record.id != DEFAULT_KB:
        schedule = SchedulerSettings()
    return settings.for_knowledge_base(record.id, scheduler=schedule)


def find_knowledge_base(catalog: KnowledgeBaseCatalog, name_or_id: str) -> KnowledgeBaseRecord:
    """A knowledge base by id, or else by its name (the CLIs' ``--kb``)."""
    record = catalog.get(name_or_id) or next((r for r in catalog.list() if r.name == name_or_id), None)
    if record is None:
        names = ", ".join(f"{r.name} ({r.id})" for r in catalog.list())
        raise NotFound(f"no knowledge base {name_or_id!r}; there are: {names}")
    return record


class Workspace:
    """Light to construct; ``warm_up()`` opens the state database and the default knowledge base."""

    def __init__(
        self,
        settings: Settings,
        *,
        llm: LLMBackend | None = None,
        background: bool = True,
        default_kb: KnowledgeBase | None = None,
        default_service: RagService | None = None,
    ) -> None:
        self.settings = settings
        self.background = background
        self._given_llm = llm
        self._default_kb = default_kb
        self._default_service = default_service
        self._services: dict[str, RagService] = {}
        self._lock = threading.RLock()
        # sha256(name, password) -> (user id, trusted until): never the password itself
        self._logins: dict[str, tuple[int, float]] = {}
        self.db: StateDatabase | None = None
        self._owns_db = default_service is None

    @classmethod
    def open(cls, settings: Settings, **kwargs: Any) -> Workspace:
        return cls(settings, **kwargs).warm_up()

    def warm_up(self) -> Workspace:
        with self._lock:
            if self.db is not None:
                return self
            service = self._default_service
            db = service.kb.stores()[0].db if service is not None else StateDatabase(self.settings.database_url)
            db.warm_up()
            migrate_team_tables(db)
            self.catalog = KnowledgeBaseCatalog(db)
            self.accounts = Accounts(db)
            self.conversations = Conversations(db)
            self.feedback_store = FeedbackStore(db)
            self.audit = AuditLog(db)
            default = self.catalog.ensure_default()
            self._bootstrap_admin()
            if service is None:
                settings = self._settings_for(default)
                kb = self._default_kb or KnowledgeBase(settings, database=db)
                service = RagService.open(settings, llm=self._given_llm, kb=kb, background=self.background)
            # One LLM for every knowledge base: the default one's, built on the first question that needs it.
            self._llm: LLMBackend | Callable[[], LLMBackend] = self._given_llm or service.answerer.get_llm
            self._services[DEFAULT_KB] = service
            self.db = db
            return self

    def close(self) -> None:
        with self._lock:
            for kb_id, service in list(self._services.items()):
                service.close(stores=not (kb_id == DEFAULT_KB and self._default_service is not None))
            self._services.clear()
            if self.db is not None and self._owns_db:
                self.db.close()
            self.db = None

    def _bootstrap_admin(self) -> None:
        """``ui.auth_user``/``ui.auth_password`` from the configuration is an admin account: the single
        login of earlier versions keeps working, now as a one-user team."""
        ui = self.settings.ui
        self.accounts.lock_configured_logins(keep=ui.auth_user if ui.auth_enabled else "")
        if not ui.auth_enabled:
            return
        password = ui.auth_password.get_secret_value()
        if len(password) < MIN_PASSWORD_LENGTH:  # the operator's choice, kept as it was: said, not refused
            log.warning("ui.auth_password is shorter than %d characters: choose a longer one", MIN_PASSWORD_LENGTH)
        user = self.accounts.by_name(ui.auth_user)
        if user is None:
            try:
                self.accounts.create(ui.auth_user, password, is_admin=True, origin="config", check=False)
            except AccountError as exc:
                if self.accounts.by_name(ui.auth_user) is None:  # not just another replica first
                    raise ValueError(f"ui.auth_user/ui.auth_password: {exc}") from None
            return
        if not user.is_admin:
            self.accounts.set_admin(user.id, True)
        if self.accounts.authenticate(ui.auth_user, password) is None:
            self.accounts.set_password(user.id, password, check=False)  # the configuration changed: it wins

    # --- who is asking --------------------------------------------------------------------------------
    @property
    def accounts_enabled(self) -> bool:
        """Whether requests must sign in: with ``ui.auth_user`` configured, or once an account was made
        in the app or with rag-admin. (The configured login alone, taken out of the configuration,
        leaves the one-user setup without a login, as it was before accounts.)"""
        return self.settings.ui.auth_enabled or self.accounts.count(made_in_app=True) > 0

    def login(self, name: str, password: str) -> Principal | None:
        """The principal for a name and password, or None. Without accounts, None too."""
        key = hashlib.sha256(f"{name}\x00{password}".encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        cached = self._logins.get(key)
        if cached is not None and cached[1] > now:
            user = self.accounts.get(cached[0])  # deleted since: the cache must not bring them back
            return Principal(user) if user else None
        user = self.accounts.authenticate(name, password)
        if user is None:
            return None
        if len(self._logins) > 10_000:
            self._logins.clear()
        self._logins[key] = (user.id, now + LOGIN_CACHE_S)
        return Principal(user)

    def token_login(self, token: str) -> Principal | None:
        user = self.accounts.user_for_token(token)
        return Principal(user) if user else None

    def anonymous(self) -> Principal | None:
        """The principal of a request without credentials: the local one without accounts, else None."""
        return None if self.accounts_enabled else LOCAL

    # --- roles ----------------------------------------------------------------------------------------
    def role(self, principal: Principal, kb_id: str) -> Role | None:
        if principal.is_admin:
            return "owner"
        assert principal.user_id is not None
        return self.accounts.role_of(kb_id, principal.user_id)

    def require(self, principal: Principal, kb_id: str, needed: Role) -> KnowledgeBaseRecord:
        """The knowledge base, when the principal's role in it is at least ``needed``."""
        record = self.catalog.get(kb_id)
        role = self.role(principal, kb_id) if record is not None else None
        if record is None or role is None:
            raise NotFound(f"no knowledge base {kb_id!r}")
        if not role_at_least(role, needed):
            raise Forbidden(f"this needs the {needed} role in {record.name!r}; you are a {role}")
        return record

    def require_admin(self, principal: Principal) -> None:
        if not principal.is_admin:
            raise Forbidden("only an admin may do this")

    def knowledge_bases(self, principal: Principal) -> list[tuple[KnowledgeBaseRecord, Role]]:
        """The knowledge bases the principal may see, with their role in each."""
        records = self.catalog.list()
        if principal.is_admin:
            return [(r, "owner") for r in records]
        assert principal.user_id is not None
        roles = self.accounts.roles_of(principal.user_id)
        return [(r, roles[r.id]) for r in records if r.id in roles]

    # --- the knowledge bases' services ----------------------------------------------------------------
    def _settings_for(self, record: KnowledgeBaseRecord) -> Settings:
        return knowledge_base_settings(self.settings, record)

    def service(self, kb_id: str) -> RagService:
        """The knowledge base's service, opened on first use (no access check: callers check)."""
        with self._lock:
            service = self._services.get(kb_id)
            if service is not None:
                return service
            record = self.catalog.get(kb_id)
            if record is None:
                raise NotFound(f"no knowledge base {kb_id!r}")
            assert self.db is not None
            settings = self._settings_for(record)
            embedder = self._services[DEFAULT_KB].kb.embedder
            kb = KnowledgeBase(settings, embedder=embedder, database=self.db)
            service = RagService.open(settings, llm=self._llm, kb=kb, background=self.background)
            self._services[kb_id] = service
            return service

    def open_for(self, principal: Principal, kb_id: str, needed: Role) -> RagService:
        self.require(principal, kb_id, needed)
        return self.service(kb_id)

    # --- knowledge bases: create, change, delete ------------------------------------------------------
    def create_knowledge_base(self, principal: Principal, name: str, description: str = "") -> KnowledgeBaseRecord:
        self.require_admin(principal)
        record = self.catalog.create(name, description, created_by=principal.name)
        if principal.user_id is not None:
            self.accounts.set_role(record.id, principal.user_id, "owner")
        self.audit.record(principal.name, "kb.create", f"{record.name} ({record.id})", kb=record.id)
        return record

    def update_knowledge_base(
        self, principal: Principal, kb_id: str, *, name: str | None = None, description: str | None = None,
        sync_folder: str | None = None, sync_cron: str | None = None,
    ) -> KnowledgeBaseRecord:
        """Name and description: owners. The sync folder reads files on the server: admins only."""
        before = self.require(principal, kb_id, "owner")
        if sync_folder is not None or sync_cron is not None:
            self.require_admin(principal)
            folder = before.sync_folder if sync_folder is None else sync_folder
            cron = before.sync_cron if sync_cron is None else sync_cron
            try:
                SchedulerSettings(enabled=bool(folder.strip() and cron.strip()), folder=folder, cron=cron)
            except ValueError as exc:
                raise KnowledgeBaseError(str(exc).splitlines()[-1]) from None
            if folder.strip() and not Path(folder).expanduser().is_dir():
                raise KnowledgeBaseError(f"not a folder on the server: {folder}")
        record = self.catalog.update(kb_id, name=name, description=description, sync_folder=sync_folder,
                                     sync_cron=sync_cron)
        changes = {k: v for k, v in (("name", name), ("description", description), ("sync_folder", sync_folder),
                                     ("sync_cron", sync_cron)) if v is not None}
        self.audit.record(principal.name, "kb.settings", ", ".join(f"{k}={v!r}" for k, v in changes.items()), kb=kb_id)
        if sync_folder is not None or sync_cron is not None:
            self._reopen(kb_id)  # the folder-sync schedule is the service's
        return record

    def _reopen(self, kb_id: str) -> None:
        with self._lock:
            service, record = self._services.get(kb_id), self.catalog.get(kb_id)
            if service is not None and record is not None:
                service.reschedule(self._settings_for(record).scheduler)

    def delete_knowledge_base(self, principal: Principal, kb_id: str) -> dict[str, Any]:
        """Remove the knowledge base and everything in it: its Milvus collection (vectors and, with
        ``bm25.backend: milvus``, keywords), its in-process BM25 index, registry rows, calibration,
        jobs, stored uploads, tuned models, conversations, feedback and memberships."""
        record = self.require(principal, kb_id, "owner")
        if kb_id == DEFAULT_KB:
            raise KnowledgeBaseError("the default knowledge base cannot be deleted: it is what a single-knowledge-"
                                     "base setup opens; delete its documents instead")
        assert self.db is not None
        with self._lock:
            service = self.service(kb_id)
            self._services.pop(kb_id, None)
            settings = service.settings
            vectors = service.kb.vectors
            service.close(stores=False)
            chunks = service.kb.registry.chunk_count() if service.kb.registry else 0
            if isinstance(vectors, MilvusVectorStore):
                vectors.drop()
            service.kb.close()
            removed = forget_knowledge_base(self.db, kb_id)
            conversations = self.conversations.delete_for_kb(kb_id)
            self.feedback_store.delete_for_kb(kb_id)
            self.catalog.remove(kb_id)
            shutil.rmtree(settings.kb_dir, ignore_errors=True)
        self.audit.record(principal.name, "kb.delete", f"{record.name} ({kb_id}): {chunks} chunks", kb=kb_id)
        return {"id": kb_id, "name": record.name, "chunks": chunks, "conversations": conversations, "rows": removed}

    # --- members --------------------------------------------------------------------------------------
    def members(self, principal: Principal, kb_id: str) -> list[tuple[User, Role]]:
        self.require(principal, kb_id, "owner")
        return self.accounts.members(kb_id)

    def set_member(self, principal: Principal, kb_id: str, user_name: str, role: str) -> None:
        self.require(principal, kb_id, "owner")
        user = self.accounts.by_name(user_name)
        if user is None:
            raise NotFound(f"no user named {user_name!r}")
        self.accounts.set_role(kb_id, user.id, parse_role(role))
        self.audit.record(principal.name, "member.set", f"{user.name}: {role}", kb=kb_id)

    def remove_member(self, principal: Principal, kb_id: str, user_name: str) -> bool:
        self.require(principal, kb_id, "owner")
        user = self.accounts.by_name(user_name)
        removed = user is not None and self.accounts.remove_member(kb_id, user.id)
        if removed:
            self.audit.record(principal.name, "member.remove", user_name, kb=kb_id)
        return removed

    # --- users (admins) -------------------------------------------------------------------------------
    def create_user(self, principal: Principal, name: str, password: str, *, is_admin: bool = False) -> User:
        self.require_admin(principal)
        user = self.accounts.create(name, password, is_admin=is_admin)
        self.audit.record(principal.name, "user.create", f"{user.name}{' (admin)' if is_admin else ''}")
        return user

    def delete_user(self, principal: Principal, name: str) -> None:
        self.require_admin(principal)
        user = self.accounts.by_name(name)
        if user is None:
            raise NotFound(f"no user named {name!r}")
        self.accounts.delete(user.id)
        self._logins = {k: v for k, v in self._logins.items() if v[0] != user.id}
        self.audit.record(principal.name, "user.delete", name)

    def set_password(self, principal: Principal, name: str, password: str) -> None:
        """Admins set anyone's password; a user sets their own."""
        user = self.accounts.by_name(name)
        if user is None or (not principal.is_admin and principal.user_id != user.id):
            raise NotFound(f"no user named {name!r}")
        self.accounts.set_password(user.id, password)
        self._logins = {k: v for k, v in self._logins.items() if v[0] != user.id}
        self.audit.record(principal.name, "user.password", name)

    def users(self, principal: Principal) -> list[User]:
        self.require_admin(principal)
        return self.accounts.users()

    def create_token(self, principal: Principal, name: str = "") -> tuple[str, TokenInfo]:
        if principal.user_id is None:
            raise Forbidden("API tokens belong to accounts; without accounts the API needs no token")
        return self.accounts.create_token(principal.user_id, name)

    def tokens(self, principal: Principal) -> list[TokenInfo]:
        return [] if principal.user_id is None else self.accounts.tokens(principal.user_id)

    def revoke_token(self, principal: Principal, token_id: int) -> bool:
        return principal.user_id is not None and self.accounts.revoke_token(principal.user_id, token_id)

    # --- documents ------------------------------------------------------------------------------------
    def documents(self, principal: Principal, kb_id: str) -> list[dict[str, Any]]:
        return self.open_for(principal, kb_id, "reader").documents()

    def upload(self, principal: Principal, kb_id: str, files: Sequence[UploadInput]) -> Job:
        service = self.open_for(principal, kb_id, "editor")
        job = service.upload(files)
        self.audit.record(principal.name, "documents.upload", ", ".join(name for name, _ in files)[:2000], kb=kb_id)
        return job

    def delete_document(self, principal: Principal, kb_id: str, source: str) -> int | None:
        removed = self.open_for(principal, kb_id, "editor").delete(source)
        if removed is not None:
            self.audit.record(principal.name, "documents.delete", source, kb=kb_id)
        return removed

    def sync(self, principal: Principal, kb_id: str, wait: bool = False) -> dict[str, Any]:
        service = self.open_for(principal, kb_id, "editor")
        result = service.sync(wait=wait, timeout=600 if wait else None)
        self.audit.record(principal.name, "sync", service.sync_folder_configured, kb=kb_id)
        return result

    def document_file(self, principal: Principal, kb_id: str, source: str) -> Path:
        """The stored file of an indexed document (an upload, or a file of the synced folder)."""
        service = self.open_for(principal, kb_id, "reader")
        if service.kb.stores()[0].get(source) is None:
            raise NotFound(f"not indexed: {source}")
        return self._kept_file(service, source)

    @staticmethod
    def _kept_file(service: RagService, source: str) -> Path:
        """An indexed source's file, when it lies where the app keeps files (its uploads, its folder)."""
        path = Path(source).resolve()
        roots = [service.settings.uploads_dir.resolve()]
        if service.sync_folder_configured:
            roots.append(Path(service.sync_folder_configured).expanduser().resolve())
        if not path.is_file() or not any(path.is_relative_to(root) for root in roots):
            raise NotFound(f"the file of {source_label(source)} is not kept by the app")
        return path

    def preview(self, principal: Principal, kb_id: str, chunk_id: str, around: int = 2) -> ChunkPreview:
        """The cited chunk in its document: ``around`` chunks either side, and the PDF page image."""
        service = self.open_for(principal, kb_id, "reader")
        registry, vectors, _ = service.kb.stores()
        found = vectors.fetch([chunk_id])
        if chunk_id not in found:
            raise NotFound("no such chunk in this knowledge base")
        chunk = found[chunk_id][0]
        order = registry.ordered_chunk_ids(chunk.source)
        at = order.index(chunk_id) if chunk_id in order else 0
        near = order[max(0, at - around): at + around + 1] or [chunk_id]
        texts = vectors.get_texts(near)
        context = [{"chunk_id": c, "text": texts.get(c, ""), "cited": c == chunk_id} for c in near]
        cited = {"chunk_id": chunk.chunk_id, "source": chunk.source, "file": source_label(chunk.source),
                 "page": chunk.page, "section": chunk.section, "location": chunk.location, "text": chunk.text}
        png, note = None, ""
        record = registry.get(chunk.source)
        if record is not None and record.file_type == "pdf" and chunk.page:
            try:
                png = render_pdf_passage(self._kept_file(service, chunk.source), chunk.page, chunk.text).png
            except (NotFound, PreviewError) as exc:
                note = str(exc)
        return ChunkPreview(kb_id, cited, context, png, note)

    # --- questions ------------------------------------------------------------------------------------
    def search(self, principal: Principal, kb_id: str, query: str, top_k: int | None = None) -> SearchResult:
        return self.open_for(principal, kb_id, "reader").search(query, top_k)

    def prepare_question(self, question: str | None) -> BoundedQuestion:
        return self._services[DEFAULT_KB].prepare_question(question)

    def _resolve(self, principal: Principal, kbs: Sequence[str] | None,
                 conversation_id: str | None) -> tuple[list[str], Conversation | None]:
        conversation = None
        if conversation_id:
            conversation = self.conversations.get(principal.user_id, conversation_id)
            if conversation is None:
                raise NotFound("no such conversation")
            kbs = conversation.kbs
        kb_ids = list(dict.fromkeys(kbs or [DEFAULT_KB]))
        for kb_id in kb_ids:
            self.require(principal, kb_id, "reader")
        return kb_ids, conversation

    def ask_stream(
        self, principal: Principal, question: str | BoundedQuestion, *, kbs: Sequence[str] | None = None,
        conversation_id: str | None = None, history: History | None = None, keep: bool = True,
    ) -> Iterator[AnswerEvent | SavedEvent]:
        """The answer's events (``RagService.ask_stream``) over one or several knowledge bases. With
        ``keep`` the exchange is stored in the conversation (a new one unless ``conversation_id``),
        whose own turns are then the history, and a :class:`SavedEvent` follows the final event."""
        kb_ids, conversation = self._resolve(principal, kbs, conversation_id)
        if conversation is not None:
            history = self.conversations.history(conversation.id)
        services = {kb_id: self.service(kb_id) for kb_id in kb_ids}
        if len(services) == 1:
            events = services[kb_ids[0]].ask_stream(question, history)
        else:
            for service in services.values():
                service.calibration.follow()
            events = Answerer(_Sources(services), self._llm, self.settings.answer).stream(question, history)
        return self._kept(principal, events, kb_ids, conversation, keep)

    def _kept(self, principal: Principal, events: Iterator[AnswerEvent], kb_ids: list[str],
              conversation: Conversation | None, keep: bool) -> Iterator[AnswerEvent | SavedEvent]:
        for event in events:
            yield event
            if keep and isinstance(event, FinalEvent | ErrorEvent) and (
                    isinstance(event, FinalEvent) or event.reason != "empty_question"):
                conversation = conversation or self.conversations.create(principal.user_id, kb_ids)
                message = self._store(conversation, event, kb_ids[0])
                yield SavedEvent(conversation.id, message.id)

    def _store(self, conversation: Conversation, event: FinalEvent | ErrorEvent, kb_id: str) -> Message:
        if isinstance(event, ErrorEvent):
            return self.conversations.add_message(
                conversation.id, question=event.question, query="", answer=event.message, outcome="error",
                citations=[], sources=[], timings={})

        def tag(item: dict[str, Any]) -> dict[str, Any]:
            return {"kb": kb_id, **item}  # a chunk of several knowledge bases already says which

        return self.conversations.add_message(
            conversation.id, question=event.question, query=event.query, answer=event.answer,
            outcome=outcome_of(event), citations=[tag(c.to_dict()) for c in event.citations],
            sources=[tag(s.to_dict()) for s in event.sources], timings=dict(event.timings))

    def ask(self, principal: Principal, question: str | BoundedQuestion, **kwargs: Any
            ) -> tuple[FinalEvent | ErrorEvent, SavedEvent | None]:
        """The whole answer (``ask_stream``'s final or error event) and, when kept, where it was saved."""
        final: FinalEvent | ErrorEvent | None = None
        saved = None
        for event in self.ask_stream(principal, question, **kwargs):
            if isinstance(event, FinalEvent | ErrorEvent):
                final = event
            elif isinstance(event, SavedEvent):
                saved = event
        assert final is not None, "a stream ends with a final or error event"
        return final, saved

    # --- conversations --------------------------------------------------------------------------------
    def conversation_list(self, principal: Principal) -> list[Conversation]:
        return self.conversations.of_user(principal.user_id)

    def conversation(self, principal: Principal, conversation_id: str) -> tuple[Conversation, list[Message]]:
        conversation = self.conversations.get(principal.user_id, conversation_id)
        if conversation is None:
            raise NotFound("no such conversation")
        return conversation, self.conversations.messages(conversation.id)

    def start_conversation(self, principal: Principal, kbs: Sequence[str], title: str = "") -> Conversation:
        kb_ids, _ = self._resolve(principal, kbs, None)
        return self.conversations.create(principal.user_id, kb_ids, title)

    def rename_conversation(self, principal: Principal, conversation_id: str, title: str) -> None:
        if not self.conversations.rename(principal.user_id, conversation_id, title):
            raise NotFound("no such conversation")

    def delete_conversation(self, principal: Principal, conversation_id: str) -> None:
        if not self.conversations.delete(principal.user_id, conversation_id):
            raise NotFound("no such conversation")

    # --- feedback -------------------------------------------------------------------------------------
    def give_feedback(self, principal: Principal, message_id: str, vote: Vote, comment: str = "") -> None:
        found = self.conversations.message(message_id)
        if found is None or found[0].user_id != principal.user_id:
            raise NotFound("no such answer")
        conversation, message = found
        kbs = [str(c["kb"]) for c in message.citations if c.get("kb")] or conversation.kbs
        self.feedback_store.record(message_id, principal.user_id, kbs[0], vote, comment)

    def feedback(self, principal: Principal, kb_id: str) -> list[FeedbackItem]:
        self.require(principal, kb_id, "owner")
        return self.feedback_store.for_kb(kb_id)

    def feedback_training_lines(self, principal: Principal, kb_id: str) -> list[str]:
        items = self.feedback(principal, kb_id)
        vectors = self.service(kb_id).kb.stores()[1]
        return training_lines(items, lambda ids: vectors.get_texts(ids))

    def feedback_judged_questions(self, principal: Principal, kb_id: str) -> bytes:
        items = self.feedback(principal, kb_id)
        registry, vectors, _ = self.service(kb_id).kb.stores()

        def corpus() -> Iterator[tuple[str, str, str]]:
            for document in registry.documents():
                ids = registry.ordered_chunk_ids(document.source)
                texts = vectors.get_texts(ids)
                for chunk_id in ids:
                    if chunk_id in texts:
                        yield chunk_id, document.title or source_label(document.source), texts[chunk_id]

        return judged_questions_zip(items, corpus(), name=f"feedback-{kb_id}")

    # --- audit, status --------------------------------------------------------------------------------
    def audit_entries(self, principal: Principal, kb_id: str | None = None, limit: int = 200) -> list[AuditEntry]:
        """One knowledge base's entries (its owners), or all of them (admins)."""
        if kb_id is None:
            self.require_admin(principal)
        else:
            self.require(principal, kb_id, "owner")
        return self.audit.entries(kb_id, limit)

    def default_service(self) -> RagService:
        return self._services[DEFAULT_KB]
