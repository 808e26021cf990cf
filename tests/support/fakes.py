"""In-memory stand-ins for the heavy components, behind the protocols the real ones implement.

* :class:`HashingEmbedder`: a deterministic, model-free ``ingest.embedding.TextEmbedder`` (hashed
  bag of words and CJK character n-grams, L2-normalised), with a regex tokenizer for the token
  helpers the chunker and the answerer use. Texts that share words are close; others are not.
* :class:`InMemoryVectorStore`: a dict of chunk id -> (chunk, vector) that is both the indexer's
  ``ingest.stores.protocols.WritableVectorStore`` and a knowledge base's ``SearchableVectorStore``
  (so also retrieval's ``VectorStore``).
* :class:`ScriptedLLM`: an ``rag_app.llm.base.LLMBackend`` that streams scripted deltas and records
  the prompts it got.
* The retrieval stages' small fakes: :class:`FixedQueryEmbedder`, :class:`TermCountIndex`,
  :class:`WhitespaceTokenizer`, :class:`LengthScorer`.

``tests/support/test_fakes.py`` checks each against its protocol, and (integration) that the real
classes have the same methods.
"""
from __future__ import annotations

import dataclasses
import re
import threading
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Literal

import numpy as np

from ingest.settings import EmbedderSettings
from ingest.types import Chunk
from rag_app.llm.base import ChatMessage, LLMBackend, approx_token_count

Kind = Literal["passage", "query"]

# --------------------------------------------------------------------------------------------------
# Embedder
# --------------------------------------------------------------------------------------------------

# One token per CJK character, per run of letters/digits, per other visible character.
_CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK_CHARS}]|[^\W_{_CJK_CHARS}]+|[^\w\s]|_")
_CJK = re.compile(rf"[{_CJK_CHARS}]")
_SPECIAL_TOKENS = 2  # like <s> ... </s>
# Words too common to say what a text is about (kept out of the vectors, not out of token counts).
_STOPWORDS = frozenset(
    """
    a an and are as at be by can do does for from how i in is it of on or the this to what when where
    which who why with you your 的 了 是 在 和 有 吗 么 什 怎 我 你
    """.split()
)


def hashing_features(text: str) -> list[str]:
    """The features a text is embedded from: NFKC-folded, lower-cased words (stopwords out) and,
    for Chinese, each character and each pair of adjacent characters."""
    features: list[str] = []
    previous_cjk = ""
    for token in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if _CJK.fullmatch(token):
            if token not in _STOPWORDS:
                features.append(token)
            if previous_cjk:
                features.append(previous_cjk + token)
            previous_cjk = token
            continue
        previous_cjk = ""
        if token[0].isalnum() and token not in _STOPWORDS:
            features.append(token)
    return features


