"""The scale-out shape: docker-compose.yml, the proxy config and the Dockerfile checked statically
(no Docker engine here), and the app's server config. The shape itself runs for real, without
Docker, in tests/deploy/test_replicas.py (PostgreSQL, a Milvus server, identical app replicas)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from ingest.stores import bm25_index as bm25_mod
from ingest.stores.bm25_index import BM25ConflictError, BM25Index
from rag_app.config import PROJECT_ROOT, load_settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
LONG_RUNNING = ("etcd", "minio", "milvus", "postgres", "llm", "app", "proxy")
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's variable substitution with nothing set in the environment (defaults apply)."""
    return _VAR.sub(lambda m: m.group("default") or "", value).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_has_the_services_with_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(LONG_RUNNING) <= set(services)
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert services[name].get("restart") == "unless-stopped", name
    # the one-shot model pull is the only service without a health check, and it does not restart
    assert services["llm-pull"].get("restart") == "no"


def test_compose_state_lives_in_declared_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name in ("etcd", "minio", "milvus", "postgres", "llm"):
        mounts = compose["services"][name].get("volumes") or []
        named = [m.split(":", 1)[0] for m in mounts if not m.startswith((".", "/"))]
        assert named, f"{name} keeps its state in no named volume"
        assert set(named) <= declared, f"{name} mounts undeclared volumes {set(named) - declared}"
    # No volume shared between app replicas: /data is each replica's own (an anonymous volume);
    # shared state lives in PostgreSQL and Milvus.
    assert compose["services"]["app"]["volumes"] == ["/data"]
    assert "app-query" not in compose["services"] and "app-data" not in declared


def test_compose_start_order_waits_for_health(compose: dict[str, Any]) -> None:
    s = compose["services"]

    def healthy_deps(name: str) -> set[str]:
        deps = s[name].get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        return {d for d, cond in deps.items() if cond.get("condition") == "service_healthy"}

    assert healthy_deps("milvus") == {"etcd", "minio"}
    assert {"milvus", "postgres", "llm"} <= healthy_deps("app")
    assert healthy_deps("proxy") == {"app"}
    assert healthy_deps("llm-pull") == {"llm"}


