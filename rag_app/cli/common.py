"""What every command shares: the common options, settings and logging, opening the service, and
progress bars (shown on a terminal, or when ``RAG_PROGRESS=1``)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from ingest.indexer import IngestEvent, ProgressCallback
from ingest.state import StateDatabaseError
from ingest.stores.milvus_store import VectorStoreError
from rag_app.config import Settings, load_settings
from rag_app.service import RagService

# A store that failed or went away: one line for the user, not a traceback.
STORE_ERRORS = (VectorStoreError, StateDatabaseError, SQLAlchemyError)

# Third-party chatter would bury the progress bars and the summary.
_NOISY_LOGGERS = ("jieba", "pymilvus", "httpx", "urllib3", "transformers", "httpcore", "multipart", "alembic")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML settings file (default: $RAG_CONFIG or configs/default.yaml)")
    parser.add_argument("--data-dir", help="data directory (overrides the config)")
    parser.add_argument("--kb", help="knowledge base, by id or name (default: the default one)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def load_cli_settings(args: argparse.Namespace) -> Settings:
    """The settings named by ``--config``/``--data-dir``, with logging set up from them.
    Raises OSError or ValueError (pydantic's ValidationError) for a bad file."""
    overrides: dict[str, Any] = {"data_dir": Path(args.data_dir)} if args.data_dir else {}
    settings = load_settings(args.config, **overrides)
    level = logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if getattr(args, "kb", None):
        try:
            settings = _for_knowledge_base(settings, args.kb)
        except ValueError as exc:
            raise SystemExit(f"--kb: {exc}") from None
    return settings


def _for_knowledge_base(settings: Settings, name_or_id: str) -> Settings:
    """The settings of the knowledge base ``--kb`` names (ValueError when there is none)."""
    from ingest.state import StateDatabase
    from rag_app.service import find_knowledge_base, knowledge_base_settings
    from rag_app.team import migrate_team_tables
    from rag_app.team.knowledge_bases import KnowledgeBaseCatalog

    db = StateDatabase(settings.database_url).warm_up()
    try:
        migrate_team_tables(db)
        catalog = KnowledgeBaseCatalog(db)
        catalog.ensure_default()
        try:
            return knowledge_base_settings(settings, find_knowledge_base(catalog, name_or_id))
        except LookupError as exc:
            raise ValueError(str(exc)) from None
    finally:
        db.close()


def open_service(settings: Settings, prog: str) -> RagService | None:
    """A service over the warmed knowledge base (no background schedule), or None after printing
    why it could not be opened."""
    try:
        return RagService.open(settings, background=False)
    except (*STORE_ERRORS, RuntimeError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def progress_bar(desc: str, unit: str, total: int | None = None) -> Any:
    disable = not sys.stderr.isatty() and os.environ.get("RAG_PROGRESS") != "1"
    return tqdm(desc=desc, unit=unit, total=total, disable=disable)


def ingest_progress(bar: Any) -> ProgressCallback:
    """An indexer progress callback that steps ``bar`` once per file and prints failures."""

    def on_event(event: IngestEvent) -> None:
        if event.status in ("removed", "renamed"):  # not files of the scan: no bar step
            return
        if event.total is not None and bar.total != event.total:
            bar.total = event.total
        bar.update(1)
        if event.status == "failed":
            bar.write(f"  failed: {event.source}: {event.detail}")

    return on_event
