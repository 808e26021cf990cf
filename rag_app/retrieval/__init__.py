"""Hybrid retrieval as small typed stages, composed by :class:`~rag_app.retrieval.pipeline.HybridRetriever`.

========================  ==============================================================
``pipeline``              ``HybridRetriever`` (wires and times the stages), ``clean_query``
``dense``                 ``DenseSearch``: query embedding + vector-store top-k, cosines for BM25-only hits
``keyword``               ``KeywordSearch``: BM25 top-k, BM25 scores for dense-only hits
``candidates``            ``Candidates``: both legs' hits merged, with ranks and scores
``fusion``                ``Fusion`` stage; ``reciprocal_rank_fusion``, ``weighted_score_sum``
``threshold``             ``ScoreCalibration`` (dense_z, dense_margin), ``Threshold``
``rerank``                ``Rerank`` stage and the ``CrossEncoderReranker`` model
``results``               ``RetrievedChunk`` (a ``Chunk`` + scores, ``to_dict``), ``RetrievalResult``
``protocols``             what the stages need: ``QueryEmbedder``, ``VectorStore``, ``KeywordIndex``...
``langchain_retriever``   the pipeline as a LangChain retriever
========================  ==============================================================

Nothing is imported here, so importing one stage does not load the others.
"""
