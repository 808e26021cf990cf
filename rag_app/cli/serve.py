"""``rag-app``: open the service (knowledge base warmed), then serve the UI and the JSON API with uvicorn.

The LLM is built on the first question that needs it (refusals never do), so the UI is up as soon
as the embedder is loaded and the stores are open.
"""
from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ingest.stores.milvus_store import VectorStoreError
from rag_app.config import Settings
from rag_app.service import Workspace

from .common import add_common_options, load_cli_settings

log = logging.getLogger("rag_app.server")

EXIT_LOCKED = 2


def milvus_lite_lock_holder(settings: Settings) -> Path | None:
    """The lock file of the Milvus Lite database when another process holds it, else None.

    Milvus Lite takes an exclusive ``lockf`` on ``.<db file>.lock`` for as long as a process has the
    database open; probing it here turns pymilvus' generic "Open local milvus failed" into a clear
    message. (Our probe lock is released at once; we have not opened the database yet.)
    """
    if not settings.is_milvus_lite:
        return None
    db = Path(settings.milvus_uri)
    lock = db.parent / f".{db.name}.lock"
    if not lock.exists():
        return None
    try:
        with open(lock, "a") as fh:
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return lock
            fcntl.lockf(fh, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


def _locked_message(settings: Settings) -> str:
    return (
        f"rag-app: the Milvus Lite database {settings.milvus_uri} is in use by another process "
        "(another rag-app, or a rag-ingest still running on the same data directory). "
        "Stop it, or start this one with another --data-dir."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag-app", description="Serve the knowledge base Q&A UI and JSON API.")
    parser.add_argument("--host", help="bind address (default from ui.host: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default from ui.port: 7860)")
    add_common_options(parser)
    args = parser.parse_args(argv)
    try:
        settings = load_cli_settings(args)
    except (OSError, ValueError) as exc:
        print(f"rag-app: invalid settings: {exc}", file=sys.stderr)
        return 2
    ui_changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if ui_changes:
        settings.ui = settings.ui.model_copy(update=ui_changes)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "True" if settings.ui.analytics else "False")

    if milvus_lite_lock_holder(settings) is not None:
        print(_locked_message(settings), file=sys.stderr)
        return EXIT_LOCKED
    try:
        workspace = Workspace.open(settings)
    except VectorStoreError as exc:
        locked = settings.is_milvus_lite and milvus_lite_lock_holder(settings) is not None
        print(_locked_message(settings) if locked else f"rag-app: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except (RuntimeError, OSError) as exc:
        print(f"rag-app: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from rag_app.web import create_app

    app = create_app(settings, workspace=workspace)
    ui = settings.ui
    if ui.host not in ("127.0.0.1", "localhost", "::1") and not workspace.accounts_enabled:
        log.warning("serving on %s without a login: set ui.auth_user and ui.auth_password, or create an admin"
                    " with rag-admin create-user --admin", ui.host)
    log.info("open http://%s:%d/ (API under /api)", ui.host, ui.port)
    level = logging.getLogger().getEffectiveLevel()
    try:
        uvicorn.run(app, host=ui.host, port=ui.port, log_level=logging.getLevelName(max(level, logging.INFO)).lower())
    finally:
        workspace.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
