"""Run probe and off-topic questions through the knowledge base's own retriever and keep every
candidate's scores (the evaluation's :class:`Candidate` record), for the cutoff and fusion choices.

A probe's sentence is still in the index (in its chunk, and in any overlapping or duplicate chunk):
every candidate containing it is dropped and the edited chunk (the context without the sentence) is
scored in its place, exactly as the retriever would score it (cosine, calibrated dense scores, BM25
under the index's statistics). Its "hole" twin drops the probe's whole document instead.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ingest.types import indexed_text
from rag_app.config import FusionSettings, ThresholdSettings
from rag_app.evaluation.beir_eval import Candidate, CandidateSet, QueryCandidates
from rag_app.evaluation.refusal import reranked
from rag_app.retrieval.embedding_cache import cached_embeddings
from rag_app.retrieval.pipeline import HybridRetriever, clean_query
from rag_app.retrieval.results import RetrievedChunk

from .probes import Probe

Progress = Callable[[str, int, int], None]  # (stage, done, total)
_EXTRA_DEPTH = 10  # collected beyond the deployed depth, so dropping a few chunks leaves a full list


def scoring_retriever(retriever: HybridRetriever) -> HybridRetriever:
    """The live retriever's stores and dense calibration with the threshold off, the configured
    legs both searched (never a calibrated fusion that might switch one off) and no reranker."""
    s = retriever.settings
    depth = max(s.dense_top_k, s.bm25_top_k) + _EXTRA_DEPTH
    settings = s.model_copy(update={
        "dense_top_k": depth,
        "bm25_top_k": depth,
        "threshold": ThresholdSettings(score="none"),
        "fusion": FusionSettings(per_knowledge_base=False),
    })
    scorer = retriever.variant(settings, None)
    scorer.kb_calibration = None
    scorer.calibration = retriever.calibration  # the same corpus sample: the same dense_z as served
    return scorer


def deployed_depth(retriever: HybridRetriever) -> int:
    return max(retriever.settings.dense_top_k, retriever.settings.bm25_top_k)


def as_candidate(c: RetrievedChunk) -> Candidate:
    """A retrieved chunk as an evaluation candidate, identified by chunk (probes' evidence is a chunk)."""
    return Candidate(
        c.chunk_id, c.chunk_id, c.dense_rank, c.bm25_rank, c.dense_score, c.bm25_score, c.fused_score,
        c.dense_margin, c.dense_z, None, c.bm25_coverage,
    )


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@dataclass
class ProbeSets:
    probes: CandidateSet  # qrels: each probe's edited chunk
    holes: CandidateSet  # the same questions with their document removed (no qrels)


def probe_candidates(
    retriever: HybridRetriever, probes: Sequence[Probe], progress: Progress | None = None
) -> ProbeSets:
    scorer = scoring_retriever(retriever)
    depth = deployed_depth(retriever)
    embedder = scorer.dense.embedder
    if progress:
        progress("embedding probe questions and evidence", 0, len(probes))
    texts = [clean_query(p.question, scorer.settings.max_query_chars) for p in probes]
    query_vectors = cached_embeddings(embedder, texts, "query", None, "probes")
    edited = [p for p in probes if p.context is not None]
    evidence_vectors = dict(zip(
        (p.probe_id for p in edited),
        cached_embeddings(embedder, [indexed_text(p.context or "", p.chunk.section) for p in edited], "passage", None,
                          "probes"),
    ))
    out = ProbeSets(CandidateSet("probes", depth=depth), CandidateSet("holes", depth=depth))
    for i, (probe, q, qvec) in enumerate(zip(probes, texts, query_vectors), start=1):
        result = scorer.run(q, top_k=4 * depth, query_vector=qvec)
        if probe.context is None:  # a written question: the chunk as indexed is its evidence
            others = result.chunks
            in_domain = reranked([as_candidate(c) for c in others], depth)
            evidence_id = probe.chunk.chunk_id
        else:  # the indexed chunks holding the sentence give way to the edited one
            sentence = _squash(probe.question)
            others = [c for c in result.chunks if sentence not in _squash(c.text)]
            target = _edited_evidence(scorer, probe, probe.context, q, qvec, evidence_vectors[probe.probe_id])
            in_domain = reranked([as_candidate(c) for c in others] + [target], depth)
            evidence_id = target.corpus_id
        hole = [as_candidate(c) for c in others if c.doc_id != probe.chunk.doc_id]
        out.probes.queries.append(QueryCandidates(probe.probe_id, in_domain, 0.0))
        out.probes.qrels[probe.probe_id] = {evidence_id: 1}
        out.holes.queries.append(QueryCandidates(probe.probe_id, reranked(hole, depth), 0.0))
        if progress:
            progress("probe questions", i, len(probes))
    return out


def _edited_evidence(
    scorer: HybridRetriever, probe: Probe, context: str, query: str, qvec: np.ndarray, evidence_vector: np.ndarray
) -> Candidate:
    """The probe's chunk without its sentence, scored as the retriever would score it."""
    tokens = scorer.keyword.tokenize(query)
    bound = scorer.keyword.max_score(tokens)
    cosine = float(evidence_vector @ qvec)
    z, margin = scorer.calibration.run(qvec, np.array([cosine], dtype=np.float32))
    # Scored as it would be indexed: with its heading path (ingest.types.indexed_text).
    indexed = scorer.keyword.tokenizer.tokenize(indexed_text(context, probe.chunk.section))
    bm25 = scorer.keyword.index.score_tokens(tokens, indexed) if tokens else 0.0
    evidence_id = f"{probe.probe_id}:evidence"
    # Rank 0 means "in the leg's list" until ``reranked`` ranks it; BM25 lists only chunks sharing
    # a query term.
    return Candidate(
        evidence_id, evidence_id, 0, 0 if bm25 > 0 else None, cosine, bm25, math.nan, float(margin[0]),
        float(z[0]), None, bm25 / bound if bound > 0 else 0.0,
    )


def question_candidates(
    retriever: HybridRetriever, questions: Mapping[str, str], progress: Progress | None = None, stage: str = "questions"
) -> CandidateSet:
    """Candidates of unjudged questions (the off-topic pool), at the deployed depth."""
    scorer = scoring_retriever(retriever)
    depth = deployed_depth(retriever)
    out = CandidateSet(stage, depth=depth)
    if progress:
        progress(f"embedding {stage}", 0, len(questions))
    texts = [clean_query(t, scorer.settings.max_query_chars) for t in questions.values()]
    # The shipped pool is the same every time: its vectors are cached per embedder model.
    vectors = cached_embeddings(scorer.dense.embedder, texts, "query", scorer.calibration.reference_cache_dir, stage)
    for i, (qid, text, qvec) in enumerate(zip(questions, texts, vectors), start=1):
        result = scorer.run(text, top_k=4 * depth, query_vector=qvec)
        out.queries.append(QueryCandidates(qid, reranked([as_candidate(c) for c in result.chunks], depth), 0.0))
        if progress:
            progress(stage, i, len(questions))
    return out
