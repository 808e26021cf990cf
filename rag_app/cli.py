"""Command line: ``rag-ingest PATH...`` / ``rag-ingest --sync FOLDER`` and ``rag-search "query"``.

Exit status of rag-ingest: 0 done, 1 nothing could be indexed (or the sync folder is missing, or
the stores still disagree after --check), 2 the stores could not be opened (e.g. Milvus down),
3 another sync of the same data directory is running.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from ingest.beir import corpus_size, is_beir_dir, iter_corpus
from ingest.indexer import ConsistencyReport, IngestEvent
from ingest.stores.milvus_store import VectorStoreError
from ingest.sync import SyncInProgressError
from ingest.types import IngestReport
from rag_app.config import Settings, load_settings
from rag_app.knowledge_base import KnowledgeBase

log = logging.getLogger("rag_app.cli")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML settings file (default: $RAG_CONFIG or configs/default.yaml)")
    parser.add_argument("--data-dir", help="data directory (overrides the config)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"data_dir": Path(args.data_dir)} if args.data_dir else {}
    settings = load_settings(args.config, **overrides)
    level = logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Third-party chatter would bury the progress bar.
    for noisy in ("jieba", "pymilvus", "httpx", "urllib3", "transformers"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return settings


def _open_kb(settings: Settings, prog: str) -> KnowledgeBase | None:
    """A warmed knowledge base, or None after printing why it could not be opened."""
    try:
        return KnowledgeBase(settings).warm_up()
    except (VectorStoreError, RuntimeError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def ingest_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rag-ingest",
        description="Index files or folders (PDF, DOCX, Markdown, HTML, TXT; BEIR corpus folders too).",
    )
    parser.add_argument("paths", nargs="*", help="files or folders to index")
    parser.add_argument("--check", action="store_true", help="verify registry, Milvus and BM25 agree; repair drift")
    parser.add_argument("--delete", nargs="+", metavar="SOURCE", help="remove these indexed sources")
    parser.add_argument(
        "--sync",
        metavar="FOLDER",
        help="mirror FOLDER: index new and changed files, follow renames, remove sources whose files are gone",
    )
    _common(parser)
    args = parser.parse_args(argv)
    if not (args.paths or args.check or args.delete or args.sync):
        parser.error("give at least one PATH, --sync, --check or --delete")
    kb = _open_kb(_settings(args), "rag-ingest")
    if kb is None:
        return 2
    try:
        assert kb.indexer is not None
        status = 0
        if args.delete:
            n = kb.indexer.delete_sources(args.delete)
            print(f"removed {len(args.delete)} source(s), {n} chunks")
        if args.sync:
            try:
                report = _sync(kb, args.sync)
            except SyncInProgressError as exc:
                print(f"rag-ingest: {exc}", file=sys.stderr)
                return 3
            except NotADirectoryError as exc:
                print(f"rag-ingest: {exc}", file=sys.stderr)
                return 1
            _print_summary(report)
        if args.paths:
            report = _ingest(kb, args.paths)
            _print_summary(report)
            status = 1 if report.failed and not report.indexed and not report.unchanged else 0
        if args.check:
            check = kb.indexer.check(repair=True)
            _print_check(check)
            if not check.agree_now:
                status = 1
        return status
    except VectorStoreError as exc:
        print(f"rag-ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        kb.close()


def _print_check(check: ConsistencyReport) -> None:
    print(
        f"check: registry {check.registry}, Milvus {check.milvus}, BM25 {check.bm25} chunks;"
        f" orphans removed {check.orphans_removed}, BM25 restored {check.bm25_restored},"
        f" documents to re-index {len(check.documents_dropped)}, renames finished {check.sources_relabelled}"
    )
    if check.consistent:
        print(f"check: OK, the stores agree ({check.registry} chunks in the registry, Milvus and BM25)")
    elif check.agree_now:
        print("check: the stores disagreed and were repaired; they agree now")
    else:
        print("check: the stores still DISAGREE after repair; run the check again or re-index")


def _ingest(kb: KnowledgeBase, paths: Sequence[str]) -> IngestReport:
    from tqdm import tqdm

    assert kb.indexer is not None
    report = IngestReport()
    for path in paths:
        disable = not sys.stderr.isatty() and os.environ.get("RAG_PROGRESS") != "1"
        if is_beir_dir(path):
            total = corpus_size(path)
            bar = tqdm(total=total, desc=f"indexing {Path(path).name}", unit="doc", disable=disable)
            part = kb.indexer.ingest_documents(iter_corpus(path), _bar_callback(bar), total=total)
        else:
            bar = tqdm(desc=f"indexing {path}", unit="file", disable=disable)
            part = kb.indexer.ingest_paths([path], _bar_callback(bar))
        bar.close()
        _merge(report, part)
    return report


def _sync(kb: KnowledgeBase, folder: str) -> IngestReport:
    from tqdm import tqdm

    assert kb.indexer is not None
    disable = not sys.stderr.isatty() and os.environ.get("RAG_PROGRESS") != "1"
    bar = tqdm(desc=f"syncing {folder}", unit="file", disable=disable)
    try:
        return kb.indexer.sync_folder(folder, _bar_callback(bar))
    finally:
        bar.close()


def _bar_callback(bar):  # type: ignore[no-untyped-def]
    def on_event(event: IngestEvent) -> None:
        if event.status in ("removed", "renamed"):  # not files of the scan: no bar step
            return
        if event.total is not None and bar.total != event.total:
            bar.total = event.total
        bar.update(1)
        if event.status == "failed":
            bar.write(f"  failed: {event.source}: {event.detail}")

    return on_event


def _merge(into: IngestReport, part: IngestReport) -> None:
    for name in ("indexed", "unchanged", "duplicates", "failed", "skipped", "removed", "renamed"):
        getattr(into, name).extend(getattr(part, name))
    into.chunks_added += part.chunks_added
    into.chunks_removed += part.chunks_removed


def _print_summary(r: IngestReport) -> None:
    print(
        f"files: {r.files_seen} seen, {len(r.indexed)} indexed, {len(r.unchanged)} unchanged,"
        f" {len(r.duplicates)} duplicate, {len(r.skipped)} skipped, {len(r.failed)} failed"
        + (f", {len(r.renamed)} renamed" if r.renamed else "")
    )
    if r.removed:
        print(f"sources removed: {len(r.removed)}")
    print(f"chunks: {r.chunks_added} added, {r.chunks_removed} removed")
    for old, new in r.renamed:
        print(f"  renamed: {old} -> {new}")
    for source in r.removed:
        print(f"  removed: {source}")
    for source, original in r.duplicates:
        print(f"  duplicate: {source} (same content as {original})")
    for source, reason in r.skipped:
        print(f"  skipped: {source}: {reason}")
    for source, reason in r.failed:
        print(f"  failed: {source}: {reason}")


def search_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag-search", description="Hybrid search of the knowledge base.")
    parser.add_argument("query")
    parser.add_argument("-k", "--top-k", type=int, default=None, help="results to show")
    parser.add_argument("--all", action="store_true", help="also show candidates below the threshold")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    _common(parser)
    args = parser.parse_args(argv)
    kb = _open_kb(_settings(args), "rag-search")
    if kb is None:
        return 2
    try:
        assert kb.retriever is not None
        result = kb.retriever.run(args.query, top_k=args.top_k)
    except VectorStoreError as exc:
        print(f"rag-search: {exc}", file=sys.stderr)
        return 2
    finally:
        kb.close()
    rows = result.chunks + (result.below_threshold if args.all else [])
    if args.json:
        print(json.dumps({"query": result.query, "note": result.note, "timings_ms": result.timings_ms,
                          "results": [dict(vars(c), passed=c in result.chunks) for c in rows]},
                         ensure_ascii=False, indent=2))
        return 0
    if not result.chunks:
        print(f"no evidence: {result.note}")
    for i, c in enumerate(rows, start=1):
        mark = "" if c in result.chunks else " (below threshold)"
        loc = f" [{c.location}]" if c.location else ""
        print(f"{i}. {c.source}{loc}{mark}")
        rerank = f" rerank={c.rerank_score:.3f}" if c.rerank_score is not None else ""
        print(
            f"   fused={c.fused_score:.4f} dense={c.dense_score:.3f} (margin={c.dense_margin:+.3f},"
            f" z={c.dense_z:.2f}, rank {c.dense_rank})"
            f" bm25={c.bm25_score:.2f} (rank {c.bm25_rank}){rerank}"
        )
        snippet = " ".join(c.text.split())
        print(f"   {snippet[:240]}{'…' if len(snippet) > 240 else ''}")
    print(f"({result.candidates} candidates, {result.timings_ms.get('total', 0):.0f} ms)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(ingest_main())
