"""Incremental, persistent BM25 keyword index, scored by ``rank_bm25.BM25Okapi``'s formula.

Scoring (identical to rank_bm25 0.2.2's code over the *live* documents), with one of two idfs:
  ``idf="lucene"`` (the default): the formula of Lucene and of Milvus full-text search, so the
  in-process index ranks exactly as ``bm25.backend: milvus`` does; never negative, no floor:
  idf(t)   = log(1 + (N - df + 0.5)/(df + 0.5))           N, df over live documents
  ``idf="okapi"``: rank_bm25's own:
  idf(t)   = log(N - df + 0.5) - log(df + 0.5)
  idf(t)   = epsilon * mean(idf over all live terms)       where idf(t) < 0
  and for both
  score(d) = sum over query tokens q (repeats count again) of
             idf(q) * tf*(k1+1) / (tf + k1*(1 - b + b*len(d)/avgdl))

Layout (a small log-structured design, so adds never rewrite the whole index):
  * every document gets an internal *slot* (monotonic int); ``_slot_of`` maps chunk id -> slot;
  * postings live in immutable CSR *segments* (sorted term ids, indptr, slots, tfs), one per
    ``add`` call (bulk adds are cut at ``MAX_BATCH_TOKENS`` tokens to bound memory), merged
    binary-counter style (the newest segment is merged into its left neighbour while that one
    is at most ``MERGE_FACTOR`` times larger) so there are O(log N) segments and each posting
    is re-merged O(log N) times, up to ``MAX_SEGMENT_POSTINGS`` per segment (beyond, full
    segments accumulate: merge memory stays bounded as the corpus grows);
  * deletes/replacements only flip ``_live[slot]`` (tombstone); live document frequencies are
    decremented lazily in one vectorised pass before the next read; dead postings are dropped
    when segments merge, and once tombstones exceed 20% of slots a compaction renumbers slots
    (order preserved, segment by segment) and prunes dead terms from the vocabulary.

Persistence (``path`` is a directory): ``manifest.json`` (format + version, file names),
immutable ``seg-*.npz`` segments (written once), append-only ``vocab-*.json`` / ``ids-*.json``
parts, and ``docs-*.npz`` (doc lengths, live flags, df). All arrays are read with
``allow_pickle=False``. ``save()`` writes new files to temp names, fsyncs, renames, and swaps the
manifest last (``os.replace``), so a crash at any point leaves the previous consistent index.
Only one process may write a given directory at a time: ``save()`` refuses (``BM25ConflictError``)
when the directory holds a generation this process has not seen, instead of overwriting another
writer's work. Readers in other processes (query-only app replicas sharing the directory) follow
the writer: reads check the manifest at most every ``FOLLOW_INTERVAL_S`` and reload when its
generation changed. A process that loads while another saves retries if the generation it read
is garbage-collected under it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ingest.files import atomic_write, atomic_write_bytes, fsync_dir, is_temp_name

logger = logging.getLogger(__name__)

FORMAT_NAME = "rag-kb-bm25"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

MAX_SEGMENTS = 16  # beyond it the smallest adjacent pair is merged (within MAX_SEGMENT_POSTINGS)
MERGE_FACTOR = 2  # merge the newest segment into its left neighbour when that is <= 2x its size
# No merge makes a segment larger than this (~100 MB of postings): a merge's transient memory is
# then bounded whatever the corpus size, instead of one ever larger merge (BENCHMARKS.md, "Peak
# memory against corpus size"). Large indexes hold about postings / this many full segments.
MAX_SEGMENT_POSTINGS = 16_000_000
MERGE_BLOCK_POSTINGS = 1 << 20  # a merge places postings in blocks of this many (bounded temporaries)
MAX_BATCH_TOKENS = 4_000_000  # bulk adds are split into segments of about this many tokens
COMPACT_DEAD_FRACTION = 0.2  # full compaction once this share of slots are tombstones
FOLLOW_INTERVAL_S = 1.0  # readers look for a newer generation on disk at most this often
# Plus atomic_write's temp files (is_temp_name) and ".tmp-*", the temp names of older versions.
_OUR_FILES = re.compile(r"^(seg|docs)-\d+-?\d*\.npz$|^(ids|vocab)-\d+\.json$|^\.tmp-")


class _Segment:
    """Immutable postings for a contiguous slot range [lo, hi), CSR by term."""

    __slots__ = ("term_ids", "indptr", "slots", "tfs", "lo", "hi", "file")

    def __init__(
        self,
        term_ids: np.ndarray,
        indptr: np.ndarray,
        slots: np.ndarray,
        tfs: np.ndarray,
        lo: int,
        hi: int,
        file: str | None = None,
    ) -> None:
        self.term_ids = term_ids  # int32, strictly increasing
        self.indptr = indptr  # int64, len(term_ids) + 1
        self.slots = slots  # int32, ascending within each term's run
        self.tfs = tfs  # uint16 or int32 (uint16 when it fits: 2 bytes/posting saved)
        self.lo, self.hi = lo, hi
        self.file = file  # set once persisted; segments are never rewritten
        for a in (term_ids, indptr, slots, tfs):
            a.flags.writeable = False

    @property
    def nnz(self) -> int:
        return int(self.slots.shape[0])

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        i = int(np.searchsorted(self.term_ids, term_id))
        if i >= self.term_ids.shape[0] or self.term_ids[i] != term_id:
            return None
        s, e = self.indptr[i], self.indptr[i + 1]
        return self.slots[s:e], self.tfs[s:e]


def _tf_dtype(max_tf: int) -> type:
    return np.uint16 if max_tf <= np.iinfo(np.uint16).max else np.int32


def _csr_from_sorted(
    terms: np.ndarray, slots: np.ndarray, tfs: np.ndarray, lo: int, hi: int
) -> _Segment:
    """Build a segment from COO postings already sorted by (term, slot)."""
    if terms.size:
        starts = np.flatnonzero(np.diff(terms)) + 1
        starts = np.concatenate(([0], starts)).astype(np.int64)
        term_ids = terms[starts].astype(np.int32)
        indptr = np.concatenate((starts, [terms.size])).astype(np.int64)
        max_tf = int(tfs.max())
    else:
        term_ids = np.zeros(0, np.int32)
        indptr = np.zeros(1, np.int64)
        max_tf = 0
    return _Segment(
        term_ids, indptr, slots.astype(np.int32), tfs.astype(_tf_dtype(max_tf)), lo, hi
    )


def _grow(arr: np.ndarray, n: int) -> np.ndarray:
    """Amortised-doubling capacity growth for the per-slot / per-term arrays."""
    if arr.shape[0] >= n:
        return arr
    new = np.zeros(max(n, 2 * arr.shape[0], 1024), dtype=arr.dtype)
    new[: arr.shape[0]] = arr
    return new


def _write_json(path: Path, obj: Any) -> None:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    atomic_write_bytes(path, data)


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, allow_pickle=False, **arrays))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class BM25ConflictError(RuntimeError):
    """Another process saved the same index directory since this one loaded or saved it."""


class BM25Index:
    """Incremental BM25Okapi index over string chunk ids. Thread-safe (one RLock).

    Mutations (``add``/``delete``) are in memory only until ``save()`` (alias ``flush()``);
    ``close()`` saves and then refuses further use. With ``path=None`` the index is purely in
    memory and ``save()`` is a no-op.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
        idf: str = "lucene",
    ) -> None:
        if idf not in ("okapi", "lucene"):
            raise ValueError(f"idf must be 'okapi' or 'lucene', not {idf!r}")
        self.k1 = float(k1)
        self.b = float(b)
        self.epsilon = float(epsilon)
        self.idf = idf
        self.path = Path(path) if path is not None else None
        self._lock = threading.RLock()
        self._closed = False

        self._vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self._df = np.zeros(0, np.int64)  # live document frequency per term id
        self._slot_ids: list[str] = []  # chunk id per slot (dead slots keep theirs until compaction)
        self._slot_of: dict[str, int] = {}  # live chunk id -> slot
        self._doc_len = np.zeros(0, np.int32)
        self._live = np.zeros(0, bool)
        self._n_slots = 0
        self._n_live = 0
        self._sum_len = 0  # total length of live docs (avgdl numerator)
        self._pending_dead: list[int] = []  # tombstoned slots whose df is not yet decremented
        self._segments: list[_Segment] = []

        self._version = 0  # bumped on every mutation; keys the scoring cache
        self._cache_key: tuple | None = None
        self._avg_idf = 0.0
        self._norm = np.zeros(0)  # k1 * (1 - b + b * len / avgdl) per slot
        # The last query's scores: the retriever calls search() and then get_scores() with the
        # same tokens (to score the dense leg's candidates), and at 1M chunks each scoring pass
        # costs tens of ms (BENCHMARKS.md, "Query latency").
        self._last_scores: tuple[tuple, np.ndarray, np.ndarray | None] | None = None

        # persistence bookkeeping
        self._dirty = False
        self._gen = 0
        self._ids_parts: list[dict[str, Any]] = []  # [{"file", "start", "end"}] covering slots
        self._vocab_parts: list[dict[str, Any]] = []  # same for term ids
        self._manifest_sig: tuple[int, int, int] | None = None  # manifest we last loaded or wrote
        self._next_follow = 0.0  # monotonic time of the next look for another writer's save

        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            if (self.path / MANIFEST).exists():
                self._load_retrying()

    # ------------------------------------------------------------------ public API

    def add(self, chunk_ids: Sequence[str], token_lists: Sequence[Sequence[str]]) -> None:
        """Index documents; an id already present (or repeated in the batch) is replaced."""
        if len(chunk_ids) != len(token_lists):
            raise ValueError(
                f"chunk_ids ({len(chunk_ids)}) and token_lists ({len(token_lists)}) differ in length"
            )
        if not chunk_ids:
            return
        # Last occurrence wins inside a batch, kept at its own position (deterministic order).
        last: dict[str, int] = {}
        for i, cid in enumerate(chunk_ids):
            if not isinstance(cid, str):
                raise TypeError(f"chunk ids must be str, got {type(cid).__name__}")
            last[cid] = i
        if len(last) != len(chunk_ids):
            keep = sorted(last.values())
            ids = [chunk_ids[i] for i in keep]
            toks: Sequence[Sequence[str]] = [token_lists[i] for i in keep]
        else:
            ids, toks = list(chunk_ids), token_lists

        with self._lock:
            self._check_open()
            try:
                # Bound the transient memory of segment building (~40 B/token) on bulk loads.
                start, n_tok = 0, 0
                for i, t in enumerate(toks):
                    n_tok += len(t)
                    if n_tok >= MAX_BATCH_TOKENS or i == len(toks) - 1:
                        self._append_segment(ids[start : i + 1], toks[start : i + 1])
                        self._maintain()
                        start, n_tok = i + 1, 0
            finally:  # a bad token fails a sub-batch before it mutates anything; earlier ones stay
                self._version += 1
                self._dirty = True

    def delete(self, chunk_ids: Iterable[str]) -> int:
        """Remove documents; returns how many were present. Unknown ids are ignored."""
        with self._lock:
            self._check_open()
            present = [cid for cid in dict.fromkeys(chunk_ids) if cid in self._slot_of]
            if not present:
                return 0
            self._kill(present)
            self._version += 1
            self._dirty = True
            self._maintain()
            return len(present)

    def search(self, query_tokens: Sequence[str], k: int) -> list[tuple[str, float]]:
        """Top-``k`` (chunk id, score), best first, among docs containing a query term.

        Ties are broken by insertion order (earlier first). Scores can be <= 0 in tiny corpora
        where rank_bm25's epsilon floor is itself negative; such docs are still returned.
        """
        with self._lock:
            self._check_open()
            self._follow()
            if k <= 0 or self._n_live == 0:
                return []
            scores, hit = self._score_dense(query_tokens)
            if hit is None:
                return []
            cand = np.flatnonzero(hit)
            if cand.size == 0:
                return []
            s = scores[cand]
            if cand.size > k:
                # argpartition finds the k-th best score; keep everything tied with it so the
                # final (score desc, slot asc) order is deterministic.
                kth = s[np.argpartition(-s, k - 1)[:k]].min()
                sel = np.flatnonzero(s >= kth)
                cand, s = cand[sel], s[sel]
            order = np.lexsort((cand, -s))[:k]
            return [(self._slot_ids[int(cand[i])], float(s[i])) for i in order]

    def get_scores(self, query_tokens: Sequence[str], chunk_ids: Sequence[str]) -> np.ndarray:
        """BM25 scores for ``chunk_ids`` (float64, same order); 0.0 for ids not in the index."""
        with self._lock:
            self._check_open()
            self._follow()
            out = np.zeros(len(chunk_ids), np.float64)
            if self._n_live == 0 or not chunk_ids:
                return out
            scores, _ = self._score_dense(query_tokens)
            slots = np.fromiter(
                (self._slot_of.get(c, -1) for c in chunk_ids), np.int64, count=len(chunk_ids)
            )
            known = slots >= 0
            out[known] = scores[slots[known]]
            return out

    def max_score(self, query_tokens: Sequence[str]) -> float:
        """An upper bound of any document's score for this query: each query token's idf times
        (k1 + 1), the limit of a term's score as its frequency grows. A token the index has never
        seen counts at the idf of a term with no document (the query asked for it, nothing has it),
        so the ratio score / max_score reads "how much of the query a chunk covers"."""
        with self._lock:
            self._check_open()
            self._follow()
            self._ensure_stats()
            n = self._n_live
            unseen = float(np.log1p((n + 0.5) / 0.5) if self.idf == "lucene" else np.log(n + 0.5) - np.log(0.5))
            total = 0.0
            for q in query_tokens:
                tid = self._vocab.get(q) if isinstance(q, str) else None
                total += self._idf(tid) if tid is not None and self._df[tid] > 0 else unseen
            return total * (self.k1 + 1)

    def score_tokens(self, query_tokens: Sequence[str], doc_tokens: Sequence[str]) -> float:
        """The BM25 score an unindexed document would get under this index's statistics (idf,
        average length): how a chunk edited in memory would rank, without indexing it."""
        with self._lock:
            self._check_open()
            self._follow()
            self._ensure_stats()
            if self._n_live == 0:
                return 0.0
            avgdl = self._sum_len / self._n_live if self._sum_len else 1.0
            norm = self.k1 * (1 - self.b + self.b * len(doc_tokens) / avgdl)
            tf: dict[str, int] = {}
            for t in doc_tokens:
                tf[t] = tf.get(t, 0) + 1
            score = 0.0
            for q in query_tokens:
                tid = self._vocab.get(q) if isinstance(q, str) else None
                f = tf.get(q, 0)
                if tid is None or self._df[tid] <= 0 or f == 0:
                    continue
                score += self._idf(tid) * (f * (self.k1 + 1) / (f + norm))
            return score

    def __len__(self) -> int:
        with self._lock:
            if not self._closed:
                self._follow()
            return self._n_live

    def __contains__(self, chunk_id: object) -> bool:
        with self._lock:
            return chunk_id in self._slot_of

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._slot_of)

    def stats(self) -> dict[str, Any]:
        """Sizes for logging / benchmarks."""
        with self._lock:
            return {
                "docs": self._n_live,
                "slots": self._n_slots,
                "tombstones": self._n_slots - self._n_live,
                "terms": len(self._terms),
                "segments": len(self._segments),
                "postings": sum(s.nnz for s in self._segments),
            }

    def memory_bytes(self) -> dict[str, int]:
        """What the index keeps in memory, by part (objects' own sizes: an estimate, within ~10% of
        what tracemalloc sees): postings arrays, per-slot/per-term arrays, chunk-id maps, vocabulary.
        O(N) over the ids: for benchmarks and diagnostics, not per request."""
        with self._lock:
            postings = sum(a.nbytes for s in self._segments for a in (s.term_ids, s.indptr, s.slots, s.tfs))
            arrays = sum(a.nbytes for a in (self._doc_len, self._live, self._df, self._norm))
            ids = sys.getsizeof(self._slot_ids) + sys.getsizeof(self._slot_of)
            ids += sum(map(sys.getsizeof, self._slot_ids))  # the dict shares the list's strings
            vocab = sys.getsizeof(self._terms) + sys.getsizeof(self._vocab) + sum(map(sys.getsizeof, self._terms))
            return {"postings": postings, "arrays": arrays, "ids": ids, "vocab": vocab,
                    "total": postings + arrays + ids + vocab}

    def save(self) -> None:
        """Persist atomically: new files first (fsynced), manifest swapped last.

        Cost is proportional to what changed since the last save (new segments, new ids and
        terms) plus the per-slot/per-term arrays. No-op for an in-memory index or when clean.
        """
        with self._lock:
            self._check_open()
            if self.path is None:
                return
            if not self._dirty and (self.path / MANIFEST).exists():
                return
            on_disk = self._disk_generation()
            if on_disk is not None and on_disk != self._gen:
                raise BM25ConflictError(
                    f"BM25 index {self.path} was saved by another process (generation {on_disk} on"
                    f" disk, this process last saw {self._gen}); only one process may write an index"
                    " directory: in the scale-out shape only the writer app ingests, the query-only"
                    " replicas must not receive uploads, deletions or syncs"
                )
            self._apply_pending()
            self._save_locked()

    flush = save

    def refresh(self) -> bool:
        """Reload from disk when another process saved a newer generation of this directory
        (the writer, when this process is a query-only replica). Returns True if it reloaded.
        An index with unsaved changes of its own never reloads (it would lose them)."""
        with self._lock:
            self._check_open()
            if self.path is None:
                return False
            sig = self._manifest_signature()
            if sig is None or sig == self._manifest_sig:
                return False
            if self._disk_generation() == self._gen:
                self._manifest_sig = sig
                return False
            if self._dirty:
                logger.warning("bm25: %s was saved by another process, but this one holds unsaved"
                               " changes: not reloading (one writer per index directory)", self.path)
                return False
            self._load_retrying()
            logger.info("bm25: reloaded generation %d (%d docs) saved by another process from %s",
                        self._gen, self._n_live, self.path)
            return True

    def close(self) -> None:
        """Save (when backed by a directory) and release memory; further calls raise."""
        with self._lock:
            if self._closed:
                return
            self.save()
            self._closed = True
            self._segments = []
            self._vocab, self._slot_of = {}, {}

    def __enter__(self) -> BM25Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BM25Index(path={self.path!s}, docs={self._n_live}, segments={len(self._segments)})"

    # ------------------------------------------------------------------ mutation internals

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("BM25Index is closed")

    def _kill(self, chunk_ids: list[str]) -> None:
        self._kill_slots([self._slot_of.pop(cid) for cid in chunk_ids])

    def _kill_slots(self, slots: list[int]) -> None:
        for slot in slots:
            self._live[slot] = False
            self._n_live -= 1
            self._sum_len -= int(self._doc_len[slot])
            self._pending_dead.append(slot)

    def _term_ids(self, token_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Flattened term ids and per-doc lengths; new terms get ids in first-seen order."""
        if any(isinstance(t, str) for t in token_lists):  # a raw string would index its characters
            raise TypeError("token_lists must hold token sequences, not str (tokenize first)")
        lens = np.fromiter(map(len, token_lists), np.int64, count=len(token_lists))
        flat = list(chain.from_iterable(token_lists))
        vocab, terms = self._vocab, self._terms
        new = set(flat).difference(vocab)  # C-speed dedupe; the per-token lookup below dominates
        if new:
            if not all(isinstance(t, str) for t in new):
                raise TypeError("tokens must be str")
            for t in sorted(new):  # sorted: term ids independent of hash randomisation
                vocab[t] = len(terms)
                terms.append(t)
        tids = np.fromiter(map(vocab.__getitem__, flat), np.int64, count=len(flat))
        return tids, lens

    def _append_segment(self, ids: list[str], token_lists: Sequence[Sequence[str]]) -> None:
        tids, lens = self._term_ids(token_lists)  # the only step that rejects bad input
        n = len(ids)
        first = self._n_slots
        replaced = [self._slot_of[c] for c in ids if c in self._slot_of]
        # register docs
        self._doc_len = _grow(self._doc_len, first + n)
        self._live = _grow(self._live, first + n)
        self._doc_len[first : first + n] = lens
        self._live[first : first + n] = True
        for i, cid in enumerate(ids):
            self._slot_of[cid] = first + i
        self._slot_ids.extend(ids)
        self._n_slots += n
        self._n_live += n
        self._sum_len += int(lens.sum())
        self._kill_slots(replaced)  # old versions become tombstones (slot_of already points to new)
        self._df = _grow(self._df, len(self._terms))
        if tids.size == 0:
            return  # only empty documents: they count in N and avgdl but have no postings
        # One sort of (term, doc) keys gives the CSR order and the term frequencies at once.
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        keys, tf = np.unique(tids * n + doc, return_counts=True)
        terms = keys // n
        seg = _csr_from_sorted(terms, keys - terms * n + first, tf, first, first + n)
        self._df[seg.term_ids] += np.diff(seg.indptr)
        self._segments.append(seg)

    def _apply_pending(self) -> None:
        """Decrement live df for tombstoned slots: one gather per affected segment."""
        if not self._pending_dead:
            return
        dead = np.asarray(self._pending_dead, np.int64)
        self._pending_dead = []
        mark = np.zeros(self._n_slots, bool)
        mark[dead] = True
        lo, hi = int(dead.min()), int(dead.max()) + 1
        for seg in self._segments:
            if seg.hi <= lo or seg.lo >= hi:
                continue  # segments cover disjoint slot ranges: skip the untouched ones
            pos = np.flatnonzero(mark[seg.slots])
            if pos.size:
                t = seg.term_ids[np.searchsorted(seg.indptr, pos, side="right") - 1]
                u, c = np.unique(t, return_counts=True)
                self._df[u] -= c

    def _merge(self, segs: list[_Segment], slot_map: np.ndarray | None = None,
               term_map: np.ndarray | None = None) -> _Segment:
        """Merge segments (in slot order), dropping dead postings; optionally renumber.

        Counting merge instead of a sort: each term's output run is the concatenation of its
        runs in ``segs`` (slot order is kept because segments cover increasing slot ranges), so
        every posting's output position is computed directly. O(nnz), no expanded term array.
        """
        segs = [s for s in segs if s.nnz]
        lo, hi = (segs[0].lo, segs[-1].hi) if segs else (0, 0)
        if not segs:
            return _csr_from_sorted(np.zeros(0, np.int64), np.zeros(0, np.int32),
                                    np.zeros(0, np.int32), lo, hi)
        V = max(int(s.term_ids[-1]) for s in segs) + 1
        live = self._live
        parts = []
        total = np.zeros(V, np.int64)
        for s in segs:
            mask: np.ndarray = live[s.slots]
            cnt = np.diff(s.indptr)
            keep: np.ndarray | None = None
            if not mask.all():  # live postings per term via a prefix sum over the keep mask
                keep = mask
                cs = np.concatenate((np.zeros(1, np.int64), np.cumsum(mask, dtype=np.int64)))
                cnt = cs[s.indptr[1:]] - cs[s.indptr[:-1]]
            total[s.term_ids] += cnt
            parts.append((s, keep, cnt))
        indptr = np.zeros(V + 1, np.int64)
        np.cumsum(total, out=indptr[1:])
        nnz = int(indptr[-1])
        out_slots = np.empty(nnz, np.int32)
        out_tfs = np.empty(nnz, np.result_type(*[s.tfs.dtype for s in segs]))
        cursor = indptr[:-1].copy()  # next free output position per term
        for s, keep, cnt in parts:
            ends_in = np.cumsum(cnt)  # per term: end of its run among the part's kept postings
            shift = cursor[s.term_ids] - (ends_in - cnt)  # input position -> output position
            # Blocks of whole terms holding ~MERGE_BLOCK_POSTINGS postings: the int64 position
            # temporaries stay a few MB however large the segments are.
            cuts = np.searchsorted(ends_in, np.arange(MERGE_BLOCK_POSTINGS, int(ends_in[-1]), MERGE_BLOCK_POSTINGS))
            bounds = [0, *np.unique(cuts).tolist(), cnt.size]
            for a, b in zip(bounds[:-1], bounds[1:]):
                if a == b:
                    continue
                lo_in, hi_in = int(ends_in[a] - cnt[a]), int(ends_in[b - 1])
                if keep is None:
                    sl, tf = s.slots[lo_in:hi_in], s.tfs[lo_in:hi_in]
                else:  # kept postings of terms a..b-1 lie in the raw range of those terms
                    raw = slice(int(s.indptr[a]), int(s.indptr[b]))
                    k = keep[raw]
                    sl, tf = s.slots[raw][k], s.tfs[raw][k]
                pos = np.arange(lo_in, hi_in, dtype=np.int64)
                pos += np.repeat(shift[a:b], cnt[a:b])
                out_slots[pos] = sl
                out_tfs[pos] = tf
            cursor[s.term_ids] += cnt
        nz = np.flatnonzero(total)
        term_ids = nz if term_map is None else term_map[nz]  # monotone: order unchanged
        if slot_map is not None:  # monotone too: slots stay ascending within each term
            out_slots = slot_map[out_slots].astype(np.int32)
            # the new range [live slots before lo, live slots before hi); slot_map[i] + 1 = live slots in [0, i]
            lo = int(slot_map[lo - 1]) + 1 if lo else 0
            hi = int(slot_map[hi - 1]) + 1 if hi else 0
        if out_tfs.dtype != np.uint16 and nnz and int(out_tfs.max()) <= np.iinfo(np.uint16).max:
            out_tfs = out_tfs.astype(np.uint16)  # the wide run may have been deleted
        return _Segment(term_ids.astype(np.int32), np.concatenate((indptr[nz], [nnz])),
                        out_slots, out_tfs, lo, hi)

    def _maintain(self) -> None:
        segs = self._segments
        dead = self._n_slots - self._n_live
        if dead and dead > COMPACT_DEAD_FRACTION * self._n_slots:
            self._compact()
            return
        merged = False
        if any(s.nnz == 0 for s in segs):  # all-dead merges leave empty segments behind
            segs[:] = [s for s in segs if s.nnz]
        # Binary-counter policy (with slack, so slightly shrinking batches still merge), never
        # past the segment size cap.
        while (
            len(segs) >= 2
            and segs[-2].nnz <= MERGE_FACTOR * segs[-1].nnz
            and segs[-2].nnz + segs[-1].nnz <= MAX_SEGMENT_POSTINGS
        ):
            if not merged:
                self._apply_pending()  # merging drops dead postings: count them out of df first
                merged = True
            segs[-2:] = [self._merge(segs[-2:])]
        while len(segs) > MAX_SEGMENTS:
            pairs = [j for j in range(len(segs) - 1) if segs[j].nnz + segs[j + 1].nnz <= MAX_SEGMENT_POSTINGS]
            if not pairs:
                break  # all segments near the cap: a large index keeps more segments
            if not merged:
                self._apply_pending()
                merged = True
            i = min(pairs, key=lambda j: segs[j].nnz + segs[j + 1].nnz)
            segs[i : i + 2] = [self._merge(segs[i : i + 2])]

    def _compact(self) -> None:
        """Drop tombstones: renumber live slots (order kept) and prune terms with df == 0."""
        self._apply_pending()
        n = self._n_slots
        live = self._live[:n]
        slot_map = np.cumsum(live, dtype=np.int64) - 1
        V = len(self._terms)
        term_live = self._df[:V] > 0
        term_map = np.cumsum(term_live, dtype=np.int64) - 1
        logger.debug("bm25: compacting %d slots (%d live), %d terms (%d live)",
                     n, self._n_live, V, int(term_live.sum()))

        # Segment by segment (both maps are monotone, so each stays a valid, ordered segment):
        # the merge temporaries are bounded by one segment, not the whole index.
        renumbered = [self._merge([seg], slot_map, term_map) for seg in self._segments]
        self._segments = [seg for seg in renumbered if seg.nnz]
        keep_slots = np.flatnonzero(live)
        self._slot_ids = [self._slot_ids[i] for i in keep_slots]
        self._slot_of = {cid: i for i, cid in enumerate(self._slot_ids)}
        self._doc_len = self._doc_len[keep_slots].copy()
        self._live = np.ones(keep_slots.size, bool)
        self._n_slots = keep_slots.size
        keep_terms = np.flatnonzero(term_live)
        self._terms = [self._terms[i] for i in keep_terms]
        self._vocab = {t: i for i, t in enumerate(self._terms)}
        self._df = self._df[keep_terms].copy()
        # ids/terms were renumbered: the next save rewrites them as single parts
        self._ids_parts, self._vocab_parts = [], []

    # ------------------------------------------------------------------ scoring internals

    def _ensure_stats(self) -> None:
        key = (self._version, self.k1, self.b, self.epsilon, self.idf)
        if self._cache_key == key:
            return
        self._apply_pending()
        N = self._n_live
        df = self._df[: len(self._terms)]
        df = df[df > 0].astype(np.float64)  # rank_bm25 averages over its corpus vocabulary
        if df.size:
            idf = np.log(N - df + 0.5) - np.log(df + 0.5)
            self._avg_idf = float(idf.mean())
        else:
            self._avg_idf = 0.0
        avgdl = self._sum_len / N if N and self._sum_len else 1.0  # no postings if sum is 0
        dl = self._doc_len[: self._n_slots].astype(np.float64)
        # Same operation order as rank_bm25 so scores agree to the last bits where possible.
        self._norm = self.k1 * (1 - self.b + self.b * dl / avgdl)
        self._cache_key = key

    def _idf(self, term_id: int) -> float:
        df = float(self._df[term_id])
        if self.idf == "lucene":
            return float(np.log1p((self._n_live - df + 0.5) / (df + 0.5)))
        idf = float(np.log(self._n_live - df + 0.5) - np.log(df + 0.5))
        return self.epsilon * self._avg_idf if idf < 0 else idf

    def _score_dense(self, query_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores for every slot and a mask of slots containing a query term (read-only arrays:
        the last query's are cached and returned again)."""
        self._ensure_stats()
        key = (self._cache_key, tuple(q if isinstance(q, str) else None for q in query_tokens))
        if self._last_scores is not None and self._last_scores[0] == key:
            return self._last_scores[1], self._last_scores[2]
        scores, hit = self._score_all(query_tokens)
        scores.flags.writeable = False
        if hit is not None:
            hit.flags.writeable = False
        self._last_scores = (key, scores, hit)
        return scores, hit

    def _score_all(self, query_tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        counts: dict[int, int] = {}
        for q in query_tokens:  # rank_bm25 sums per occurrence: count repeats
            tid = self._vocab.get(q) if isinstance(q, str) else None
            if tid is not None and self._df[tid] > 0:
                counts[tid] = counts.get(tid, 0) + 1
        scores = np.zeros(self._n_slots, np.float64)
        if not counts:
            return scores, None
        hit = np.zeros(self._n_slots, bool)
        k1p1 = self.k1 + 1
        norm, live = self._norm, self._live
        for tid, c in counts.items():
            w = self._idf(tid)
            for seg in self._segments:
                p = seg.postings(tid)
                if p is None:
                    continue
                sl, tf = p
                m = live[sl]
                if not m.all():  # dead postings linger until their segment is merged
                    sl, tf = sl[m], tf[m]
                tf = tf.astype(np.float64)
                contrib = w * (tf * k1p1 / (tf + norm[sl]))  # rank_bm25's operation order
                if c != 1:
                    contrib *= c
                scores[sl] += contrib  # slots are unique within one term's postings
                hit[sl] = True
        return scores, hit

    # ------------------------------------------------------------------ persistence internals

    def _manifest_signature(self) -> tuple[int, int, int] | None:
        """Identity of the manifest file on disk: each save replaces it (new inode)."""
        assert self.path is not None
        try:
            st = os.stat(self.path / MANIFEST)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _disk_generation(self) -> int | None:
        assert self.path is not None
        try:
            return int(json.loads((self.path / MANIFEST).read_text("utf-8"))["generation"])
        except FileNotFoundError:
            return None

    def _follow(self) -> None:
        """Before a read (lock held): pick up another process's save, at most every interval."""
        if self.path is None or self._dirty:
            return
        now = time.monotonic()
        if now < self._next_follow:
            return
        self._next_follow = now + FOLLOW_INTERVAL_S
        self.refresh()

    def _load_retrying(self) -> None:
        for attempt in range(3):
            try:
                self._load()
                return
            except FileNotFoundError:
                # a concurrent writer swapped the manifest and removed the files it named; the
                # new manifest is consistent, so read again
                if attempt == 2:
                    raise

    def _save_locked(self) -> None:
        assert self.path is not None
        d = self.path
        gen = self._gen + 1
        new_seg_files: list[tuple[_Segment, str]] = []
        for i, seg in enumerate(self._segments):
            if seg.file is None:
                name = f"seg-{gen:08d}-{i:04d}.npz"
                _write_npz(d / name, term_ids=seg.term_ids, indptr=seg.indptr, slots=seg.slots,
                           tfs=seg.tfs, range=np.array([seg.lo, seg.hi], np.int64))
                new_seg_files.append((seg, name))
        ids_parts = list(self._ids_parts)
        saved = ids_parts[-1]["end"] if ids_parts else 0
        if saved < self._n_slots:
            name = f"ids-{gen:08d}.json"
            _write_json(d / name, self._slot_ids[saved : self._n_slots])
            ids_parts.append({"file": name, "start": saved, "end": self._n_slots})
        vocab_parts = list(self._vocab_parts)
        saved = vocab_parts[-1]["end"] if vocab_parts else 0
        if saved < len(self._terms):
            name = f"vocab-{gen:08d}.json"
            _write_json(d / name, self._terms[saved:])
            vocab_parts.append({"file": name, "start": saved, "end": len(self._terms)})
        docs_name = f"docs-{gen:08d}.npz"
        _write_npz(d / docs_name, doc_len=self._doc_len[: self._n_slots],
                   live=self._live[: self._n_slots], df=self._df[: len(self._terms)])
        seg_names = {id(s): n for s, n in new_seg_files}
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "generation": gen,
            "params": {"k1": self.k1, "b": self.b, "epsilon": self.epsilon, "idf": self.idf},
            "n_slots": self._n_slots,
            "n_live": self._n_live,
            "n_terms": len(self._terms),
            "segments": [seg_names.get(id(s), s.file) for s in self._segments],
            "ids": ids_parts,
            "vocab": vocab_parts,
            "docs": docs_name,
        }
        fsync_dir(d)  # data files' directory entries are durable before the manifest points at them
        _write_json(d / MANIFEST, manifest)
        fsync_dir(d)  # and the manifest's rename itself
        self._manifest_sig = self._manifest_signature()
        # Commit succeeded: adopt the new names, then garbage-collect unreferenced files.
        for seg, name in new_seg_files:
            seg.file = name
        self._ids_parts, self._vocab_parts = ids_parts, vocab_parts
        self._gen = gen
        self._dirty = False
        self._gc(manifest)
        logger.debug("bm25: saved generation %d (%d docs, %d segments) to %s",
                     gen, self._n_live, len(self._segments), d)

    def _gc(self, manifest: dict[str, Any]) -> None:
        assert self.path is not None
        referenced = set(manifest["segments"]) | {manifest["docs"], MANIFEST}
        referenced |= {p["file"] for p in manifest["ids"]} | {p["file"] for p in manifest["vocab"]}
        for entry in os.listdir(self.path):
            if entry not in referenced and (_OUR_FILES.match(entry) or is_temp_name(entry)):
                try:
                    os.unlink(self.path / entry)
                except OSError as e:  # harmless: retried at the next save
                    logger.debug("bm25: could not remove %s: %s", entry, e)

    def _load(self) -> None:
        assert self.path is not None
        d = self.path
        sig = self._manifest_signature()
        manifest = json.loads((d / MANIFEST).read_text("utf-8"))
        if manifest.get("format") != FORMAT_NAME:
            raise ValueError(f"{d / MANIFEST}: not a BM25 index manifest")
        if manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"{d / MANIFEST}: unsupported format version {manifest.get('version')}")
        params = manifest.get("params", {})
        now = {"k1": self.k1, "b": self.b, "epsilon": self.epsilon, "idf": self.idf}
        if any(params.get(name, "okapi" if name == "idf" else None) != value for name, value in now.items()):
            # Parameters are query-time only, so this is fine; log it as it may surprise. (Indexes
            # saved before the idf was recorded were scored with okapi, the default then.)
            logger.info("bm25: index saved with %s, now scoring with %s", params, now)

        def read_parts(parts: list[dict[str, Any]], what: str) -> list[str]:
            out: list[str] = []
            for p in parts:
                chunk = json.loads((d / p["file"]).read_text("utf-8"))
                if p["start"] != len(out) or len(chunk) != p["end"] - p["start"]:
                    raise ValueError(f"{d}: {what} part {p['file']} is inconsistent")
                out.extend(chunk)
            return out

        terms = read_parts(manifest["vocab"], "vocab")
        slot_ids = read_parts(manifest["ids"], "ids")
        docs = _read_npz(d / manifest["docs"])
        n, V = int(manifest["n_slots"]), int(manifest["n_terms"])
        if len(slot_ids) != n or len(terms) != V or docs["doc_len"].shape != (n,) \
                or docs["live"].shape != (n,) or docs["df"].shape != (V,):
            raise ValueError(f"{d}: index files disagree with the manifest")
        segments = []
        for name in manifest["segments"]:
            z = _read_npz(d / name)
            lo, hi = (int(x) for x in z["range"])
            segments.append(_Segment(z["term_ids"], z["indptr"], z["slots"], z["tfs"], lo, hi, name))

        live = docs["live"].astype(bool)
        self._terms = terms
        self._vocab = {t: i for i, t in enumerate(terms)}
        self._df = docs["df"].astype(np.int64)
        self._slot_ids = slot_ids
        self._slot_of = {slot_ids[i]: int(i) for i in np.flatnonzero(live)}
        self._doc_len = docs["doc_len"].astype(np.int32)
        self._live = live.copy()
        self._n_slots = n
        self._n_live = int(live.sum())
        self._sum_len = int(self._doc_len[live].sum())
        if self._n_live != int(manifest["n_live"]) or len(self._slot_of) != self._n_live:
            raise ValueError(f"{d}: live document count disagrees with the manifest")
        self._segments = segments
        self._ids_parts = list(manifest["ids"])
        self._vocab_parts = list(manifest["vocab"])
        self._gen = int(manifest["generation"])
        self._manifest_sig = sig
        self._version += 1
        self._dirty = False
        logger.debug("bm25: loaded %d docs, %d terms, %d segments from %s",
                     self._n_live, V, len(segments), d)