class HashingEmbedder:
    """A deterministic ``TextEmbedder`` with no model: each feature of :func:`hashing_features` adds
    +-1 to one of ``dim`` buckets (crc32, so the same in every process), then the vector is
    L2-normalised. Queries and passages embed alike (the prefixes only count as tokens)."""

    def __init__(self, dim: int = 1024, max_tokens: int = 512, settings: EmbedderSettings | None = None) -> None:
        self.settings = settings or EmbedderSettings(model="test:hashing-embedder")
        self._dim = dim
        self._max_tokens = max_tokens
        self._warm = False
        self.calls: dict[str, int] = {"documents": 0, "queries": 0}  # embed_* calls, for tests
        self._lock = threading.Lock()

    # --- lifecycle and facts ---------------------------------------------------------------------
    def warm_up(self) -> None:
        self._warm = True

    @property
    def is_warm(self) -> bool:
        return self._warm

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def model_path(self) -> str:
        return self.settings.model

    # --- tokens ------------------------------------------------------------------------------------
    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _TOKEN.finditer(text)]

    def count_tokens(self, texts: Sequence[str], kind: Kind = "passage") -> list[int]:
        if isinstance(texts, str):
            raise TypeError("expected a sequence of strings, not a str")
        prefix = self.settings.prefix(kind)
        return [len(_TOKEN.findall(prefix + t)) + _SPECIAL_TOKENS for t in texts]

    def prefix_tokens(self, kind: Kind = "passage") -> int:
        return len(_TOKEN.findall(self.settings.prefix(kind))) + _SPECIAL_TOKENS

    # --- vectors -----------------------------------------------------------------------------------
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls["documents"] += 1
        return self._embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls["queries"] += 1
        return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("expected a sequence of strings, not a str")
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in hashing_features(text):
                h = zlib.crc32(feature.encode("utf-8"))
                out[row, h % self._dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out


# --------------------------------------------------------------------------------------------------
# Vector store
# --------------------------------------------------------------------------------------------------


class InMemoryVectorStore:
    """Chunk vectors in a dict, searched by inner product (cosine for unit vectors), ties by chunk
    id. Like Milvus, stored chunks come back with ``token_count`` 0 (it is not stored). Keeps its
    rows across ``close``/``warm_up`` (a persistent store reopened). ``fetched`` records each
    ``fetch`` call's ids."""

    def __init__(self, dim: int, rows: Mapping[str, tuple[Chunk, np.ndarray]] | None = None) -> None:
        self.dim = dim
        self.rows: dict[str, tuple[Chunk, np.ndarray]] = dict(rows or {})
        self.fetched: list[list[str]] = []
        self.open = False
        self._lock = threading.RLock()

    # --- lifecycle ---------------------------------------------------------------------------------
    def warm_up(self) -> None:
        self.open = True

    def close(self) -> None:
        self.open = False

    # --- writes ------------------------------------------------------------------------------------
    def upsert(
        self, chunks: Sequence[Chunk], vectors: np.ndarray, keywords: Sequence[Sequence[str]] | None = None
    ) -> None:
        """``keywords`` are ignored: this store does no keyword search (pass a BM25 index)."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        with self._lock:
            for chunk, vector in zip(chunks, vectors):
                v = np.asarray(vector, dtype=np.float32)
                if v.shape != (self.dim,):
                    raise ValueError(f"expected {self.dim}-d vectors, got shape {v.shape}")
                self.rows[chunk.chunk_id] = (dataclasses.replace(chunk, token_count=0), v.copy())

    def set_source(self, chunk_ids: Sequence[str], source: str) -> int:
        with self._lock:
            found = [cid for cid in chunk_ids if cid in self.rows]
            for cid in found:
                chunk, vector = self.rows[cid]
                self.rows[cid] = (dataclasses.replace(chunk, source=source), vector)
            return len(found)

    def delete(self, chunk_ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(chunk_ids))
        with self._lock:
            for cid in ids:
                self.rows.pop(cid, None)
        return len(ids)

    def flush(self) -> None:
        pass

    # --- reads -------------------------------------------------------------------------------------
    def count(self) -> int:
        return len(self.rows)

    def all_ids(self) -> set[str]:
        with self._lock:
            return set(self.rows)

    def get_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {cid: self.rows[cid][0].text for cid in chunk_ids if cid in self.rows}

    def get_indexed_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {cid: self.rows[cid][0].indexed_text for cid in chunk_ids if cid in self.rows}

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, np.ndarray]]:
        with self._lock:
            self.fetched.append(list(chunk_ids))
            return {cid: self.rows[cid] for cid in chunk_ids if cid in self.rows}

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        with self._lock:
            items = list(self.rows.items())
        out: list[list[tuple[Chunk, float]]] = []
        for q in queries:
            scored = sorted(((float(v @ q), cid, chunk) for cid, (chunk, v) in items), key=lambda x: (-x[0], x[1]))
            out.append([(chunk, score) for score, _, chunk in scored[:k]])
        return out

    def sample_vectors(self, n: int) -> np.ndarray:
        """Up to ``n`` vectors spread over the rows in insertion order (every step-th one)."""
        with self._lock:
            vectors = [v for _, v in self.rows.values()]
        if not vectors or n <= 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = max(1, len(vectors) // n)
        return np.stack(vectors[::step][:n])


# --------------------------------------------------------------------------------------------------
# LLM
# --------------------------------------------------------------------------------------------------


class ScriptedLLM(LLMBackend):
    """Streams ``deltas`` (or what ``responder(messages)`` returns) for every call and records the
    messages it was sent. Token counts are the tokenizer-free estimate. With ``delta_probs`` each
    delta is a token of that probability (:meth:`stream_scored`)."""

    def __init__(
        self,
        deltas: Sequence[str] = ("According to the documents, ", "this is covered in [1]."),
        responder: Callable[[list[ChatMessage]], Sequence[str]] | None = None,
        context_window: int = 8192,
        verdict: float | None = None,
        delta_probs: Sequence[float] | None = None,
    ) -> None:
        self.deltas = list(deltas)
        self.delta_probs = delta_probs
        self.responder = responder
        self._context_window = context_window
        self.verdict = verdict  # P(first option) for choice_probabilities; None: not readable
        self.calls: list[list[ChatMessage]] = []
        self.verdict_calls: list[list[ChatMessage]] = []

    @property
    def name(self) -> str:
        return "test:scripted"

    @property
    def context_window(self) -> int:
        return self._context_window

    def stream(
        self, messages: list[ChatMessage], *, max_new_tokens: int | None = None, stop: list[str] | None = None
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        yield from (self.responder(messages) if self.responder else self.deltas)

    def stream_scored(
        self, messages: list[ChatMessage], token_probs: list[tuple[str, float]], *, max_new_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        for i, delta in enumerate(self.stream(messages)):
            if self.delta_probs is not None:
                token_probs.append((delta, self.delta_probs[i]))
            yield delta

    def choice_probabilities(self, messages: list[ChatMessage], options: Sequence[str]) -> dict[str, float] | None:
        self.verdict_calls.append(list(messages))
        if self.verdict is None:
            return None
        return {o: self.verdict if i == 0 else (1 - self.verdict) / max(1, len(options) - 1)
                for i, o in enumerate(options)}

    def count_tokens(self, text: str) -> int:
        return approx_token_count(text)


# --------------------------------------------------------------------------------------------------
# The retrieval stages' fakes
# --------------------------------------------------------------------------------------------------


class FixedQueryEmbedder:
    """A ``QueryEmbedder`` whose queries map to given vectors; documents (the threshold's reference
    passages) point near the last axis, with a cosine up to ~0.1 to the other axes."""

    def __init__(self, queries: dict[str, np.ndarray], dim: int) -> None:
        self.queries = queries
        self.dim = dim
        self.document_calls = 0

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.queries[t] for t in texts])

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.document_calls += 1
        return np.stack([axis(self.dim, self.dim - 1, noise=0.05 * (i % 3)) for i in range(len(texts))])


class TermCountIndex:
    """A ``KeywordIndex``: score = number of query tokens in the chunk (a stand-in for BM25)."""

    def __init__(self, docs: dict[str, list[str]]) -> None:
        self.docs = docs
        self.score_calls = 0

    def _score(self, tokens: Sequence[str], cid: str) -> float:
        return float(sum(t in self.docs.get(cid, ()) for t in tokens))

    def search(self, query_tokens: Sequence[str], k: int) -> list[tuple[str, float]]:
        scored = [(cid, self._score(query_tokens, cid)) for cid in self.docs]
        return sorted((x for x in scored if x[1] > 0), key=lambda x: (-x[1], x[0]))[:k]

    def get_scores(self, query_tokens: Sequence[str], chunk_ids: Sequence[str]) -> np.ndarray:
        self.score_calls += 1
        return np.array([self._score(query_tokens, c) for c in chunk_ids])

    def max_score(self, query_tokens: Sequence[str]) -> float:
        return float(len(query_tokens))

    def score_tokens(self, query_tokens: Sequence[str], doc_tokens: Sequence[str]) -> float:
        return float(sum(t in doc_tokens for t in query_tokens))

    def __len__(self) -> int:
        return len(self.docs)


class WhitespaceTokenizer:
    """A ``Tokenizer``: lower-cased whitespace split, without "the" and "a"."""

    def tokenize(self, text: str) -> list[str]:
        return [w for w in text.lower().split() if w not in {"the", "a"}]


class LengthScorer:
    """A ``PassageScorer`` ("cross-encoder") that prefers longer passages; None when told it ran
    out of time. ``seen`` records the passages of each call."""

    def __init__(self, out_of_time: bool = False) -> None:
        self.out_of_time = out_of_time
        self.seen: list[list[str]] = []

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray | None:
        self.seen.append(list(passages))
        return None if self.out_of_time else np.array([float(len(p)) for p in passages])


def unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def axis(dim: int, i: int, noise: float = 0.0) -> np.ndarray:
    """The unit vector along axis ``i``, every other component ``noise`` before normalising."""
    v = np.full(dim, noise, dtype=np.float32)
    v[i] = 1.0
    return unit(v)

