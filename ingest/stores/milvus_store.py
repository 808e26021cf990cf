"""Chunk vectors in Milvus: embedded Milvus Lite (a local file) or a Milvus server URI."""
from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ingest.settings import MilvusSettings
from ingest.types import Chunk

log = logging.getLogger(__name__)

# Milvus Lite 2.5.1 slows down sharply on inserts above a few MB per call (5,000 rows of 384-d
# vectors took ~60 s against ~0.3 s per 1,000 rows, measured): keep each call small.
_MAX_INSERT_ROWS = 500
_MAX_INSERT_BYTES = 2_000_000
_MAX_TEXT_BYTES = 65_535  # Milvus VARCHAR limit
_ID_LEN = 64
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


class VectorStoreError(RuntimeError):
    """Milvus could not be opened or answered with an error; the message says which and where."""


class MilvusVectorStore:
    """Thin, typed wrapper around ``pymilvus.MilvusClient`` for the ``chunks`` collection."""

    def __init__(self, settings: MilvusSettings, uri: str, dim: int) -> None:
        self.settings = settings
        self.uri = uri
        self.dim = dim
        self._client: Any = None
        self._lock = threading.RLock()

    # --- lifecycle ----------------------------------------------------------------------------------
    def warm_up(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            with warnings.catch_warnings():
                # milvus-lite 2.5.1 imports the deprecated pkg_resources (pinned setuptools<81).
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
                from pymilvus import MilvusClient

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
                self._client = MilvusClient(**kwargs)
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
                    self._client.close()
                finally:
                    self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self.warm_up()
        return self._client

    def _ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        name = self.settings.collection
        client = self._client
        if client.has_collection(name):
            desc = client.describe_collection(name)
            for field in desc.get("fields", []):
                if field.get("name") == "vector":
                    have = int(field.get("params", {}).get("dim", self.dim))
                    if have != self.dim:
                        raise VectorStoreError(
                            f"collection '{name}' at {self.uri} holds {have}-d vectors but the embedder"
                            f" makes {self.dim}-d ones: use another collection or data directory"
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
        client.create_collection(name, schema=schema, index_params=index)
        log.info("created Milvus collection '%s' (%d-d, %s) at %s", name, self.dim, self.settings.index_type, self.uri)

    # --- writes ----------------------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
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
        with self._lock:
            for batch in _batches(rows):
                self._call("upsert", self.client.upsert, self.settings.collection, batch)

    def set_source(self, chunk_ids: Sequence[str], source: str) -> int:
        """Rewrite the ``source`` in these rows' ``meta`` (after a rename), keeping their stored
        vectors and text: no re-embedding. Returns the rows rewritten (missing ids are skipped)."""
        rows = list(self._get(list(chunk_ids), ["chunk_id", "doc_id", "vector", "text", "meta"]).values())
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
                limit=k,
                output_fields=["doc_id", "text", "meta"],
                search_params={"metric_type": self.settings.metric, "params": self.settings.search_params},
            )
        return [[(_chunk(h), float(h["distance"])) for h in per_query] for per_query in res]

    def get_texts(self, chunk_ids: Sequence[str]) -> dict[str, str]:
        return {cid: row["text"] for cid, row in self._get(chunk_ids, ["text"]).items()}

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
        if batch and (len(batch) >= _MAX_INSERT_ROWS or size + row_bytes > _MAX_INSERT_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_bytes
    if batch:
        yield batch


def _clip_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")
