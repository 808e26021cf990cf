"""rag-admin: users, knowledge bases and members from the command line (the first admin included).

    rag-admin create-user NAME [--admin]      # asks for the password (or --password-stdin)
    rag-admin set-password NAME
    rag-admin delete-user NAME
    rag-admin users
    rag-admin create-kb NAME [--description TEXT]
    rag-admin kbs
    rag-admin delete-kb NAME_OR_ID --yes      # everything in it: vectors, BM25, registry, uploads...
    rag-admin member KB USER reader|editor|owner
    rag-admin remove-member KB USER
    rag-admin token USER [--name NAME]        # a new API token for USER, printed once

Once a user exists, the app asks everyone to sign in (restart a running app to switch it on).
Every change is written to the audit log as done by ``rag-admin``.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence

from ingest.state import StateDatabase
from rag_app.config import Settings
from rag_app.service import LOCAL, Forbidden, NotFound, Workspace, find_knowledge_base
from rag_app.team import migrate_team_tables
from rag_app.team.accounts import AccountError, Accounts, parse_role
from rag_app.team.audit import AuditLog
from rag_app.team.knowledge_bases import KnowledgeBaseCatalog, KnowledgeBaseError

from .common import STORE_ERRORS, add_common_options, load_cli_settings

PROG = "rag-admin"
ACTOR = "rag-admin"


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise AccountError("the two passwords differ")
    return first


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_common_options(p)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("create-user", "set-password"):
        cmd = sub.add_parser(name)
        cmd.add_argument("name")
        cmd.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
        if name == "create-user":
            cmd.add_argument("--admin", action="store_true", help="may create users and knowledge bases")
    sub.add_parser("delete-user").add_argument("name")
    sub.add_parser("users")
    kb = sub.add_parser("create-kb")
    kb.add_argument("name")
    kb.add_argument("--description", default="")
    sub.add_parser("kbs")
    delete = sub.add_parser("delete-kb")
    delete.add_argument("knowledge_base", help="id or name")
    delete.add_argument("--yes", action="store_true", help="really delete it and everything in it")
    member = sub.add_parser("member")
    member.add_argument("knowledge_base", help="id or name")
    member.add_argument("user")
    member.add_argument("role", choices=["reader", "editor", "owner"])
    remove = sub.add_parser("remove-member")
    remove.add_argument("knowledge_base", help="id or name")
    remove.add_argument("user")
    token = sub.add_parser("token")
    token.add_argument("user")
    token.add_argument("--name", default="rag-admin")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_cli_settings(args)
    except (OSError, ValueError) as exc:
        print(f"{PROG}: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "delete-kb":
            return _delete_kb(settings, args)
        db = StateDatabase(settings.database_url).warm_up()
        try:
            migrate_team_tables(db)
            return _run(db, args)
        finally:
            db.close()
    except (AccountError, KnowledgeBaseError, NotFound, Forbidden) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except STORE_ERRORS as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


def _run(db: StateDatabase, args: argparse.Namespace) -> int:
    accounts, catalog, audit = Accounts(db), KnowledgeBaseCatalog(db), AuditLog(db)
    catalog.ensure_default()

    def user_named(name: str) -> int:
        user = accounts.by_name(name)
        if user is None:
            raise NotFound(f"no user named {name!r}")
        return user.id

    command = args.command
    if command == "create-user":
        user = accounts.create(args.name, _password(args), is_admin=args.admin)
        audit.record(ACTOR, "user.create", f"{user.name}{' (admin)' if user.is_admin else ''}")
        print(f"created {'admin ' if user.is_admin else ''}user {user.name}")
    elif command == "set-password":
        accounts.set_password(user_named(args.name), _password(args))
        audit.record(ACTOR, "user.password", args.name)
        print(f"password of {args.name} changed")
    elif command == "delete-user":
        accounts.delete(user_named(args.name))
        audit.record(ACTOR, "user.delete", args.name)
        print(f"deleted user {args.name}")
    elif command == "users":
        for user in accounts.users():
            roles = ", ".join(f"{kb}: {role}" for kb, role in sorted(accounts.roles_of(user.id).items()))
            print(f"{user.name}{' (admin)' if user.is_admin else ''}{' · ' + roles if roles else ''}")
    elif command == "create-kb":
        record = catalog.create(args.name, args.description, created_by=ACTOR)
        audit.record(ACTOR, "kb.create", f"{record.name} ({record.id})", kb=record.id)
        print(f"created knowledge base {record.name} ({record.id})")
    elif command == "kbs":
        for record in catalog.list():
            print(f"{record.id}\t{record.name}\t{record.description}")
    elif command == "member":
        record = find_knowledge_base(catalog, args.knowledge_base)
        accounts.set_role(record.id, user_named(args.user), parse_role(args.role))
        audit.record(ACTOR, "member.set", f"{args.user}: {args.role}", kb=record.id)
        print(f"{args.user} is now a {args.role} of {record.name}")
    elif command == "remove-member":
        record = find_knowledge_base(catalog, args.knowledge_base)
        if not accounts.remove_member(record.id, user_named(args.user)):
            raise NotFound(f"{args.user} is not a member of {record.name}")
        audit.record(ACTOR, "member.remove", args.user, kb=record.id)
        print(f"removed {args.user} from {record.name}")
    elif command == "token":
        token, _ = accounts.create_token(user_named(args.user), args.name)
        audit.record(ACTOR, "token.create", args.user)
        print(token)
    return 0


def _delete_kb(settings: Settings, args: argparse.Namespace) -> int:
    if not args.yes:
        print(f"{PROG}: deleting a knowledge base removes everything in it; add --yes", file=sys.stderr)
        return 1
    workspace = Workspace.open(settings, background=False)
    try:
        record = find_knowledge_base(workspace.catalog, args.knowledge_base)
        done = workspace.delete_knowledge_base(LOCAL, record.id)
        print(f"deleted knowledge base {done['name']} ({done['id']}): {done['chunks']} chunks,"
              f" {done['conversations']} conversations")
    finally:
        workspace.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
