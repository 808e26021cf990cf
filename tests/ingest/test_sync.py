"""Folder sync, its lock, crash safety under SIGKILL, queries during a sync, the scheduler and an
unreachable Milvus — all on real Milvus Lite, BM25 and registry."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from ingest.settings import MilvusSettings
from ingest.state import StateDatabase
from ingest.stores.milvus_store import VectorStoreError
from ingest.sync import SyncInProgressError, SyncLock
from rag_app.cli import ingest as ingest_cli
from rag_app.config import SchedulerSettings, load_settings
from rag_app.service import KnowledgeBase
from rag_app.service.scheduler import SyncScheduler
from tests.support.knowledge_base import assert_stores_agree
from tests.support.paths import REPO


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _bm25_sources(kb: KnowledgeBase, query: str) -> set[str]:
    """Sources of every BM25 hit for ``query``."""
    hits = kb.bm25.search(kb.tokenizer.tokenize(query), 20)  # type: ignore[union-attr]
    by_id = kb.vectors.fetch([cid for cid, _ in hits])  # type: ignore[union-attr]
    return {hit.source for hit, _ in by_id.values()}


# --- sync on the e5 model ------------------------------------------------------------------------

LIFECYCLE = {
    "observatory.md": "# Observatory\n\nThe aurora observatory opens at nine in the evening for visitors.\n",
    "allowance_zh.txt": "差旅补贴标准为每天三百元，需在出差结束后七天内申请。\n",
    "telescope.md": "# Telescope\n\nQuasar telescope calibration happens every Tuesday morning.\n",
    "pelican.md": "# Birds\n\nPelican migration notes: the pelicans leave the lagoon in October.\n",
}


def test_sync_follows_edits_renames_deletions_and_additions(make_kb, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    _write(folder, LIFECYCLE)
    outside = tmp_path / "elsewhere.md"  # indexed too, but not under the folder: never touched
    outside.write_text("Glacier hiking permits are issued by the park office.\n", encoding="utf-8")
    kb = make_kb()
    kb.indexer.ingest_paths([outside])
    first = kb.indexer.sync_folder(folder)
    assert sorted(first.indexed) == sorted(str(folder / n) for n in LIFECYCLE) and not first.failed
    assert_stores_agree(kb)
    telescope_ids = kb.registry.chunk_ids(str(folder / "telescope.md"))

    (folder / "observatory.md").write_text(
        "# Observatory\n\nThe kestrel observatory opens at ten in the morning for visitors.\n", encoding="utf-8"
    )
    (folder / "sub").mkdir()
    (folder / "telescope.md").rename(folder / "sub" / "quasar-notes.md")
    (folder / "pelican.md").unlink()
    _write(folder, {"zeppelin.md": "# Hangar\n\nZeppelin hangar maintenance is scheduled for March.\n"})
    events: list[str] = []
    second = kb.indexer.sync_folder(folder, progress=lambda e: events.append(e.status))

    renamed_to = str(folder / "sub" / "quasar-notes.md")
    assert sorted(second.indexed) == [str(folder / "observatory.md"), str(folder / "zeppelin.md")]
    assert second.renamed == [(str(folder / "telescope.md"), renamed_to)]
    assert second.removed == [str(folder / "pelican.md")]
    assert second.unchanged == [str(folder / "allowance_zh.txt")]
    assert {"renamed", "removed", "indexed", "unchanged"} <= set(events)
    ids = assert_stores_agree(kb)
    assert {d.source for d in kb.registry.documents()} == {
        str(outside), str(folder / "observatory.md"), str(folder / "allowance_zh.txt"), renamed_to,
        str(folder / "zeppelin.md"),
    }
    # The renamed file kept its chunks (no re-embedding) and results show its new name.
    assert kb.registry.chunk_ids(renamed_to) == telescope_ids and telescope_ids <= ids
    assert kb.registry.get(renamed_to).title == "Telescope"
    result = kb.retriever.run("When does quasar telescope calibration happen?")
    assert result.chunks and result.chunks[0].source == renamed_to and result.chunks[0].chunk_id in telescope_ids

    # New text is found by BM25 and hybrid search; removed text by neither.
    assert _bm25_sources(kb, "kestrel") == {str(folder / "observatory.md")}
    assert _bm25_sources(kb, "zeppelin hangar") == {str(folder / "zeppelin.md")}
    assert _bm25_sources(kb, "aurora") == set() and _bm25_sources(kb, "pelican") == set()
    hybrid = kb.retriever.run("Zeppelin hangar maintenance")
    assert hybrid.chunks and hybrid.chunks[0].source == str(folder / "zeppelin.md")
    for query in ("aurora observatory opening hours", "pelican migration in October"):
        res = kb.retriever.run(query)
        for chunk in res.chunks + res.below_threshold:
            assert "aurora" not in chunk.text and "pelican" not in chunk.text.lower()
            assert chunk.source != str(folder / "pelican.md")

    third = kb.indexer.sync_folder(folder)  # nothing changed: hash checks only
    assert not (third.indexed or third.renamed or third.removed) and len(third.unchanged) == 4
    assert assert_stores_agree(kb) == ids
    assert kb.registry.get(str(outside)) is not None

    # A vanished folder (an unmounted share) is an error, never "delete everything".
    shutil.rmtree(folder)
    with pytest.raises(NotADirectoryError):
        kb.indexer.sync_folder(folder)
    assert assert_stores_agree(kb) == ids


def test_a_folder_that_vanishes_during_a_sync_deletes_nothing(make_kb, tmp_path: Path, monkeypatch) -> None:
    """The folder is there when the sync starts and gone when it is listed (an unmount, a rename:
    the race a scheduler tick can hit); a subfolder cannot be read. Neither empties the index."""
    folder = tmp_path / "docs"
    _write(folder, {"tides.md": "High tide tables are posted every Monday.\n",
                    "sub/ferry.md": "The harbour ferry leaves every forty minutes.\n"})
    kb = make_kb()
    kb.indexer.sync_folder(folder)
    ids = assert_stores_agree(kb)
    assert len(kb.registry.documents()) == 2

    real_check = kb.indexer.check
    moved = tmp_path / "moved-away"

    def check_then_vanish(repair: bool = True):  # type: ignore[no-untyped-def]
        report = real_check(repair)
        folder.rename(moved)  # after sync_folder's own is_dir check, before it lists the folder
        return report

    monkeypatch.setattr(kb.indexer, "check", check_then_vanish)
    with pytest.raises(NotADirectoryError, match="does not exist"):
        kb.indexer.sync_folder(folder)
    monkeypatch.undo()
    assert assert_stores_agree(kb) == ids and len(kb.registry.documents()) == 2

    moved.rename(folder)
    real_scandir = os.scandir

    def unreadable_sub(path):  # type: ignore[no-untyped-def]
        if Path(path) == folder / "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", unreadable_sub)  # root reads every folder: simulate the denial
    report = kb.indexer.sync_folder(folder)
    monkeypatch.undo()
    assert not report.removed and report.chunks_removed == 0 and len(report.unchanged) == 1
    assert (str(folder / "sub"), "folder could not be read (Permission denied)") in report.skipped
    assert assert_stores_agree(kb) == ids and kb.registry.get(str(folder / "sub" / "ferry.md")) is not None

    shutil.rmtree(folder / "sub")  # readable and really gone: now it is a deletion
    report = kb.indexer.sync_folder(folder)
    assert report.removed == [str(folder / "sub" / "ferry.md")]


def test_a_second_sync_at_the_same_time_is_refused(make_kb, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    _write(folder, {"one.md": "Lighthouse keepers log the weather twice a day.\n"})
    kb = make_kb()

    # Another thread mid-sync (held inside its progress callback).
    inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_progress(event) -> None:  # type: ignore[no-untyped-def]
        inside.set()
        release.wait(30)

    def first_sync() -> None:
        try:
            kb.indexer.sync_folder(folder, progress=slow_progress)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=first_sync)
    worker.start()
    try:
        assert inside.wait(60)
        with pytest.raises(SyncInProgressError, match="already running"):
            kb.indexer.sync_folder(folder)
    finally:
        release.set()
        worker.join(60)
    assert not errors

    # Another process holding the sync lease (as rag-ingest --sync would), until it is SIGKILLed.
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from ingest.state import StateDatabase
            from ingest.sync import SyncLock
            SyncLock(StateDatabase({kb.settings.database_url!r})).acquire()
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SyncInProgressError, match=f"held by [^ ]+:{holder.pid}:"):
            kb.indexer.sync_folder(folder)
    finally:
        holder.kill()  # a dead holder on this machine is taken over at once (no wait for expiry)
        holder.wait(30)
    assert kb.indexer.sync_folder(folder).unchanged == [str(folder / "one.md")]  # lock freed


UNCHANGED = {
    "leave_zh.md": "# 年假制度\n\n入职满五年的正式员工每年享有十五天带薪年假，年假需提前一周申请。\n",
    "vpn_en.md": "# VPN\n\nTo connect to the office VPN, install the WireGuard client and import the profile"
    " from the IT portal.\n",
    "expenses_en.md": "# Expenses\n\nTravel expenses must be submitted within 30 days with scanned receipts"
    " attached.\n",
}
QUESTIONS = {
    "入职满五年的员工有几天带薪年假？": "leave_zh.md",
    "How do I connect to the office VPN?": "vpn_en.md",
    "When must travel expenses be submitted?": "expenses_en.md",
}


def test_queries_during_a_sync_keep_answering(make_kb, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    _write(folder, {**UNCHANGED, "changing.md": "Draft: the cafeteria menu rotates weekly.\n"})
    kb = make_kb()
    kb.indexer.sync_folder(folder)
    for question, name in QUESTIONS.items():  # the baseline the threads must keep seeing
        assert kb.retriever.run(question).chunks[0].source == str(folder / name)

    stop = threading.Event()
    problems: list[str] = []
    stamps: list[float] = []

    def ask(offset: int) -> None:
        items = list(QUESTIONS.items())
        i = offset
        while not stop.is_set():
            question, name = items[i % len(items)]
            i += 1
            t = time.monotonic()
            try:
                result = kb.retriever.run(question)
            except Exception as exc:  # noqa: BLE001 - any exception is the failure we look for
                problems.append(f"{question}: {type(exc).__name__}: {exc}")
                continue
            stamps.append(t)
            if not result.chunks:
                problems.append(f"{question}: empty result ({result.note})")
            elif result.chunks[0].source != str(folder / name):
                problems.append(f"{question}: top source {result.chunks[0].source}")

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        start = time.monotonic()
        for round_ in range(2):
            _write(folder, {
                f"new_{round_}_{k}.md": f"# Note {round_}-{k}\n\nThe greenhouse sensor {k} reports humidity"
                f" every {k + round_ + 2} minutes to the dashboard.\n" * 3
                for k in range(3)
            })
            (folder / "changing.md").write_text(f"Draft {round_}: the cafeteria menu rotates daily.\n", encoding="utf-8")
            report = kb.indexer.sync_folder(folder)
            assert len(report.indexed) == 4 and not report.failed
        end = time.monotonic()
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not problems, problems[:5]
    assert sum(start <= s <= end for s in stamps) >= 3, "no query overlapped the syncs"
    assert_stores_agree(kb)


# --- scheduler -------------------------------------------------------------------------------------

def _wait_for(predicate, timeout: float = 60.0, step: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def _try_acquire(lock: SyncLock) -> bool:
    try:
        lock.acquire()
    except SyncInProgressError:
        return False
    return True


def test_scheduler_runs_syncs_and_survives_failures(make_kb, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    _write(folder, {"tides.md": "High tide tables for the harbour are posted every Monday.\n"})
    kb = make_kb()
    scheduler = SyncScheduler(kb, SchedulerSettings(enabled=True, folder=str(folder), interval_seconds=1))
    before = scheduler.status()
    assert before.runs == 0 and before.last_ok is None and not before.scheduler_running
    scheduler.start()
    try:
        status = _wait_for(lambda: (s := scheduler.status()).runs >= 1 and s)
        assert status.last_ok and status.last_error == "" and status.schedule == "every 1 s"
        counts = status.last_counts  # the first run indexed the file; a later one found it unchanged
        assert counts["indexed"] + counts["unchanged"] == 1 and counts["failed"] == 0
        assert kb.registry.get(str(folder / "tides.md")) is not None
        assert ("1 indexed" if counts["indexed"] else "1 unchanged") in status.last_summary
        assert status.scheduled and status.scheduler_running and status.next_run is not None
        assert status.last_started <= status.last_finished and status.folder == str(folder)
        json.dumps(status.as_dict())  # the UI/API can serialise it

        # A failing sync (folder gone) is recorded; the schedule keeps going.
        moved = tmp_path / "moved-away"
        folder.rename(moved)
        failed = _wait_for(lambda: (s := scheduler.status()).last_ok is False and s)
        assert "does not exist" in failed.last_error and failed.failures >= 1
        assert failed.last_summary.startswith("failed:")
        assert failed.last_counts == counts or failed.last_counts["unchanged"] == 1  # last success's
        _wait_for(lambda: scheduler.status().runs >= failed.runs + 1)
        assert scheduler.status().scheduler_running and scheduler.status().next_run is not None
        assert kb.registry.get(str(folder / "tides.md")) is not None  # nothing deleted

        moved.rename(folder)
        _wait_for(lambda: scheduler.status().last_ok)

        # Lock held by someone else: an error in status, not a dead scheduler. (Taken when no
        # periodic run holds it.)
        lock = SyncLock(kb.registry.db)
        _wait_for(lambda: _try_acquire(lock))
        try:
            locked = scheduler.run_now(wait=True, timeout=60)
        finally:
            lock.release()
        assert locked.last_ok is False and "already running" in locked.last_error
        ok = scheduler.run_now(wait=True, timeout=60)
        assert ok.last_ok and ok.last_counts["unchanged"] == 1
    finally:
        scheduler.shutdown()
    assert not scheduler.status().scheduler_running


def test_scheduler_settings_are_validated() -> None:
    assert SchedulerSettings().enabled is False
    assert SchedulerSettings(enabled=True, folder="/docs", cron="*/30 * * * *").cron == "*/30 * * * *"
    with pytest.raises(ValueError, match="cron"):
        SchedulerSettings(cron="every half hour")
    with pytest.raises(ValueError, match="folder"):
        SchedulerSettings(enabled=True, cron="0 2 * * *")
    with pytest.raises(ValueError, match="interval_seconds"):
        SchedulerSettings(enabled=True, folder="/docs")


# --- Milvus unreachable --------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def test_unreachable_milvus_fails_fast_with_a_clear_error(
    tmp_path: Path, e5_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.stores import milvus_store

    uri = f"http://127.0.0.1:{_closed_port()}"
    store = milvus_store.MilvusVectorStore(MilvusSettings(uri=uri), uri, dim=8)
    t0 = time.monotonic()
    with pytest.raises(VectorStoreError, match=re.escape(uri)) as info:
        store.warm_up()
    assert time.monotonic() - t0 < milvus_store.CONNECT_TIMEOUT_S + 5
    assert "reachable" in str(info.value)

    monkeypatch.setattr(milvus_store, "CONNECT_TIMEOUT_S", 1.0)  # the default was timed above
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    monkeypatch.setenv("RAG_MILVUS__URI", uri)
    t0 = time.monotonic()
    status = ingest_cli.main([str(tmp_path), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("rag-ingest: cannot open Milvus at " + uri)
    assert time.monotonic() - t0 < 15  # Milvus is opened before the model is loaded


def test_cli_sync_and_check(tmp_path: Path, e5_model_dir: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    folder = tmp_path / "docs"
    _write(folder, {"a.md": "Beekeeping club meets on Fridays.\n", "b.md": "Orchard pruning starts in February.\n"})
    data = ["--data-dir", str(tmp_path / "data")]
    assert ingest_cli.main(["--sync", str(folder), *data]) == 0
    assert "2 indexed" in capsys.readouterr().out
    (folder / "a.md").rename(folder / "bees.md")
    (folder / "b.md").unlink()
    assert ingest_cli.main(["--sync", str(folder), "--check", *data]) == 0
    out = capsys.readouterr().out
    assert "1 renamed" in out and f"renamed: {folder / 'a.md'} -> {folder / 'bees.md'}" in out
    assert f"removed: {folder / 'b.md'}" in out and "the stores agree" in out
    with SyncLock(StateDatabase(load_settings(data_dir=tmp_path / "data").database_url)):
        assert ingest_cli.main(["--sync", str(folder), *data]) == 3
    assert "already running" in capsys.readouterr().err


# --- crash safety: SIGKILL at random points ---------------------------------------------------------

_WORDS = (
    "harbor lantern copper meadow signal ledger orbit canvas timber falcon quarry beacon summit"
    " willow garnet cobalt prairie vessel anchor thistle marble cinder glacier harvest tunnel"
    " saddle ember pylon raven basalt cedar delta fjord grove heron island jasper kiln lagoon"
    " mosaic nectar onyx pepper quartz ripple spruce tundra umber violet walnut yarrow zenith"
).split()
_MARKER = re.compile(r"\bmk[a-z]{8}\b")

# Imports everything once, then forks one sync process per request: each run starts in well under
# a second instead of paying torch/transformers imports (several seconds on a busy machine).
_FORK_SERVER = r'''
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import AutoModel
from transformers.models.bert import modeling_bert  # noqa: F401  (the child's model class)
import milvus_lite, pymilvus  # noqa: F401
from rag_app.config import load_settings
from rag_app.service import KnowledgeBase
from ingest.text_tokenizer import BM25Tokenizer

BM25Tokenizer().tokenize("warm up")  # jieba's dictionary, built once before forking
config, folder = sys.argv[1], sys.argv[2]


def child():
    t0 = time.monotonic()
    kb = KnowledgeBase(load_settings(config)).warm_up()
    kb.indexer.batch_chunks = 8  # many small commits: many distinct places to die
    print("READY", os.getpid(), f"{time.monotonic() - t0:.3f}", flush=True)
    t1 = time.monotonic()
    report = kb.indexer.sync_folder(folder)
    took = time.monotonic() - t1
    kb.close()
    counts = {k: len(getattr(report, k)) for k in ("indexed", "unchanged", "renamed", "removed", "failed")}
    print("DONE", os.getpid(), f"{took:.3f}", json.dumps(counts), flush=True)


print("SERVER", os.getpid(), flush=True)
for line in sys.stdin:
    if line.strip() != "run":
        break
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child()
        except BaseException as exc:
            print("ERROR", os.getpid(), repr(exc), flush=True)
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print("EXIT", pid, status, flush=True)
'''


def build_tiny_random_bert(folder: Path, words: list[str]) -> Path:
    """A 1-layer, 32-d randomly initialised BERT with a WordLevel vocabulary: loads in well under a
    second and goes through the real ``Embedder`` (mean pooling). Vectors are meaningless."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {t: i for i, t in enumerate(specials + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        model_max_length=128,
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


