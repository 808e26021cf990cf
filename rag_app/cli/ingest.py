"""``rag-ingest PATH...`` / ``rag-ingest --sync FOLDER`` / ``--check`` / ``--delete SOURCE...`` / ``--calibrate``
/ ``--migrate-from OLD``.

After a change that moved more than ``calibration.recalibrate_share`` of the chunks (or on a knowledge
base never calibrated), the refusal cutoff and fusion are re-calibrated before it exits, unless
``calibration.automatic`` is off or ``--no-calibrate`` is given (the app then does it in the
background on start-up); ``--calibrate`` calibrates whatever changed.

Exit status: 0 done, 1 nothing could be indexed (or the sync folder is missing, or the stores
still disagree after --check), 2 the stores could not be opened (e.g. Milvus down), 3 another sync
of the same data directory is running.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ingest.beir import is_beir_dir
from ingest.indexer import ConsistencyReport
from ingest.sync import SyncInProgressError
from ingest.types import IngestReport
from rag_app.config import DEFAULT_CONFIG, Settings, load_settings
from rag_app.service import NotEnoughToCalibrate, RagService

from .common import STORE_ERRORS, add_common_options, ingest_progress, load_cli_settings, open_service, progress_bar

PROG = "rag-ingest"
OLD_ENV_PREFIX = "RAG_OLD_"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Index files or folders (PDF, scanned PDF, DOCX, XLSX, CSV, PPTX, EML, PNG/JPEG/TIFF, Markdown, "
        "HTML, TXT; BEIR corpus folders too).",
    )
    parser.add_argument("paths", nargs="*", help="files or folders to index")
    parser.add_argument("--check", action="store_true", help="verify registry, Milvus and BM25 agree; repair drift")
    parser.add_argument("--delete", nargs="+", metavar="SOURCE", help="remove these indexed sources")
    parser.add_argument(
        "--sync",
        metavar="FOLDER",
        help="mirror FOLDER: index new and changed files, follow renames, remove sources whose files are gone",
    )
    parser.add_argument(
        "--migrate-from",
        metavar="OLD",
        help="copy the knowledge base of OLD (a config file, or the data directory of the embedded default)"
        " into the stores this configuration names, e.g. to Milvus full-text search and PostgreSQL; no"
        " re-embedding, resumable",
    )
    parser.add_argument("--calibrate", action="store_true",
                        help="calibrate the refusal cutoff and fusion on this knowledge base now")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="do not re-calibrate after a material change (the app will, on start-up)")
    add_common_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not (args.paths or args.check or args.delete or args.sync or args.calibrate or args.migrate_from):
        parser.error("give at least one PATH, --sync, --check, --delete, --calibrate or --migrate-from")
    if args.calibrate and args.no_calibrate:
        parser.error("--calibrate and --no-calibrate contradict each other")
    service = open_service(load_cli_settings(args), PROG)
    if service is None:
        return 2
    try:
        return _run(service, args)
    except STORE_ERRORS as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    finally:
        service.close()


def _run(service: RagService, args: argparse.Namespace) -> int:
    status = 0
    if args.migrate_from:
        status = _migrate(service, args.migrate_from)
        if status:
            return status
    if args.delete:
        n = service.delete_sources(args.delete)
        print(f"removed {len(args.delete)} source(s), {n} chunks")
    if args.sync:
        bar = progress_bar(f"syncing {args.sync}", "file")
        try:
            report = service.sync_folder(args.sync, ingest_progress(bar))
        except SyncInProgressError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 3
        except NotADirectoryError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
        finally:
            bar.close()
        print_summary(report)
    if args.paths:
        report = _ingest(service, args.paths)
        print_summary(report)
        status = 1 if report.failed and not report.indexed and not report.unchanged else 0
    if args.check:
        check = service.check(repair=True)
        _print_check(check)
        if not check.agree_now:
            status = 1
    if args.calibrate or (service.settings.calibration.automatic and not args.no_calibrate):
        _calibrate(service, force=args.calibrate)
    return status


def _old_settings(old: str) -> Settings:
    """The settings of the knowledge base to migrate: a config file, or an embedded-default data
    directory. Read without this process's RAG_* variables (they describe the new stores); the old
    configuration's own secrets can come from RAG_OLD_* (e.g. RAG_OLD_MILVUS__TOKEN)."""
    path = Path(old)
    if path.is_dir():
        return load_settings(DEFAULT_CONFIG, env_prefix=OLD_ENV_PREFIX, data_dir=path)
    if path.is_file():
        return load_settings(path, env_prefix=OLD_ENV_PREFIX)
    raise FileNotFoundError(f"--migrate-from {old}: no such config file or data directory")


def _migrate(service: RagService, old: str) -> int:
    try:
        source = _old_settings(old)
    except (OSError, ValueError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    bar = progress_bar(f"migrating from {old}", "doc")

    def progress(done: int, total: int, _source: str) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        report = service.migrate_from(source, progress)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(
        f"migration: {report.documents} documents; {report.copied} copied ({report.chunks_copied} chunks),"
        f" {report.already_there} already there, {len(report.incomplete)} left behind"
    )
    for source_name, why in report.incomplete:
        print(f"  left behind: {source_name}: {why}")
    if report.check is not None:
        _print_check(report.check)
    return 1 if report.incomplete or (report.check is not None and not report.check.agree_now) else 0


def _calibrate(service: RagService, *, force: bool) -> None:
    bar = progress_bar("calibrating", "q")

    def progress(stage: str, done: int, total: int) -> None:
        bar.set_description(f"calibrating: {stage}")
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        cal = service.calibrate(progress) if force else service.calibrate_if_stale(progress)
    except NotEnoughToCalibrate as exc:
        print(f"calibration: not calibrated ({exc}); the fallback threshold stays in use")
        return
    finally:
        bar.close()
    if cal is None:
        return
    print(
        f"calibration: relevance = {cal.score_label} >= {cal.min_value:.4g}; on this knowledge base it answers"
        f" {cal.probes_answered:.0%} of {cal.probes} probe questions and refuses {cal.offtopic_refused:.0%} of"
        f" {cal.offtopic} off-topic questions ({cal.seconds:.0f} s)"
    )
    print(f"calibration: fusion {cal.fusion_note}")


def _ingest(service: RagService, paths: Sequence[str]) -> IngestReport:
    report = IngestReport()
    for path in paths:
        if is_beir_dir(path):
            bar = progress_bar(f"indexing {Path(path).name}", "doc")
            part = service.ingest_corpus(path, ingest_progress(bar))
        else:
            bar = progress_bar(f"indexing {path}", "file")
            part = service.ingest_paths([path], ingest_progress(bar))
        bar.close()
        _merge(report, part)
    return report


def _merge(into: IngestReport, part: IngestReport) -> None:
    for name in ("indexed", "unchanged", "duplicates", "failed", "skipped", "removed", "renamed", "notes"):
        getattr(into, name).extend(getattr(part, name))
    into.chunks_added += part.chunks_added
    into.chunks_removed += part.chunks_removed


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


def print_summary(r: IngestReport) -> None:
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
    for source, note in r.notes:
        print(f"  note: {source}: {note}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
