"""rag-admin (users, knowledge bases, members, tokens) and ``--kb`` on the other commands, in process
over real components (e5, Milvus Lite, BM25, SQLite state)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rag_app.cli import admin as admin_cli
from rag_app.cli import ingest as ingest_cli
from rag_app.cli import search as search_cli
from rag_app.config import load_settings
from rag_app.service.workspace import Workspace
from tests.support.paths import SAMPLES

ZH_Q = "入职满五年的正式员工每年有几天带薪年假？"


def test_admin_commands_and_kb_option(tmp_path: Path, e5_model_dir: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_EMBEDDER__CACHE_DIR", str(e5_model_dir.parent))
    data = ["--data-dir", str(tmp_path / "data")]

    monkeypatch.setattr("sys.stdin", io.StringIO("first admin pw\n"))
    assert admin_cli.main([*data, "create-user", "root", "--admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert admin_cli.main([*data, "create-user", "eve", "--password-stdin"]) == 1
    assert "at least 8" in capsys.readouterr().err
    assert admin_cli.main([*data, "create-kb", "HR", "--description", "policies"]) == 0
    assert "created knowledge base HR (kb" in capsys.readouterr().out
    assert admin_cli.main([*data, "kbs"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["Default", "HR"]
    hr = listed[1].split("\t")[0]

    # Indexing and searching one knowledge base by name; the default one stays empty.
    assert ingest_cli.main([str(SAMPLES / "employee_handbook_zh.md"), *data, "--kb", "HR", "--no-calibrate"]) == 0
    assert "1 indexed" in capsys.readouterr().out
    assert (tmp_path / "data" / "kbs" / hr / "bm25").is_dir()
    assert search_cli.main([ZH_Q, *data, "--kb", "HR", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["results"]
    assert found and found[0]["file"] == "employee_handbook_zh.md"
    assert search_cli.main([ZH_Q, *data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == []
    with pytest.raises(SystemExit, match="no knowledge base 'Payroll'; there are: Default"):
        search_cli.main([ZH_Q, *data, "--kb", "Payroll"])

    assert admin_cli.main([*data, "member", "HR", "root", "owner"]) == 0
    assert admin_cli.main([*data, "member", "HR", "nobody", "reader"]) == 1
    assert admin_cli.main([*data, "users"]) == 0
    assert f"root (admin) · {hr}: owner" in capsys.readouterr().out
    assert admin_cli.main([*data, "token", "root"]) == 0
    token = capsys.readouterr().out.strip()
    workspace = Workspace.open(load_settings(data_dir=tmp_path / "data"), background=False)
    try:
        assert workspace.accounts_enabled and workspace.anonymous() is None
        principal = workspace.token_login(token)
        assert principal is not None and principal.name == "root"
        assert [e.action for e in workspace.audit_entries(principal, hr)] == ["member.set", "kb.create"]
    finally:
        workspace.close()

    assert admin_cli.main([*data, "delete-kb", "HR"]) == 1  # not without --yes
    assert admin_cli.main([*data, "delete-kb", "HR", "--yes"]) == 0
    assert "deleted knowledge base HR" in capsys.readouterr().out
    assert not (tmp_path / "data" / "kbs" / hr).exists()
    assert admin_cli.main([*data, "kbs"]) == 0
    assert [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()] == ["Default"]
