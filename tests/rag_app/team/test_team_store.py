"""The team tables on SQLite (the embedded default) and a real PostgreSQL (the server shape):
accounts, tokens, memberships, conversations, feedback, the catalog and the audit log."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from ingest.state import StateDatabase
from rag_app.team import migrate_team_tables
from rag_app.team.accounts import AccountError, Accounts, role_at_least
from rag_app.team.audit import AuditLog
from rag_app.team.conversations import Conversations
from rag_app.team.feedback import FeedbackStore, training_lines
from rag_app.team.knowledge_bases import KnowledgeBaseCatalog, KnowledgeBaseError


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 's.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = StateDatabase(url).warm_up()
    migrate_team_tables(database)
    migrate_team_tables(database)  # a second start finds nothing to do
    yield database
    database.close()


def test_accounts_hash_passwords_and_refuse_bad_ones(db: StateDatabase) -> None:
    accounts = Accounts(db)
    admin = accounts.create("root", "correct horse", is_admin=True)
    with pytest.raises(AccountError, match="already exists"):
        accounts.create("root", "another one")
    with pytest.raises(AccountError, match="at least 8"):
        accounts.create("short", "1234567")
    for name in ("", "a\nb", "a:b", "x" * 65):
        with pytest.raises(AccountError):
            accounts.create(name, "long enough")
    assert accounts.authenticate("root", "correct horse") == admin
    assert accounts.authenticate("root", "wrong horse") is None and accounts.authenticate("nobody", "x") is None
    with db.read() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    with pytest.raises(AccountError, match="last admin"):
        accounts.set_admin(admin.id, False)
    with pytest.raises(AccountError, match="last admin"):
        accounts.delete(admin.id)
    accounts.set_password(admin.id, "battery staple")
    assert accounts.authenticate("root", "correct horse") is None and accounts.authenticate("root", "battery staple")


def test_configured_logins_are_locked_when_they_leave_the_configuration(db: StateDatabase) -> None:
    accounts = Accounts(db)
    accounts.create("team", "configured pw", is_admin=True, origin="config")
    accounts.create("alice", "alice's pw")
    assert accounts.count() == 2 and accounts.count(made_in_app=True) == 1
    assert accounts.lock_configured_logins(keep="team") == 0
    assert accounts.lock_configured_logins(keep="") == 1
    assert accounts.authenticate("team", "configured pw") is None and accounts.authenticate("alice", "alice's pw")


def test_tokens_memberships_and_roles(db: StateDatabase) -> None:
    accounts, catalog = Accounts(db), KnowledgeBaseCatalog(db)
    alice = accounts.create("alice", "alice's pw")
    hr = catalog.create("HR", "policies", created_by="root")
    with pytest.raises(KnowledgeBaseError, match="already exists"):
        catalog.create("HR")
    token, info = accounts.create_token(alice.id, "ci")
    assert accounts.user_for_token(token) == alice and accounts.user_for_token(token + "x") is None
    assert accounts.tokens(alice.id)[0].last_used_at is not None and info.prefix == token[:12]
    with db.read() as conn:
        assert token not in str(conn.execute(text("SELECT * FROM api_tokens")).all())
    accounts.set_role(hr.id, alice.id, "reader")
    accounts.set_role(hr.id, alice.id, "editor")  # changed, not duplicated
    assert accounts.roles_of(alice.id) == {hr.id: "editor"} and accounts.role_of(hr.id, alice.id) == "editor"
    assert role_at_least("editor", "reader") and not role_at_least("editor", "owner")
    with pytest.raises(AccountError):
        accounts.set_role("no-such-kb", alice.id, "reader")
    assert catalog.update(hr.id, name="People").name == "People"
    catalog.remove(hr.id)
    assert accounts.roles_of(alice.id) == {}  # the membership went with its knowledge base
    accounts.create("root", "root's password", is_admin=True)
    accounts.delete(alice.id)
    assert accounts.user_for_token(token) is None


def test_conversations_feedback_and_audit(db: StateDatabase) -> None:
    accounts, conversations, feedback, audit = Accounts(db), Conversations(db), FeedbackStore(db), AuditLog(db)
    alice, bob = accounts.create("alice", "alice's pw"), accounts.create("bob", "bob's pass")
    chat = conversations.create(alice.id, ["hr"])
    cited = [{"number": 1, "chunk_id": "c1", "kb": "hr", "text": "18 days"}]
    first = conversations.add_message(chat.id, question="How many days?", query="How many days?", answer="18 [1]",
                                      outcome="answered", citations=cited, sources=cited, timings={"total_s": 1.5})
    conversations.add_message(chat.id, question="And after ten years?", query="days after ten years",
                              answer="20 [1]", outcome="answered", citations=[], sources=[], timings={})
    assert conversations.get(alice.id, chat.id).title == "How many days?"  # type: ignore[union-attr]
    assert conversations.get(bob.id, chat.id) is None and conversations.of_user(bob.id) == []
    assert conversations.history(chat.id, turns=1) == [
        {"role": "user", "content": "And after ten years?"}, {"role": "assistant", "content": "20 [1]"}]
    feedback.record(first.id, alice.id, "hr", 1)
    feedback.record(first.id, alice.id, "hr", -1, "wrong")
    items = feedback.for_kb("hr")
    assert [(i.vote, i.comment, i.cited_chunks) for i in items] == [(-1, "wrong", ["c1"])]
    feedback.record(first.id, alice.id, "hr", 1)
    lines = training_lines(feedback.for_kb("hr"), lambda ids: {"c1": "Staff get 18 days."})
    assert lines == ['{"query": "How many days?", "pos": ["Staff get 18 days."], "neg": [], "pos_id": "c1",'
                     ' "generator": "feedback"}']
    assert conversations.delete(bob.id, chat.id) is False
    assert conversations.delete_for_kb("hr") == 1
    assert conversations.of_user(alice.id) == [] and feedback.for_kb("hr") == []
    audit.record("alice", "documents.upload", "a.md", kb="hr")
    audit.record("root", "user.create", "bob")
    assert [e.action for e in audit.entries("hr")] == ["documents.upload"]
    assert [e.action for e in audit.entries()] == ["user.create", "documents.upload"]
