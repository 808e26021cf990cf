"""The command-line front ends, one module per command over the application service:
``rag-ingest`` (:mod:`.ingest`), ``rag-search`` (:mod:`.search`), ``rag-eval`` (:mod:`.evaluate`),
``rag-tune`` (:mod:`.tune`) and ``rag-app`` (:mod:`.serve`); :mod:`.common` holds what they share."""
