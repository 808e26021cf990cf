"""Probe questions from chunks (inverse cloze) and the shipped off-topic pool."""
from __future__ import annotations

from ingest.types import Chunk
from rag_app.answering.language import cjk_share
from rag_app.calibration.offtopic import POOLS, load_pool, offtopic_questions
from rag_app.calibration.probes import make_probes, probe_candidates

EN = (
    "The Team plan has a thirty day free trial and no credit card is required. Enterprise customers get"
    " single sign-on with SAML and OIDC and an uptime agreement. Invoices are sent by email at the start"
    " of every billing period to the account owner."
)
ZH = "入职不满五年的正式员工每年享有十二天带薪年假。入职满五年及以上的正式员工每年享有十八天带薪年假。年假须至少提前五个工作日在系统中提交申请。"


def _chunk(cid: str, text: str) -> Chunk:
    return Chunk(cid, f"doc-{cid}", f"/docs/{cid}.md", text, 0, None, "")


def test_a_probe_is_a_sentence_and_its_evidence_is_the_rest_of_the_chunk() -> None:
    for text in (EN, ZH):
        pairs = probe_candidates(_chunk("c", text))
        assert pairs
        for question, context in pairs:
            assert question in text and question not in context
            assert len(context) >= len(question) // 2


def test_a_one_sentence_or_tabular_chunk_gives_no_probe() -> None:
    assert probe_candidates(_chunk("c", "Invoices are sent by email at the start of every billing period.")) == []
    assert probe_candidates(_chunk("c", "| a | b |\n| 1 | 2 |\n| 3 | 4 |")) == []


def test_probes_spread_over_chunks_first_are_seeded_and_unique() -> None:
    chunks = [_chunk(f"c{i}", EN.replace("thirty", f"{i + 30}").replace("email", f"email {i}")
                     .replace("uptime", f"uptime {i}")) for i in range(6)]
    probes = make_probes(chunks, limit=6, seed=1)
    assert len({p.chunk.chunk_id for p in probes}) == 6  # one per chunk before a second from any
    assert [p.question for p in probes] == [p.question for p in make_probes(chunks, limit=6, seed=1)]
    assert len(make_probes(chunks, limit=100, seed=1)) == 18
    twins = make_probes([_chunk("a", ZH), _chunk("b", ZH)], limit=100, seed=1)
    assert len(twins) == len({p.question for p in twins}) == 3  # the same sentence in two chunks: once
    assert len({p.probe_id for p in twins}) == len(twins)


def test_the_offtopic_pool_ships_at_least_500_distinct_questions_per_language() -> None:
    for language, path in POOLS.items():
        pool = load_pool(language)
        assert len(pool) >= 500 and len(set(pool)) == len(pool), path
        domains = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# domain:")]
        assert len(domains) >= 15, "many domains"
        cjk = sum(cjk_share(q) > 0.5 for q in pool) / len(pool)
        assert (cjk > 0.95) if language == "zh" else (cjk == 0)


def test_offtopic_sample_is_seeded_and_capped_per_language() -> None:
    sample = offtopic_questions(50, seed=3)
    assert len(sample) == 100 and sample == offtopic_questions(50, seed=3)
    assert sum(k.startswith("zh:") for k in sample) == 50