def test_replicas_are_identical_and_reached_through_one_port(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert s["app"]["deploy"]["replicas"] >= 2 and "ports" not in s["app"]  # only the proxy publishes
    assert s["proxy"]["ports"] == ["7860:7860"]
    (mount,) = s["proxy"]["volumes"]
    conf = (PROJECT_ROOT / mount.split(":")[0]).read_text(encoding="utf-8")
    assert re.search(r"upstream app_replicas \{[^}]*ip_hash;[^}]*server app:7860;", conf)
    assert "proxy_pass http://app_replicas;" in conf and "proxy_buffering off;" in conf
    assert "listen 7860;" in conf


def test_app_config_file_exists_in_the_image_and_points_at_the_compose_services(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = compose["services"]
    for app in ("app",):
        env = {k: interpolate(v) for k, v in env_of(s[app]).items()}
        path = env["RAG_CONFIG"]
        assert path.startswith("/app/configs/"), path
        local = PROJECT_ROOT / "configs" / path.removeprefix("/app/configs/")
        assert local.is_file(), f"{path} is not in configs/"

        for key in [k for k in os.environ if k.startswith("RAG_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("RAG_") and key != "RAG_CONFIG":
                monkeypatch.setenv(key, value)
        settings = load_settings(local)

        # Milvus: the compose service, its gRPC port published by the milvus service
        uri = re.fullmatch(r"http://(?P<host>[\w-]+):(?P<port>\d+)", settings.milvus_uri)
        assert uri and not settings.is_milvus_lite, settings.milvus_uri
        assert uri["host"] == "milvus" and f"{uri['port']}:{uri['port']}" in s["milvus"]["ports"]
        assert settings.milvus.index_type in {"HNSW", "IVF_FLAT", "FLAT", "AUTOINDEX"}

        # LLM: the OpenAI-compatible endpoint of the llm service, and the model llm-pull fetches
        assert settings.llm.backend == "openai"
        base = re.fullmatch(r"http://(?P<host>[\w-]+):(?P<port>\d+)/v1", settings.llm.base_url)
        assert base and base["host"] == "llm", settings.llm.base_url
        assert any(p.split(":")[-1] == base["port"] for p in s["llm"]["ports"])
        pulled = interpolate(s["llm-pull"]["entrypoint"][-1])
        assert settings.llm.openai_model == pulled == "qwen2.5:7b-instruct"
        assert interpolate(s["llm-pull"]["environment"]["OLLAMA_HOST"]) == f"http://llm:{base['port']}"

        # state: the postgres service's database; keywords: Milvus full-text search
        db = re.fullmatch(r"postgresql\+psycopg://rag:(?P<pw>[^@]*)@postgres:5432/rag", settings.database_url)
        assert db and db["pw"] == interpolate(s["postgres"]["environment"]["POSTGRES_PASSWORD"]), settings.database_url
        assert settings.bm25.backend == "milvus"

        # the container serves on the port the proxy forwards to, on all interfaces
        assert settings.ui.host == "0.0.0.0"
        assert s[app]["expose"] == ["7860"]
        assert "localhost:7860/api/health" in " ".join(s[app]["healthcheck"]["test"])
        assert str(settings.data_dir) == "/data"


def test_no_secret_is_hard_coded(compose: dict[str, Any]) -> None:
    secretish = re.compile(r"KEY|TOKEN|PASSWORD|SECRET", re.I)
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if secretish.search(key):
                assert _VAR.fullmatch(value), f"{name}.{key} must be a ${{VAR:-default}} reference, not {value!r}"
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "milvus-server.yaml").read_text(encoding="utf-8"))
    assert not raw["milvus"].get("token") and not raw["llm"].get("api_key")
    assert "auth_password" not in raw.get("ui", {})


def test_dockerfile_copies_what_the_app_needs() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    copies = {m.split()[0] for m in re.findall(r"^COPY\s+(.+)$", text, re.M)}
    copies |= {w for line in re.findall(r"^COPY\s+(.+)$", text, re.M) for w in line.split()[:-1]}
    # the packages pyproject installs, the files it reads, and the configs the compose file names
    for needed in ("pyproject.toml", "README.md", "ingest", "rag_app", "configs"):
        assert needed in copies, f"Dockerfile does not copy {needed}"
    assert re.search(r"^WORKDIR /app$", text, re.M)
    assert re.search(r'^CMD \["rag-app", "--host", "0.0.0.0", "--port", "7860"\]$', text, re.M)
    # data files inside the packages travel with them (reference passages of the threshold)
    assert (PROJECT_ROOT / "rag_app" / "retrieval" / "data" / "reference_passages.txt").is_file()


# ---------------------------------------------------------------------------- shared BM25 index


def test_query_replica_follows_the_writers_bm25_saves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm25_mod, "FOLLOW_INTERVAL_S", 0.0)
    d = tmp_path / "bm25"
    writer = BM25Index(d)
    writer.add(["a1", "a2"], [["alpha", "beta"], ["gamma"]])
    writer.save()
    reader = BM25Index(d)
    assert [c for c, _ in reader.search(["alpha"], 5)] == ["a1"]

    writer.add(["b1"], [["delta", "alpha", "alpha"]])
    writer.delete(["a1"])
    assert [c for c, _ in reader.search(["delta"], 5)] == []  # not saved yet: nothing to see
    writer.save()
    assert [c for c, _ in reader.search(["alpha"], 5)] == ["b1"]  # reloaded, delete included
    assert len(reader) == 2 and reader.ids() == writer.ids()
    np.testing.assert_array_equal(reader.get_scores(["alpha"], ["b1", "a2"]), writer.get_scores(["alpha"], ["b1", "a2"]))
    reader.close()  # a clean reader's close writes nothing
    writer.add(["c1"], [["epsilon"]])
    writer.close()  # ...so the writer's generation is still the one on disk
    assert BM25Index(d).ids() == {"a2", "b1", "c1"}


def test_second_writer_is_refused_instead_of_overwriting(tmp_path: Path) -> None:
    d = tmp_path / "bm25"
    writer = BM25Index(d)
    writer.add(["a1"], [["alpha"]])
    writer.save()
    stray = BM25Index(d)  # e.g. an upload sent to a query replica
    writer.add(["a2"], [["beta"]])
    writer.save()
    stray.add(["x1"], [["gamma"]])
    with pytest.raises(BM25ConflictError, match="only one process may write"):
        stray.save()
    assert BM25Index(d).ids() == {"a1", "a2"}  # the writer's index is intact


@pytest.mark.integration  # opens Milvus Lite
def test_server_only_index_type_on_milvus_lite_is_a_clear_error(tmp_path: Path) -> None:
    from ingest.settings import MilvusSettings
    from ingest.stores.milvus_store import MilvusVectorStore, VectorStoreError

    store = MilvusVectorStore(MilvusSettings(index_type="HNSW"), str(tmp_path / "milvus.db"), 8)
    with pytest.raises(VectorStoreError, match="supports the index types AUTOINDEX, FLAT, IVF_FLAT, not HNSW"):
        store.warm_up()
    store.close()
