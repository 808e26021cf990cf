"""Chunk vectors in Milvus: embedded Milvus Lite (a local file) or a Milvus server URI.

With ``full_text`` (``bm25.backend: milvus``) the collection also holds each chunk's BM25 tokens in a
``keywords`` field (whitespace-joined, cut by Milvus's whitespace analyzer so the tokens stay exactly
``BM25Tokenizer``'s) and a BM25 function that turns them into the ``sparse`` field Milvus searches:
vectors and keywords go in one ``upsert``, and ``ingest.stores.milvus_keyword.MilvusKeywordIndex``
searches them. The fields exist only in a collection created with ``full_text``; an older collection
must be migrated (``rag-ingest --migrate-from``) before it can serve keyword search.
"""
from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest.settings import BM25Settings, MilvusSettings
from ingest.types import Chunk

log = logging.getLogger(__name__)

# Milvus Lite 2.5.1 slows down sharply on inserts above a few MB per call (5,000 rows of 384-d
# vectors took ~60 s against ~0.3 s per 1,000 rows, measured): keep each call small.
_MAX_INSERT_ROWS = 500
_MAX_INSERT_BYTES = 2_000_000
_MAX_TEXT_BYTES = 65_535  # Milvus VARCHAR limit
_ID_LEN = 64
KEYWORDS_FIELD = "keywords"  # a chunk's BM25 tokens joined by spaces (full-text collections only)
SPARSE_FIELD = "sparse"  # the BM25 function's output: what keyword search searches
_BM25_FUNCTION = "bm25"
MIGRATE_COMMAND = "rag-ingest --migrate-from <old config or data directory>"
# A Milvus server that is down must fail fast (pymilvus waits much longer by default), so the CLI
# and the UI report it in seconds instead of hanging.
CONNECT_TIMEOUT_S = 5.0
# Index types Milvus Lite 2.5.1 accepts (it refuses HNSW, IVF_SQ8, IVF_PQ...). Its IVF_FLAT ignores
# nprobe (recall did not change from nprobe 1 to 256, measured), so FLAT stays the embedded default:
# BENCHMARKS.md, "Query latency".
LITE_INDEX_TYPES = frozenset({"FLAT", "IVF_FLAT", "AUTOINDEX"})


class _DropMvccTsWarning(logging.Filter):
    """pymilvus warns on every ``query_iterator`` against Milvus Lite (which has no mvccTs) and
    falls back to a client timestamp, which is fine here; ``all_ids`` runs at every check/sync."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to get mvccTs" not in record.getMessage()


logging.getLogger("pymilvus.orm.iterator").addFilter(_DropMvccTsWarning())


class _SharedClients:
    """One ``MilvusClient`` per connection (URI, token, database) in this process, counted: pymilvus
    names a connection by its address, so closing one of two clients to the same Milvus (one
    knowledge base's collection closing while another's stays open) would cut the other's too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, ...], tuple[Any, int]] = {}

    def acquire(self, kwargs: dict[str, Any]) -> Any:
        from pymilvus import MilvusClient

        key = tuple(f"{k}={v}" for k, v in sorted(kwargs.items()))
        with self._lock:
            client, users = self._clients.get(key, (None, 0))
            if client is None:
                client = MilvusClient(**kwargs)
            self._clients[key] = (client, users + 1)
            return client

    def release(self, client: Any) -> None:
        with self._lock:
            for key, (held, users) in list(self._clients.items()):
                if held is client:
                    if users > 1:
                        self._clients[key] = (held, users - 1)
                        return
                    del self._clients[key]
            client.close()


_shared_clients = _SharedClients()


class VectorStoreError(RuntimeError):
    """Milvus could not be opened or answered with an error; the message says which and where."""


