"""The application service end to end over in-memory fakes: ``RagService`` on a ``KnowledgeBase``
given a hashing embedder and an in-memory vector store (the real BM25 index, tokenizer, registry,
loaders, upload store and job worker), answering with a scripted LLM. No model, no Milvus.

The retrieval threshold is the default one (``dense_margin >= 0.023``): the margin compares a
chunk's cosine with the query's best cosine to the generic reference passages, both from the same
embedder, so it is meaningful for the hashing embedder too, where a cosine is word overlap.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.loaders import LoaderSettings
from rag_app.answering import Answerer, DeltaEvent, FinalEvent, QueryEvent, SourcesEvent
from rag_app.config import Settings
from rag_app.service import EmptyQuestionError, KnowledgeBase, RagService
from tests.support.documents import FAQ_EN, HANDBOOK_ZH
from tests.support.fakes import HashingEmbedder, InMemoryVectorStore, ScriptedLLM
from tests.support.knowledge_base import assert_stores_agree

ZH_Q = "入职满五年的正式员工每年有几天带薪年假？"
EN_Q = "What is the maximum upload size?"
OFF_TOPIC = ["Who won the football world cup in 1998?", "明天北京的天气怎么样？"]


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        # In-process parsing (no parser process): the loaders' isolation has its own tests.
        self.settings = Settings(data_dir=tmp_path / "data", loaders=LoaderSettings(parse_timeout_s=0))
        self.embedder = HashingEmbedder()
        self.vectors = InMemoryVectorStore(self.embedder.dim)
        self.kb = KnowledgeBase(self.settings, embedder=self.embedder, vectors=self.vectors).warm_up()
        # Answers that state the documents' facts (a citation stands only on a source that holds them).
        self.llm = ScriptedLLM(responder=lambda messages: (
            ["根据员工手册，", "每年享有 18 天带薪年假 [1]。"] if "年假" in messages[-1]["content"]
            else ["The maximum upload size ", "is 200 MB per file [1]."]))
        self.service = RagService(self.settings, self.kb, Answerer(self.kb, self.llm), background=False)

    def upload_both(self) -> dict[str, str]:
        """Upload the two documents; returns file name -> indexed source."""
        job = self.service.upload([("员工手册.md", HANDBOOK_ZH), ("faq.md", FAQ_EN)])
        assert job.wait(30) and job.state == "done", job.error
        results = job.snapshot()
        assert [(r.name, r.status) for r in results] == [("员工手册.md", "indexed"), ("faq.md", "indexed")]
        return {r.name: r.source for r in results}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.service.close()


def test_the_knowledge_base_uses_the_given_embedder_and_vector_store(harness: Harness) -> None:
    registry, vectors, _ = harness.kb.stores()
    assert vectors is harness.vectors and harness.vectors.open and harness.kb.embedder is harness.embedder
    assert harness.kb.indexer is not None and harness.kb.indexer.vectors is harness.vectors
    assert not (harness.settings.data_dir / "milvus.db").exists()  # Milvus was never opened
    harness.kb.close()
    assert not harness.vectors.open


def test_upload_list_search_ask_and_delete(harness: Harness) -> None:
    service = harness.service
    sources = harness.upload_both()
    uploads = (harness.settings.data_dir / "uploads").resolve()
    assert all(Path(s).parent == uploads and Path(s).is_file() for s in sources.values())

    docs = {d["file"]: d for d in service.documents()}
    assert set(docs) == {"员工手册.md", "faq.md"}
    assert all(d["uploaded"] and d["chunks"] > 0 and d["type"] == "markdown" for d in docs.values())
    assert docs["faq.md"]["source"] == sources["faq.md"] and docs["员工手册.md"]["title"] == "员工手册"
    assert_stores_agree(harness.kb)

    # Search finds the right file in either language.
    for question, file in ((EN_Q, "faq.md"), (ZH_Q, "员工手册.md")):
        found = service.search(question)
        assert not found.truncated and found.result.chunks, found.result.note
        assert found.result.chunks[0].source == sources[file]
    with pytest.raises(EmptyQuestionError):
        service.search(" \x00\u200b ")

    # Ask: the answer cites the right file, from a prompt that held it.
    final = service.ask(ZH_Q)
    assert isinstance(final, FinalEvent) and not final.refused and final.language == "zh"
    assert final.cited_sources == [sources["员工手册.md"]] and final.citations[0].number == 1
    assert final.answer == "根据员工手册，每年享有 18 天带薪年假 [1]。"
    assert "18 天带薪年假" in harness.llm.calls[-1][0]["content"]
    events = list(service.ask_stream(EN_Q))
    assert [type(e) for e in events[:2]] == [QueryEvent, SourcesEvent] and isinstance(events[2], DeltaEvent)
    assert isinstance(events[-1], FinalEvent) and events[-1].cited_sources == [sources["faq.md"]]

    # Off-topic questions are refused without asking the LLM.
    asked = len(harness.llm.calls)
    for question in OFF_TOPIC:
        refused = service.ask(question)
        assert isinstance(refused, FinalEvent) and refused.refused and not refused.citations
        assert refused.answer == (harness.settings.answer.refusal_zh if refused.language == "zh"
                                  else harness.settings.answer.refusal_en)
    assert len(harness.llm.calls) == asked

    counts = service.status()["counts"]
    assert counts["documents"] == 2 and counts["registry_chunks"] == counts["milvus_chunks"] == counts["bm25_chunks"]

    # Delete: gone from the list, the stores, the search and the uploads folder.
    removed = service.delete(sources["faq.md"])
    assert removed == docs["faq.md"]["chunks"]
    assert [d["file"] for d in service.documents()] == ["员工手册.md"]
    assert not Path(sources["faq.md"]).exists()
    assert all(c.source != sources["faq.md"] for c in service.search(EN_Q).result.chunks)
    assert sources["faq.md"] not in {c.source for c, _ in harness.vectors.rows.values()}
    assert_stores_agree(harness.kb)
    assert service.delete(sources["faq.md"]) is None  # not indexed any more


def test_re_uploads_and_reindex_change_nothing(harness: Harness) -> None:
    sources = harness.upload_both()
    ids = assert_stores_agree(harness.kb)
    again = harness.service.upload([("faq.md", FAQ_EN), ("renamed copy.md", FAQ_EN)])
    assert again.wait(30)
    assert [(r.status, r.source) for r in again.snapshot()] == [("unchanged", sources["faq.md"]), ("duplicate", "")]
    job = harness.service.reindex()
    assert job.wait(30) and job.state == "done"
    assert {r.status for r in job.snapshot()} == {"unchanged"}
    assert assert_stores_agree(harness.kb) == ids
