"""The test suite: folders mirror the source tree (``tests/ingest``, ``tests/rag_app``), shared helpers
live in ``tests.support``."""