class MilvusVectorStore:
    """Thin, typed wrapper around ``pymilvus.MilvusClient`` for the ``chunks`` collection.

    ``full_text``: also index each chunk's BM25 tokens in Milvus (``bm25.backend: milvus``): a new
    collection gets the ``keywords`` and ``sparse`` fields, the BM25 function and a sparse index with
    these k1 and b; ``upsert`` then requires ``keywords``. Opening an existing collection without those
    fields raises :class:`VectorStoreError` (it must be migrated). Without ``full_text`` a full-text
    collection still serves dense search; its rows written meanwhile get no keywords (logged)."""

    def __init__(self, settings: MilvusSettings, uri: str, dim: int, *, full_text: BM25Settings | None = None) -> None:
        self.settings = settings
        self.uri = uri
        self.dim = dim
        self.full_text = full_text
        self._client: Any = None
        self._lock = threading.RLock()
        self._has_keywords = False  # the open collection has the keywords field (set by warm_up)
        self._bm25_params: tuple[float, float] | None = None  # its sparse index's (k1, b)

    # --- lifecycle ----------------------------------------------------------------------------------
    def warm_up(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            with warnings.catch_warnings():
                # milvus-lite 2.5.1 imports the deprecated pkg_resources (pinned setuptools<81).
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
                if "://" not in self.uri:
                    import milvus_lite  # noqa: F401

            if "://" not in self.uri:
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"uri": self.uri}
            token = self.settings.token.get_secret_value()
            if token:
                kwargs["token"] = token
            if self.settings.db_name:
                kwargs["db_name"] = self.settings.db_name
            if "://" in self.uri:
                kwargs["timeout"] = CONNECT_TIMEOUT_S
            try:
                self._client = _shared_clients.acquire(kwargs)
            except Exception as exc:  # pymilvus raises several types; the user needs one message
                hint = (
                    " (a Milvus Lite file can be opened by one process at a time: is the app or"
                    " another rag-ingest running on the same data directory?)"
                    if "://" not in self.uri
                    else f" (no answer within {CONNECT_TIMEOUT_S:g} s: is the Milvus server running"
                    " and reachable at that address?)"
                )
                raise VectorStoreError(f"cannot open Milvus at {self.uri}: {exc}{hint}") from exc
            self._ensure_collection()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                try:
                    _shared_clients.release(self._client)
                finally:
                    self._client = None

    def drop(self) -> None:
        """Remove this store's collection with everything in it (a knowledge base being deleted)."""
        with self._lock:
            if self.client.has_collection(self.settings.collection):
                self._call("drop", self.client.drop_collection, self.settings.collection)

    @property
    def client(self) -> Any:
        if self._client is None:
            self.warm_up()
        return self._client

    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        name = self.settings.collection
        client = self._client
        if self.full_text is not None:
            self._check_full_text_server()
        if client.has_collection(name):
            desc = client.describe_collection(name)
            fields = {field.get("name"): field for field in desc.get("fields", [])}
            for field in fields.values():
                if field.get("name") == "vector":
                    have = int(field.get("params", {}).get("dim", self.dim))
                    if have != self.dim:
                        raise VectorStoreError(
                            f"collection '{name}' at {self.uri} holds {have}-d vectors but the embedder"
                            f" makes {self.dim}-d ones: use another collection or data directory"
                        )
            self._has_keywords = KEYWORDS_FIELD in fields and SPARSE_FIELD in fields
            if self.full_text is not None and not self._has_keywords:
                raise VectorStoreError(
                    f"collection '{name}' at {self.uri} was created without Milvus full-text search (no"
                    f" '{KEYWORDS_FIELD}' field), so it cannot serve bm25.backend: milvus: migrate it with"
                    f" `{MIGRATE_COMMAND}`, or keep bm25.backend: local"
                )
            if self._has_keywords:
                self._bm25_params = self._read_bm25_params()
                if self.full_text is None:
                    log.warning(
                        "collection '%s' at %s has Milvus full-text keywords but bm25.backend is local:"
                        " chunks written now get no keywords there", name, self.uri,
                    )
                elif self._bm25_params != (self.full_text.k1, self.full_text.b):
                    log.warning(
                        "collection '%s' keeps the BM25 parameters it was created with (k1 %g, b %g);"
                        " bm25.k1 %g / bm25.b %g apply to a new collection only",
                        name, *self._bm25_params, self.full_text.k1, self.full_text.b,
                    )
            client.load_collection(name)
            return
        if "://" not in self.uri and self.settings.index_type.upper() not in LITE_INDEX_TYPES:
            raise VectorStoreError(
                f"Milvus Lite ({self.uri}) supports the index types {', '.join(sorted(LITE_INDEX_TYPES))},"
                f" not {self.settings.index_type}: change milvus.index_type or use a Milvus server"
            )
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=_ID_LEN)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=_ID_LEN)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("text", DataType.VARCHAR, max_length=_MAX_TEXT_BYTES)
        schema.add_field("meta", DataType.JSON)
        index = client.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type=self.settings.index_type,
            metric_type=self.settings.metric,
            params=self.settings.index_params,
        )
        if self.full_text is not None:
            self._add_full_text(schema, index, self.full_text)
        try:
            client.create_collection(name, schema=schema, index_params=index)
        except Exception as exc:
            if self.full_text is None:
                raise
            raise VectorStoreError(
                f"cannot create collection '{name}' with full-text search at {self.uri}: {exc} (bm25.backend:"
                " milvus needs Milvus 2.5 or later, or Milvus Lite 2.5; else keep bm25.backend: local)"
            ) from exc
        if self.full_text is not None:
            self._has_keywords = True
            self._bm25_params = (self.full_text.k1, self.full_text.b)
        log.info(
            "created Milvus collection '%s' (%d-d, %s%s) at %s", name, self.dim, self.settings.index_type,
            ", BM25 full-text" if self.full_text is not None else "", self.uri,
        )

    @staticmethod
    def _add_full_text(schema: Any, index: Any, bm25: BM25Settings) -> None:
        """The keywords field, the BM25 function over it and the sparse index it is searched with."""
        from pymilvus import DataType, Function, FunctionType

        # Tokens are BM25Tokenizer's, already cut: the whitespace analyzer only splits them apart
        # (no lower-casing, stemming or punctuation rules of its own: "x-y", "3.5" stay one token).
        schema.add_field(
            KEYWORDS_FIELD, DataType.VARCHAR, max_length=_MAX_TEXT_BYTES,
            enable_analyzer=True, analyzer_params={"tokenizer": "whitespace"},
        )
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name=_BM25_FUNCTION, function_type=FunctionType.BM25,
                input_field_names=[KEYWORDS_FIELD], output_field_names=[SPARSE_FIELD],
            )
        )
        # As strings: pymilvus drops a numeric 0 from index params, and Milvus then applies its default
        # (b = 0.75 instead of 0: measured on Milvus Lite 2.5.1).
        index.add_index(
            field_name=SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
            params={"bm25_k1": repr(float(bm25.k1)), "bm25_b": repr(float(bm25.b))},
        )

    def _check_full_text_server(self) -> None:
        """A Milvus server older than 2.5 has no BM25 function: say so before anything is created.
        (Milvus Lite does not report a version; 2.5.1, the pinned one, has full-text search.)"""
        if "://" not in self.uri:
            return
        try:
            version = str(self._client.get_server_version())
        except Exception as exc:  # an old or unusual server: creating the collection will tell
            log.debug("get_server_version: %s", exc)
            return
        parts = version.lstrip("vV").split(".")
        try:
            major_minor = (int(parts[0]), int(parts[1]))
        except (IndexError, ValueError):
            return
        if major_minor < (2, 5):
            raise VectorStoreError(
                f"the Milvus server at {self.uri} is version {version}: full-text search (bm25.backend:"
                " milvus) needs Milvus 2.5 or later; upgrade it, or use bm25.backend: none (dense only, replicas"
                " alike) or local (one app process)"
            )

    def _read_bm25_params(self) -> tuple[float, float]:
        """The (k1, b) the collection's sparse index was created with (the defaults if unreadable)."""
        fallback = (self.full_text.k1, self.full_text.b) if self.full_text is not None else (1.5, 0.75)
        try:
            desc = self._client.describe_index(self.settings.collection, SPARSE_FIELD)
            return float(desc.get("bm25_k1", fallback[0])), float(desc.get("bm25_b", fallback[1]))
        except Exception as exc:
            log.debug("describe_index %s: %s", SPARSE_FIELD, exc)
            return fallback

    @property
    def has_full_text(self) -> bool:
        """The open collection has the keywords field and its BM25 function (opens the store)."""
        self.warm_up()
        return self._has_keywords

    def bm25_params(self) -> tuple[float, float]:
        """(k1, b) the collection scores keyword search with (fixed when it was created)."""
        self.warm_up()
        if self._bm25_params is None:
            raise VectorStoreError(f"collection '{self.settings.collection}' at {self.uri} has no full-text search")
        return self._bm25_params

    # --- writes ----------------------------------------------------------------------------------
    def upsert(
        self, chunks: Sequence[Chunk], vectors: np.ndarray, keywords: Sequence[Sequence[str]] | None = None
    ) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        if keywords is not None and len(keywords) != len(chunks):
            raise ValueError("one keyword list per chunk")
        if keywords is None and self.full_text is not None:
            raise ValueError(
                "this Milvus collection indexes keywords itself (bm25.backend: milvus): upsert needs each"
                " chunk's BM25 tokens (keywords=...)"
            )
        with_keywords = self.has_full_text  # a full-text collection requires the field in every row
        rows = [
            {
                "chunk_id": c.chunk_id,
                "doc_id": c.doc_id,
                "vector": np.asarray(v, dtype=np.float32).tolist(),
                "text": _clip_utf8(c.text, _MAX_TEXT_BYTES),
                "meta": {"source": c.source, "ordinal": c.ordinal, "page": c.page, "section": c.section},
            }
            for c, v in zip(chunks, vectors)
        ]
        if with_keywords:
            for row, tokens in zip(rows, keywords if keywords is not None else [()] * len(rows)):
                row[KEYWORDS_FIELD] = keyword_text(tokens)
        with self._lock:
            for batch in _batches(rows):
                self._call("upsert", self.client.upsert, self.settings.collection, batch)

    def set_source(self, chunk_ids: Sequence[str], source: str) -> int:
        """Rewrite the ``source`` in these rows' ``meta`` (after a rename), keeping their stored
        vectors and text (and keywords, in a full-text collection: the BM25 function's output is
        recomputed from them): no re-embedding. Returns the rows rewritten (missing ids are skipped)."""
        fields = ["chunk_id", "doc_id", "vector", "text", "meta"]
        if self.has_full_text:
            fields.append(KEYWORDS_FIELD)
        rows = list(self._get(list(chunk_ids), fields).values())
        for row in rows:
            row["meta"] = {**_meta(row), "source": source}
            row["vector"] = np.asarray(row["vector"], dtype=np.float32).tolist()
        with self._lock:
            for batch in _batches(rows):
                self._call("upsert", self.client.upsert, self.settings.collection, batch)
        return len(rows)

    def delete(self, chunk_ids: Iterable[str]) -> int:
        ids = list(dict.fromkeys(chunk_ids))
        removed = 0
        with self._lock:
            for i in range(0, len(ids), 1000):
                part = ids[i : i + 1000]
                self._call("delete", self.client.delete, self.settings.collection, ids=part)
                removed += len(part)
        return removed

    def flush(self) -> None:
        with self._lock:
            try:
                self.client.flush(self.settings.collection)
            except Exception as exc:  # Lite has no-op flush in some versions
                log.debug("flush: %s", exc)

    # --- reads ----------------------------------------------------------------------------------
    def count(self) -> int:
        with self._lock:
            res = self._call(
                "count", self.client.query, self.settings.collection, filter="", output_fields=["count(*)"]
            )
        return int(res[0]["count(*)"])

    def all_ids(self, batch_size: int = 5000) -> set[str]:
        ids: set[str] = set()
        with self._lock:
            iterator = self.client.query_iterator(
                self.settings.collection, batch_size=batch_size, filter="", output_fields=["chunk_id"]
            )
            try:
                while True:
                    page = iterator.next()
                    if not page:
                        break
                    ids.update(r["chunk_id"] for r in page)
            finally:
                iterator.close()
        return ids

    def keyword_lengths(self, batch_size: int = 5000) -> tuple[int, int]:
        """(rows, tokens) over the whole collection's keywords: its exact average chunk length, O(N)
        (``MilvusKeywordIndex`` falls back to it when search scores do not determine the average)."""
        rows = tokens = 0
        with self._lock:
            iterator = self.client.query_iterator(
                self.settings.collection, batch_size=batch_size, filter="", output_fields=[KEYWORDS_FIELD]
            )
            try:
                while True:
                    page = iterator.next()
                    if not page:
                        break
                    rows += len(page)
                    tokens += sum(len(str(r.get(KEYWORDS_FIELD, "")).split()) for r in page)
            finally:
                iterator.close()
        return rows, tokens

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[Chunk, float]]]:
        """For each query vector, up to ``k`` ``(chunk, similarity)`` pairs, best first (cosine or
        inner product, per ``milvus.metric``). The chunk is the stored :class:`Chunk` itself
        (``token_count`` is not stored: 0), not a look-alike record."""
        data = np.asarray(vectors, dtype=np.float32)
        if data.ndim == 1:
            data = data[None, :]
        with self._lock:
            res = self._call(
                "search",
                self.client.search,
                self.settings.collection,
                data=data.tolist(),
                anns_field="vector",  # a full-text collection has a second (sparse) vector field
                limit=k,
                output_fields=["doc_id", "text", "meta"],
                search_params={"metric_type": self.settings.metric, "params": self.settings.search_params},
            )
        return [[(_chunk(h), float(h["distance"])) for h in per_query] for per_query in res]

    def search_keywords(
        self,
        queries: Sequence[Sequence[str]],
        k: int,
        *,
        chunk_ids: Sequence[str] | None = None,
        with_keywords: bool = False,
    ) -> list[list[tuple[str, float, str]]]:
        """Milvus full-text (BM25) search: for each query's tokens, up to ``k`` ``(chunk_id, score,
        keywords)`` best first (``keywords`` is "" unless ``with_keywords``). ``chunk_ids``: search only
        these rows. A query without tokens gets no hits (it is not sent)."""
        if not self.has_full_text:
            raise VectorStoreError(f"collection '{self.settings.collection}' at {self.uri} has no full-text search")
        out: list[list[tuple[str, float, str]]] = [[] for _ in queries]
        texts = [keyword_text(q) for q in queries]
        todo = [i for i, t in enumerate(texts) if t]
        if not todo or k <= 0:
            return out
        kwargs: dict[str, Any] = {}
        if chunk_ids is not None:
            # Milvus Lite 2.5.1 does not take filter_params (it retries for minutes): a literal list.
            kwargs["filter"] = f"chunk_id in {json.dumps(list(chunk_ids), ensure_ascii=False)}"
        if with_keywords:
            kwargs["output_fields"] = [KEYWORDS_FIELD]
        with self._lock:
            try:
                res = self._call(
                    "keyword search",
                    self.client.search,
                    self.settings.collection,
                    data=[texts[i] for i in todo],
                    anns_field=SPARSE_FIELD,
                    limit=k,
                    search_params={"metric_type": "BM25"},
                    **kwargs,
                )
            except VectorStoreError as exc:
                # A collection without a single token (empty, or only empty chunks) has avgdl 0, and
                # Milvus Lite 2.5.1 fails the search on the NaN weights that makes: nothing to find.
                if "NaN or Inf" in str(exc):
                    return out
                raise
        for i, per_query in zip(todo, res):
            out[i] = [
                (str(h["id"]), float(h["distance"]), str(h.get("entity", {}).get(KEYWORDS_FIELD, "")))
                for h in per_query
            ]
        return out

    def get_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        return {cid: row["text"] for cid, row in self._get(chunk_ids, ["text"]).items()}

    def get_indexed_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        return {cid: _chunk(row).indexed_text for cid, row in self._get(chunk_ids, ["doc_id", "text", "meta"]).items()}

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, np.ndarray]]:
        """Stored chunks with their vectors, for the ids that exist (missing ids are left out)."""
        rows = self._get(chunk_ids, ["doc_id", "text", "meta", "vector"])
        return {cid: (_chunk(row), np.asarray(row["vector"], dtype=np.float32)) for cid, row in rows.items()}

    def _get(self, chunk_ids: Sequence[str], fields: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        with self._lock:
            for i in range(0, len(chunk_ids), 500):
                part = list(chunk_ids[i : i + 500])
                rows = self._call("get", self.client.get, self.settings.collection, ids=part, output_fields=fields)
                for r in rows:
                    out[r["chunk_id"]] = r
        return out

    def sample_vectors(self, n: int) -> np.ndarray:
        """Up to ``n`` stored vectors spread over the collection (for score calibration)."""
        with self._lock:
            rows = self._call(
                "sample",
                self.client.query,
                self.settings.collection,
                filter="",
                output_fields=["vector"],
                limit=max(n * 8, n),
            )
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = max(1, len(rows) // n)
        return np.asarray([r["vector"] for r in rows[::step][:n]], dtype=np.float32)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except VectorStoreError:
            raise
        except Exception as exc:
            raise VectorStoreError(f"Milvus {what} failed at {self.uri}: {exc}") from exc


def _meta(row: dict) -> dict:
    """A row's ``meta`` JSON field as a dict (some pymilvus paths return it as a string)."""
    meta = row.get("meta") or {}
    return json.loads(meta) if isinstance(meta, str) else meta


def _chunk(h: dict) -> Chunk:
    """The :class:`Chunk` in a search hit (``entity`` nested) or a ``get`` row (flat)."""
    entity = h.get("entity", h)
    meta = _meta(entity)
    return Chunk(
        chunk_id=str(h.get("id", entity.get("chunk_id"))),
        doc_id=entity.get("doc_id", ""),
        source=meta.get("source", ""),
        text=entity.get("text", ""),
        ordinal=int(meta.get("ordinal", 0)),
        page=meta.get("page"),
        section=meta.get("section", ""),
    )


def _batches(rows: list[dict]) -> Iterable[list[dict]]:
    batch: list[dict] = []
    size = 0
    for row in rows:
        row_bytes = len(row["vector"]) * 4 + len(row["text"].encode("utf-8")) + 256
        row_bytes += len(row.get(KEYWORDS_FIELD, "").encode("utf-8"))
        if batch and (len(batch) >= _MAX_INSERT_ROWS or size + row_bytes > _MAX_INSERT_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_bytes
    if batch:
        yield batch


def keyword_text(tokens: Iterable[str]) -> str:
    """BM25 tokens as the ``keywords`` field stores them and a keyword query sends them: joined by
    single spaces, whitespace inside a token removed (the analyzer would split there), at most the
    VARCHAR limit (cut between tokens)."""
    text = " ".join(t for t in ("".join(tok.split()) for tok in tokens) if t)
    if len(text.encode("utf-8")) > _MAX_TEXT_BYTES:
        clipped = _clip_utf8(text, _MAX_TEXT_BYTES + 1)  # one byte more: is the last token whole?
        text = clipped.rsplit(" ", 1)[0] if " " in clipped else _clip_utf8(text, _MAX_TEXT_BYTES)
    return text


def _clip_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")