class _ForkServer:
    """Drives the fork server: one sync process per ``run``; reads its lines with timeouts."""

    def __init__(self, tmp: Path, config: Path, folder: Path) -> None:
        script = tmp / "fork_server.py"
        script.write_text(_FORK_SERVER, encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.log = (tmp / "fork_server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(config), str(folder)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=tmp,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.expect("SERVER", timeout=180)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("EOF")

    def expect(self, *kinds: str, timeout: float = 120) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kinds} line from the fork server in {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            parts = line.split(" ", 3)
            if parts[0] in ("ERROR", "EOF"):
                raise AssertionError(f"sync process failed: {line} (see {self.log.name})")
            if parts[0] in kinds:
                return parts

    def run(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return int(self.expect("READY")[1])

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(30)
        except Exception:  # noqa: BLE001 - cleanup must not mask the test's outcome
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()


def _milvus_lite_servers(db: Path) -> list[psutil.Process]:
    """milvus-lite server processes serving ``db`` (each client process spawns one)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if cmd and Path(cmd[0]).name == "milvus" and str(db) in cmd:
            found.append(proc)
    return found


def _reap_milvus_lite(db: Path, grace: float = 10.0) -> int:
    """Wait for the killed process's milvus-lite server to exit (it stops once the client's file
    lock is gone); SIGKILL it after ``grace`` seconds. Returns how many had to be killed."""
    deadline = time.monotonic() + grace
    while (left := _milvus_lite_servers(db)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for proc in left:
        proc.kill()
    psutil.wait_procs(left, timeout=10)
    assert not _milvus_lite_servers(db)
    return len(left)


def _new_doc(rng: random.Random, paragraphs: int) -> str:
    marker = "mk" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8))
    body = [" ".join(rng.choices(_WORDS, k=rng.randint(15, 40))) + "." for _ in range(paragraphs)]
    body.insert(rng.randrange(len(body) + 1), f"The code word is {marker}.")
    return f"# Note {marker}\n\n" + "\n\n".join(body) + "\n"


def _mutate(folder: Path, rng: random.Random, serial: list[int]) -> None:
    """Edit, rename/move, delete and add a few files (the changes a user makes between syncs)."""
    files = sorted(p for p in folder.rglob("*.md"))
    rng.shuffle(files)
    for path in files[:2]:  # edit: a new paragraph with a new code word
        path.write_text(path.read_text(encoding="utf-8") + "\n" + _new_doc(rng, 1), encoding="utf-8")
    for path in files[2:4]:  # rename or move into a subfolder, content unchanged
        serial[0] += 1
        target = folder / rng.choice(["", "sub", "sub/deeper"]) / f"moved-{serial[0]}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    if len(files) > 12:
        files[4].unlink()
    for _ in range(rng.randint(1, 2)):
        serial[0] += 1
        (folder / f"new-{serial[0]}.md").write_text(_new_doc(rng, rng.randint(2, 5)), encoding="utf-8")


def _assert_converged(settings_path: Path, folder: Path) -> dict[str, int]:
    """Registry == Milvus == BM25, registry == the folder's files and contents, every Milvus row
    names its registry source, every code word findable by BM25 in its own file."""
    from ingest.registry import Registry
    from ingest.stores.bm25_index import BM25Index
    from ingest.stores.milvus_store import MilvusVectorStore
    from ingest.text_tokenizer import BM25Tokenizer
    from rag_app.config import load_settings

    s = load_settings(settings_path)
    registry = Registry(s.registry_path)
    vectors = MilvusVectorStore(s.milvus, s.milvus_uri, 32)
    bm25 = BM25Index(s.bm25_dir)
    tokenizer = BM25Tokenizer()
    try:
        reg, mil, bm = registry.chunk_ids(), vectors.all_ids(), bm25.ids()
        assert reg == mil == bm
        # no duplicate rows anywhere
        assert registry.chunk_count() == vectors.count() == len(bm25) == len(reg)
        files = {str(p): p for p in folder.rglob("*.md")}
        docs = registry.documents()
        assert {d.source for d in docs} == set(files)
        for d in docs:
            assert d.doc_id == hashlib.sha256(files[d.source].read_bytes()).hexdigest(), d.source
            assert d.chunk_count == len(registry.chunk_ids(d.source))
        assert not registry.stale_meta_sources()
        source_of = {cid: d.source for d in docs for cid in registry.chunk_ids(d.source)}
        fetched = vectors.fetch(sorted(reg))
        assert {cid: hit.source for cid, (hit, _) in fetched.items()} == source_of
        for source, path in files.items():
            for marker in _MARKER.findall(path.read_text(encoding="utf-8")):
                hits = bm25.search(tokenizer.tokenize(marker), 5)
                assert hits and {source_of[cid] for cid, _ in hits} == {source}, (marker, source)
        return {"files": len(files), "chunks": len(reg)}
    finally:
        vectors.close()
        bm25.close()
        registry.close()


def _kill_loop(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    model = build_tiny_random_bert(tmp_path / "tiny-model", _WORDS + ["the", "code", "word", "is", "note"])
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(16):
        (folder / f"doc-{i:02d}.md").write_text(_new_doc(rng, rng.randint(2, 6)), encoding="utf-8")
    data = tmp_path / "data"
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(data),
        "log_level": "WARNING",
        "embedder": {"model": str(model), "pooling": "mean", "query_prefix": "", "passage_prefix": "",
                     "max_tokens": 128, "num_threads": 1},
        "chunker": {"target_tokens": 32, "overlap_tokens": 4},
    }))
    db = data / "milvus.db"
    server = _ForkServer(tmp_path, config, folder)
    try:
        server.run()  # the first, complete sync: also measures how long a sync takes
        duration = float(server.expect("DONE")[2])
        server.expect("EXIT")
        _reap_milvus_lite(db)
        killed = completed = forced = 0
        serial = [0]
        while killed < kills:
            assert killed + completed < 4 * kills, "the syncs kept finishing before the kill"
            _mutate(folder, rng, serial)
            pid = server.run()
            # Up to 1.25x the expected length: points spread over the whole sync, some past its end.
            delay = rng.uniform(0.0, 1.25 * duration)
            time.sleep(delay)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            line = server.expect("DONE", "EXIT")
            if line[0] == "DONE":  # finished before the kill: fine, but not counted
                completed += 1
                duration = 0.5 * duration + 0.5 * float(line[2])  # follow the syncs' real length
                line = server.expect("EXIT")
            if os.WIFSIGNALED(int(line[2])):
                killed += 1
            forced += _reap_milvus_lite(db)
        _mutate(folder, rng, serial)
        server.run()  # the final sync runs to completion and must repair everything
        final = json.loads(server.expect("DONE")[3])
        server.expect("EXIT")
        _reap_milvus_lite(db)
    finally:
        server.close()
        for proc in _milvus_lite_servers(db):
            proc.kill()
    assert not final["failed"]
    state = _assert_converged(config, folder)
    # For the record (pytest -s): how the runs went and what the next runs had to repair.
    repairs = re.findall(r"repaired drift.*?: (ConsistencyReport.*)", (tmp_path / "fork_server.log").read_text())
    print(f"\n{killed} killed, {completed} completed before the kill, {forced} milvus-lite servers"
          f" needed SIGKILL; final {final}; {state}; {len(repairs)} repairs:")
    for r in repairs:
        print("  ", re.sub(r"registry=\d+, milvus=\d+, bm25=\d+, ", "", r))


@pytest.mark.integration  # sync processes on Milvus Lite, killed and restarted
def test_tiny_random_sync_converges_after_sigkills(tmp_path: Path) -> None:
    _kill_loop(tmp_path, kills=5, seed=1234)


@pytest.mark.slow
@pytest.mark.integration
def test_tiny_random_sync_converges_after_many_sigkills(tmp_path: Path) -> None:
    _kill_loop(tmp_path, kills=24, seed=20240601)
