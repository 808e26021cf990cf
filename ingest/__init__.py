"""Ingestion library: load files, chunk them with the embedder's tokenizer, index them.

Pipeline order, one module each:
  loaders/ -> chunking.py -> embedding/ -> stores/ (Milvus vectors, BM25) -> indexer.py
"""
