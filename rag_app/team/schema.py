"""The team tables (knowledge bases, accounts, conversations, feedback, audit), as SQLAlchemy Core
metadata, in the same state database as the registry. ``migrations/`` creates them, versioned in
their own table (``team_alembic_version``): ``ingest`` owns its tables, the app owns these."""
from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from ingest.state.schema import KB_ID_LENGTH

metadata = MetaData()
VERSION_TABLE = "team_alembic_version"

knowledge_bases = Table(
    "knowledge_bases",
    metadata,
    Column("id", String(KB_ID_LENGTH), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("sync_folder", Text, nullable=False, server_default=""),  # "" = no scheduled folder sync
    Column("sync_cron", String(100), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False, server_default=""),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),  # argon2id, never the password
    Column("is_admin", Boolean, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    # "config": the ui.auth_user of the configuration (the single login of earlier versions), which
    # stops requiring a login when it leaves the configuration; "app": made in the app or rag-admin.
    Column("origin", String(16), nullable=False, server_default="app"),
)

# Per-user tokens for the HTTP API: only their SHA-256 is kept (a token is 256 random bits, so a
# fast hash is enough); ``prefix`` lets a user tell their tokens apart.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False, server_default=""),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)

memberships = Table(
    "memberships",
    metadata,
    Column("kb", String(KB_ID_LENGTH), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # owner | editor | reader
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),  # None: no accounts
    Column("kbs", Text, nullable=False),  # JSON list of knowledge base ids it searches
    Column("title", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("conversations_user", "user_id", "updated_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("question", Text, nullable=False),
    Column("query", Text, nullable=False, server_default=""),  # what was searched for (a follow-up rewritten)
    Column("answer", Text, nullable=False, server_default=""),
    Column("outcome", String(40), nullable=False),  # answered | refused | not_in_documents | unsupported | error
    Column("citations", Text, nullable=False, server_default="[]"),  # JSON: cited sources with chunk ids
    Column("sources", Text, nullable=False, server_default="[]"),  # JSON: every source shown
    Column("timings", Text, nullable=False, server_default="{}"),  # JSON: milliseconds per stage
    Column("created_at", Float, nullable=False),
    Index("messages_conversation", "conversation_id", "position"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("message_id", String(32), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("kb", String(KB_ID_LENGTH), nullable=False),
    Column("vote", Integer, nullable=False),  # +1 up, -1 down
    Column("comment", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Index("feedback_kb", "kb", "created_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("kb", String(KB_ID_LENGTH), nullable=False, server_default=""),  # "" = not about one knowledge base
    Column("action", String(40), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Index("audit_kb", "kb", "at"),
)
