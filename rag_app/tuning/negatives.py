"""Hard negatives for generated queries, mined with both retrieval legs.

For each query, BM25 and the dense index are searched; the top ``skip_top`` ranks of each leg are
skipped (an unlabelled chunk there is as likely to answer the query as its own chunk), so are all
chunks of the positive's document and any chunk with the positive's text; negatives are drawn
from the rest of both legs' top ``depth``, alternating legs so both kinds of confusion are taught.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from rag_app.tuning.questions import GeneratedQuery
from rag_app.tuning.training_data import TrainingExample

if TYPE_CHECKING:
    from rag_app.retrieval.protocols import SearchableKnowledgeBase


def normalised_text(text: str) -> str:
    """Whitespace-insensitive form, to recognise the same passage formatted differently."""
    return " ".join(text.split())


def _interleave(pools: list[list[str]]) -> list[str]:
    """Alternate the legs (dense confusions: same topic; lexical ones: same words), each id once."""
    out: list[str] = []
    for i in range(max(map(len, pools), default=0)):
        for pool in pools:
            if i < len(pool) and pool[i] not in out:
                out.append(pool[i])
    return out


def mine_hard_negatives(
    kb: SearchableKnowledgeBase,
    queries: Sequence[GeneratedQuery],
    negatives: int = 3,
    skip_top: int = 3,
    depth: int = 30,
    seed: int = 0,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> list[TrainingExample]:
    """One example per query with up to ``negatives`` hard negatives (queries with none are dropped)."""
    assert kb.vectors is not None and kb.keyword_index is not None, "call kb.warm_up() first"
    rng = random.Random(seed)
    out: list[TrainingExample] = []
    for start in range(0, len(queries), batch_size):
        batch = list(queries[start : start + batch_size])
        qvecs = np.asarray(kb.embedder.embed_queries([q.query for q in batch]), dtype=np.float32)
        dense_hits = kb.vectors.search(qvecs, depth)
        bm25_hits = [kb.keyword_index.search(kb.tokenizer.tokenize(q.query), depth) for q in batch]
        texts = {c.chunk_id: (c.doc_id, c.text) for hits in dense_hits for c, _ in hits}
        missing = [cid for hits in bm25_hits for cid, _ in hits if cid not in texts]
        for cid, (chunk, _) in kb.vectors.fetch(missing).items():
            texts[cid] = (chunk.doc_id, chunk.text)
        for q, dense, lexical in zip(batch, dense_hits, bm25_hits):
            pos_text = normalised_text(q.positive)
            # A chunk in either leg's top ranks is skipped in both legs.
            skipped = {c.chunk_id for c, _ in dense[:skip_top]} | {cid for cid, _ in lexical[:skip_top]}
            pools = [[c.chunk_id for c, _ in dense[skip_top:] if c.chunk_id not in skipped],
                     [cid for cid, _ in lexical[skip_top:] if cid not in skipped]]
            for pool in pools:
                rng.shuffle(pool)
            chosen: list[str] = []
            seen_texts = {pos_text}
            for cid in _interleave(pools):
                doc_id, text = texts.get(cid, ("", ""))
                norm = normalised_text(text)
                if not text or cid == q.chunk_id or doc_id == q.doc_id or norm in seen_texts:
                    continue
                seen_texts.add(norm)
                chosen.append(cid)
                if len(chosen) >= negatives:
                    break
            if chosen:
                out.append(
                    TrainingExample(
                        query=q.query,
                        pos=[q.positive],
                        neg=[texts[c][1] for c in chosen],
                        doc_id=q.doc_id,
                        pos_id=q.chunk_id,
                        neg_ids=chosen,
                        generator=q.generator,
                    )
                )
        if progress:
            progress(min(start + batch_size, len(queries)), len(queries))
    return out
