"""Settings from YAML and environment; the command-line tools end to end on real stores."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rag_app.cli import ingest as ingest_cli
from rag_app.cli import search as search_cli
from rag_app.config import PROJECT_ROOT, Settings, load_settings
from tests.support.paths import SAMPLES


def test_default_yaml_loads_and_env_overrides_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(PROJECT_ROOT / "configs" / "default.yaml")
    assert settings.milvus.uri == "milvus.db" and settings.is_milvus_lite
    monkeypatch.setenv("RAG_MILVUS__URI", "http://milvus:19530")
    monkeypatch.setenv("RAG_RETRIEVAL__FUSION__BM25_WEIGHT", "0.5")
    settings = load_settings(PROJECT_ROOT / "configs" / "default.yaml")
    assert settings.milvus_uri == "http://milvus:19530" and not settings.is_milvus_lite
    assert settings.retrieval.fusion.bm25_weight == 0.5
    assert settings.retrieval.fusion.dense_weight == 1.0  # untouched sibling keeps the file's value


def test_server_shape_config_loads() -> None:
    settings = load_settings(PROJECT_ROOT / "configs" / "milvus-server.yaml")
    assert settings.milvus_uri.startswith("http://") and settings.milvus.index_type == "HNSW"


def test_quality_shape_is_the_default_with_the_larger_model_and_its_own_check_cutoffs() -> None:
    from rag_app.llm.packaged_qwen import QWEN_15B, packaged_model

    default = load_settings(PROJECT_ROOT / "configs" / "default.yaml")
    quality = load_settings(PROJECT_ROOT / "configs" / "quality.yaml")
    assert packaged_model(quality.llm.model) is QWEN_15B
    # The verdict's scale is the model's: cutoffs placed for the 1.5B, not the 0.5B's copied over.
    assert (quality.answer.check.min_yes_zh, quality.answer.check.min_yes_en) != (
        default.answer.check.min_yes_zh, default.answer.check.min_yes_en)
    # Everything else is the embedded default (the file names only what differs).
    assert quality.retrieval == default.retrieval and quality.milvus == default.milvus
    assert quality.embedder == default.embedder and quality.answer.context_tokens == default.answer.context_tokens


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"retrieval": {"top_k": 0}}))
    with pytest.raises(ValueError, match="top_k"):
        load_settings(bad)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.yaml")


def test_relative_paths_resolve_against_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.milvus_uri == str(tmp_path / "milvus.db")
    assert settings.bm25_dir == tmp_path / "bm25"


def test_cli_ingest_then_search(tmp_path: Path, e5_model_dir: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLES, docs)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n truncated")
    data = str(tmp_path / "data")

    assert ingest_cli.main([str(docs), "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "files: 7 seen, 6 indexed" in out and "1 failed" in out
    assert "broken.pdf" in out

    assert ingest_cli.main([str(docs), "--data-dir", data, "--check"]) == 0
    out = capsys.readouterr().out
    assert "6 unchanged" in out and "chunks: 0 added" in out and "orphans removed 0" in out

    assert search_cli.main(["入职满五年的正式员工每年有几天带薪年假？", "--data-dir", data, "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. ") and "employee_handbook_zh.md" in out and "bm25=" in out

    assert search_cli.main(["How do I bake a chocolate cake?", "--data-dir", data, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["results"] == [] and payload["note"]


def test_cli_reports_a_missing_path(tmp_path: Path, e5_model_dir: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    status = ingest_cli.main([str(tmp_path / "nope"), "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert status == 1 and "no such file or folder" in out


def test_cli_calibrate_says_when_a_knowledge_base_is_too_small(
    tmp_path: Path, e5_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    note = tmp_path / "note.md"
    note.write_text("# Parking\n\nVisitors park on level two. Staff park on level three.\n", encoding="utf-8")
    data = str(tmp_path / "data")
    assert ingest_cli.main([str(note), "--data-dir", data, "--calibrate"]) == 0
    out = capsys.readouterr().out
    assert "calibration: not calibrated (1 chunks, calibration needs at least 8)" in out
    assert "fallback threshold stays in use" in out
    with pytest.raises(SystemExit):
        ingest_cli.main(["--calibrate", "--no-calibrate", "--data-dir", data])
