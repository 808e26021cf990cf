"""Per-knowledge-base calibration: a refusal cutoff and a fusion derived from the knowledge base
itself, without labels.

``probes`` makes in-domain questions from the knowledge base's chunks, ``offtopic`` ships generic
questions in Chinese and English, ``collect`` runs both through the retriever, ``relevance``
chooses the score and cutoff, ``fusion_choice`` the fusion, and ``calibrate`` puts them together
into a :class:`~rag_app.retrieval.kb_calibration.KnowledgeBaseCalibration`.
"""
