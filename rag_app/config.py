"""One typed settings object, loaded from a YAML file and overridden by environment variables.

Precedence (highest first): explicit keyword arguments, environment variables ``RAG_<FIELD>`` with
``__`` between nested names (``RAG_MILVUS__URI=http://milvus:19530``), the YAML file named by
``RAG_CONFIG`` (default ``configs/default.yaml``), then the defaults below.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ingest.settings import BM25Settings, ChunkerSettings, EmbedderSettings, LoaderSettings, MilvusSettings
from ingest.state.schema import DEFAULT_KB
from rag_app.llm.settings import LLMSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"
# A knowledge base's id: part of directory and Milvus collection names, so letters, digits, "_" only.
KB_ID_PATTERN = r"^[a-z0-9_]{1,40}$"


class FusionSettings(BaseModel):
    method: Literal["rrf", "weighted_sum"] = "weighted_sum"
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.0, ge=0)
    # Use the method and weights calibration chose for this knowledge base (from its own probe
    # questions) instead of the values above, once a calibration exists.
    per_knowledge_base: bool = True


class ThresholdSettings(BaseModel):
    """Cutoff on a calibrated score, never on RRF values or raw e5 cosine (whose scale has no
    stable meaning: unrelated pairs still score 0.7-0.8).

    - ``dense_margin``: the chunk's cosine minus the query's best cosine to a fixed set of generic,
      unrelated passages (``rag_app/retrieval/data/reference_passages.txt``): "how much closer than
      the nearest unrelated text". Independent of the corpus, so it means the same everywhere.
    - ``dense_z``: robust standard deviations above the query's cosines to a sample of the corpus.
    - ``rerank``: the cross-encoder's logit (needs the reranker)."""

    score: Literal["dense_margin", "dense_z", "rerank", "none"] = "dense_margin"
    min_value: float = 0.023
    # Use the knowledge base's own calibrated relevance score and cutoff (``rag_app.calibration``)
    # once one exists; ``score >= min_value`` above is the documented fallback until then, and
    # whenever the knowledge base is too small to calibrate.
    per_knowledge_base: bool = True


class RerankerSettings(BaseModel):
    enabled: bool = False
    model: str = ""  # hub id or local folder of a cross-encoder (bge-reranker, bce-reranker, ms-marco)
    max_candidates: int = Field(10, ge=1)  # bounded for CPU: 0.26-2.8 s per candidate here (BENCHMARKS.md)
    batch_size: int = Field(8, ge=1)
    max_tokens: int = Field(320, ge=16)  # query + one 256-token chunk
    timeout_s: float = Field(10.0, gt=0)  # past this, fall back to the fused order
    device: str = "cpu"
    # 1: the reranker's own order; below 1: a mix with the fused score (both standardised over the
    # reranked head), for rerankers trained on little data. rag-tune sets it for the models it trains.
    blend: float = Field(1.0, gt=0, le=1)
    use_tuned: bool = True  # let the reranker that rag-tune switched on (data_dir/tuned) replace this one


class RetrievalSettings(BaseModel):
    dense_top_k: int = Field(50, ge=1)
    bm25_top_k: int = Field(50, ge=1)
    top_k: int = Field(5, ge=1)  # results returned after fusion, threshold and reranking
    background_sample: int = Field(256, ge=16)  # corpus vectors used to calibrate dense scores
    max_query_chars: int = Field(2000, ge=10)  # longer queries are cut (absurd input)
    fusion: FusionSettings = FusionSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    reranker: RerankerSettings = RerankerSettings()


class UISettings(BaseModel):
    """The web UI and JSON API (one server, one port)."""

    host: str = "127.0.0.1"  # loopback by default: exposing the app is an explicit choice
    port: int = Field(7860, ge=0, le=65535)
    # Both empty = no login. SecretStr keeps the password out of reprs, logs and the Status tab.
    auth_user: str = ""
    auth_password: SecretStr = SecretStr("")
    max_upload_mb: int = Field(50, gt=0)  # per file
    max_request_mb: int = Field(200, gt=0)  # all files of one upload together
    max_files_per_request: int = Field(20, gt=0)
    concurrency_limit: int = Field(4, ge=1)  # chat requests served at once (queue workers)
    analytics: bool = False  # Gradio usage analytics: off, the app must run without internet

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_user and self.auth_password.get_secret_value())


class AnswerCheckSettings(BaseModel):
    """"The documents don't say": the LLM's own yes/no verdict on whether the quoted sources contain
    the answer (``rag_app.answering.answer_check``), read before it answers.

    A verdict's scale belongs to the model that gives it, so the cutoffs belong to the model too. They
    are placed on development answers (``benchmarks/place_answer_check.py``: the highest cutoff
    costing at most 2 points of accuracy and 5% of the right answers, 0 where it would refuse no
    more than it costs), never on the sets the answer quality is reported on: BENCHMARKS.md, "Answer
    quality". With the packaged 0.5B model both are 0: its verdict is too weak to refuse anything at
    an affordable cost (the verdict is still read and shown). Backends that cannot read token
    probabilities skip the check (never a refusal)."""

    enabled: bool = True
    min_yes_zh: float = Field(0.0, ge=0, le=1)  # P(是) / (P(是) + P(否)) below this: "the documents don't say"
    min_yes_en: float = Field(0.0, ge=0, le=1)  # P(Yes) / (P(Yes) + P(No)) likewise


class AnswerSettings(BaseModel):
    """How retrieved chunks become a cited answer."""

    refusal_zh: str = "抱歉，知识库中没有找到与该问题相关的内容，无法回答。"
    refusal_en: str = "Sorry, I could not find anything relevant to this question in the knowledge base."
    # Retrieval found related passages, but the answer check says they do not answer the question.
    not_in_sources_zh: str = "资料中没有这个问题的答案。下面列出的相关内容可能有帮助，但它们并没有回答这个问题。"
    not_in_sources_en: str = (
        "The documents do not answer this question. The related passages below may help, but they do not answer it."
    )
    # The model answered, but no quoted passage holds its answer's own words and numbers (no citation
    # stands and none can be inferred): it reads as sure, yet the documents do not back it.
    refuse_unsupported: bool = True
    unsupported_zh: str = "资料中找不到能支持这个回答的内容，所以不把它作为答案给出。下面列出的相关内容可能有帮助。"
    unsupported_en: str = (
        "The documents do not back the answer the model wrote, so it is not given as an answer."
        " The related passages below may help."
    )
    # The question's wording asks for a kind of value (a duration, an amount of money, a time of day, a
    # number...) and the answer gives none: a look-alike picked from the passages, so not given as the
    # answer (``rag_app.answering.answer_kind``; questions of other wordings are never judged).
    refuse_off_question: bool = True
    off_question_zh: str = (
        "模型的回答没有给出问题所问的{kind}，所以不把它作为答案给出。资料中可能没有这个信息；下面列出的相关内容可能有帮助。"
    )
    off_question_en: str = (
        "The model's answer does not give {kind}, which is what the question asks for, so it is not given as an"
        " answer. The documents may not say; the related passages below may help."
    )
    # Part of the same rule (English): the answer's figure sits in a passage line that fits the question
    # clearly less than another line holding a figure of the same kind (by at least look_alike_margin:
    # the question's words each line holds, weighted by their rarity among the passages' lines): a
    # look-alike taken from the wrong row (rag_app.answering.look_alike).
    look_alike_margin: float = Field(2.5, gt=0)
    look_alike_en: str = (
        "The figure in the model's answer comes from a passage about something else, and another line of the"
        " passages fits the question better, so it is not given as an answer. The related passages below may help."
    )
    # The model wrote its figure unsure of it: the lowest probability it gave a token of the numbers of
    # the answer's own figures (rag_app.answering.figure_confidence, read from the generation itself)
    # is below this, so the figure is as likely a look-alike as the answer; not given as the answer.
    # 0 = off. Only backends that read token probabilities measure it (ik_llama). Placed for the
    # packaged 0.5B on English development answers (BENCHMARKS.md, "Answer quality": the highest
    # cutoff that withheld at most 1% of their right answers); Chinese figures not measured: off.
    min_figure_confidence_en: float = Field(0.42, ge=0, lt=1)
    min_figure_confidence_zh: float = Field(0.0, ge=0, lt=1)
    unsure_zh: str = "模型对回答中的数字没有把握，所以不把它作为答案给出。下面列出的相关内容可能有帮助。"
    unsure_en: str = (
        "The model was unsure of the figure it wrote, so it is not given as an answer. The related passages"
        " below may help."
    )
    check: AnswerCheckSettings = AnswerCheckSettings()
    context_tokens: int = Field(700, ge=50)  # LLM tokens for the quoted sources; lowest-ranked dropped first
    # Quote a Markdown table one row per line, each cell named by its column ("Car park: Brennock;
    # Annual: £760") instead of as a grid (ingest.loaders.tables.tables_as_rows).
    table_rows: bool = True
    # Longer questions (a pasted document) are cut to their first N embedder tokens before retrieval
    # and the prompt, not refused: the cut is logged and the answer says so (question_truncated).
    # Never more than the embedder takes (512 for e5, its query prefix included).
    max_question_tokens: int = Field(256, ge=8)
    max_history_turns: int = Field(4, ge=0)  # earlier (question, answer) pairs used to rewrite follow-ups
    rewrite_followups: bool = True  # turn "and the English one?" into a standalone query before retrieval
    # How: "combined" joins the previous question and the follow-up (deterministic, no LLM call);
    # "llm_checked" asks the LLM for a rewrite and uses it only when it passes the checks of
    # rag_app.answering.followup, else joins. Measured on the follow-up set: BENCHMARKS.md, "Follow-ups".
    followup_query: Literal["combined", "llm_checked"] = "combined"
    rewrite_max_tokens: int = Field(96, gt=0)
    # When the model cites nothing (small local models often don't), attribute the answer to the
    # quoted source that contains its words and all its numbers; such citations are flagged "inferred".
    infer_citations: bool = True
    infer_min_support: float = Field(0.6, gt=0, le=1)  # share of the answer's terms found in that source

    @property
    def figure_confidence_cutoffs(self) -> dict[str, float]:
        """``min_figure_confidence_*`` by language, as the answerer and the evaluation's rules read them."""
        return {"zh": self.min_figure_confidence_zh, "en": self.min_figure_confidence_en}


class SchedulerSettings(BaseModel):
    """Periodic sync of one source folder into the index (``rag_app.scheduler.SyncScheduler``).

    Give either ``cron`` (5 fields: minute hour day-of-month month day-of-week, server local
    time, e.g. ``"*/30 * * * *"`` = every 30 minutes, ``"0 2 * * *"`` = 02:00 daily) or
    ``interval_seconds``; ``interval_seconds`` wins when both are set."""

    enabled: bool = False
    folder: str = ""  # the folder to mirror; relative paths are taken against the working directory
    cron: str = ""
    interval_seconds: int | None = Field(None, ge=1)
    run_on_start: bool = False  # also sync once right after start-up

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = " ".join(value.split())
        if value:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(
                    f"invalid cron expression {value!r} (expected 5 fields, e.g. '*/30 * * * *'): {exc}"
                ) from exc
        return value

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SchedulerSettings:
        # Fail at start-up, not silently at the first (never-coming) run.
        if self.enabled:
            if not self.folder.strip():
                raise ValueError("scheduler.enabled needs scheduler.folder")
            if not self.cron and self.interval_seconds is None:
                raise ValueError("scheduler.enabled needs scheduler.cron or scheduler.interval_seconds")
        return self


class CalibrationSettings(BaseModel):
    """Per-knowledge-base calibration of the refusal cutoff and the fusion (``rag_app.calibration``):
    probe questions made from the knowledge base's own chunks against a shipped pool of generic
    off-topic questions. No labels; no LLM unless ``probe_writer: llm``."""

    probes: int = Field(240, ge=10)  # probe questions drawn from the chunks (at most)
    # sentences: a sentence taken out of its chunk (no LLM, seconds); llm: the configured LLM
    # writes llm_probes questions (closer to fact questions in the documents' own words, seconds
    # each on a CPU; BENCHMARKS.md "Refusal on the same language" compares them).
    probe_writer: Literal["sentences", "llm"] = "sentences"
    llm_probes: int = Field(80, ge=10)
    keep: float = Field(0.95, gt=0, le=1)  # share of probe questions the cutoff must still answer
    offtopic_per_language: int = Field(600, ge=10)  # generic questions scored per language (at most)
    min_chunks: int = Field(8, ge=2)  # fewer chunks: keep the fallback threshold and say so
    min_probes: int = Field(30, ge=5)
    # Re-calibrate in the background once this share of the chunks changed since the last run.
    recalibrate_share: float = Field(0.25, gt=0, le=1)
    automatic: bool = True  # calibrate on start-up and after material changes
    # Once this many on-topic questions were asked, calibrate again with the probes weighted to
    # their style (rag_app.calibration.question_style), and again each time their number doubles,
    # up to asked_styles_kept (the latest kept, as numbers only). 0: never.
    asked_questions_min: int = Field(40, ge=0)
    asked_styles_kept: int = Field(400, ge=10)
    seed: int = 0


class TuningSettings(BaseModel):
    """``rag-tune``: generated questions, mined hard negatives, a cross-encoder trained from the
    embedder's encoder, kept only if held-out questions rank better with it."""

    sample_chunks: int = Field(400, ge=4)  # chunks to write questions for
    questions_per_chunk: int = Field(1, ge=1, le=5)
    generator: Literal["llm", "sentence"] = "llm"  # the configured LLM, or inverse-cloze sentences (no LLM)
    held_out_fraction: float = Field(0.2, gt=0, lt=1)  # of the documents, for the switch decision
    negatives: int = Field(3, ge=1)  # hard negatives per question
    skip_top: int = Field(3, ge=0)  # top ranks of each leg never used as negatives (unlabelled positives)
    mine_depth: int = Field(30, ge=2)  # negatives come from below skip_top, down to this rank
    base_model: str = ""  # encoder to start from; "" = the embedder's own model
    layers: int | None = Field(4, ge=1)  # the encoder's first N layers (None: all); fewer = faster reranking
    max_tokens: int = Field(256, ge=32)  # query + passage, in training and in the tuned reranker
    epochs: int = Field(2, ge=1)
    batch_queries: int = Field(4, ge=1)  # query groups per optimizer step
    # Higher than for fine-tuning a ready cross-encoder: the scoring head is new and reads the first
    # token, which an encoder trained with mean pooling (e5) barely uses (3e-5 left the loss at ln 4).
    learning_rate: float = Field(1e-4, gt=0)
    checkpoint_every: int = Field(50, ge=1)  # steps; a stopped run resumes from the last checkpoint
    max_minutes: float = Field(60.0, gt=0)  # question writing + training stop here and go on to the check
    merge_alpha: float = Field(1.0, gt=0, le=1)  # < 1: average the tuned encoder with the base (less forgetting)
    blends: list[float] = [0.25, 0.5, 0.75, 1.0]  # reranker weights tried on the held-out questions
    min_gain: float = Field(0.005, ge=0)  # held-out nDCG@10 gain needed to switch the new model on
    device: str = "auto"  # auto: a GPU when one is present, else the CPU
    seed: int = 0

    def training_key(self) -> dict[str, Any]:
        """What a training checkpoint depends on (resuming with other values starts afresh)."""
        return self.model_dump(include={"negatives", "base_model", "layers", "max_tokens", "epochs", "batch_queries",
                                        "learning_rate", "seed"})


class DatabaseSettings(BaseModel):
    """The state database (registry, leases): ``url`` empty = an SQLite file in the data directory
    (``registry.sqlite3``, the embedded default); ``postgresql+psycopg://user:password@host:5432/name``
    for replicas sharing one (the server shape). A URL with a password belongs in the environment
    (``RAG_DATABASE__URL``), never in a config file: SecretStr keeps it out of logs and status."""

    url: SecretStr = SecretStr("")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data")
    log_level: str = "INFO"
    embedder: EmbedderSettings = EmbedderSettings()
    loaders: LoaderSettings = LoaderSettings()
    chunker: ChunkerSettings = ChunkerSettings()
    milvus: MilvusSettings = MilvusSettings()
    bm25: BM25Settings = BM25Settings()
    database: DatabaseSettings = DatabaseSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LLMSettings = LLMSettings()
    ui: UISettings = UISettings()
    answer: AnswerSettings = AnswerSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    tuning: TuningSettings = TuningSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    # The knowledge base these settings describe: ``default`` is the data directory's own layout (what
    # a single-knowledge-base setup always had); one made in the app (``rag_app.team``) keeps its
    # stores under ``kbs/<id>/`` and in the Milvus collection ``<milvus.collection>_<id>``.
    knowledge_base: str = Field(DEFAULT_KB, pattern=KB_ID_PATTERN)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def for_knowledge_base(self, kb_id: str, scheduler: SchedulerSettings | None = None) -> Settings:
        """These settings for knowledge base ``kb_id``, with its own folder-sync schedule if given."""
        update: dict[str, Any] = {"knowledge_base": kb_id}
        if scheduler is not None:
            update["scheduler"] = scheduler
        return self.model_copy(update=update)

    # --- derived paths -------------------------------------------------------------------------
    @property
    def kb_dir(self) -> Path:
        """Where this knowledge base's own files live (BM25, uploads, tuned models)."""
        return self.data_dir if self.knowledge_base == DEFAULT_KB else self.data_dir / "kbs" / self.knowledge_base

    @property
    def milvus_settings(self) -> MilvusSettings:
        """``milvus`` with this knowledge base's collection (one collection per knowledge base:
        BENCHMARKS.md "Knowledge bases in Milvus")."""
        if self.knowledge_base == DEFAULT_KB:
            return self.milvus
        return self.milvus.model_copy(update={"collection": f"{self.milvus.collection}_{self.knowledge_base}"})

    @property
    def uploads_dir(self) -> Path:
        return self.kb_dir / "uploads"

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, relative ones taken against the data directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.data_dir / p

    @property
    def milvus_uri(self) -> str:
        uri = self.milvus.uri
        if "://" in uri:
            return uri
        return str(self.resolve(uri))

    @property
    def is_milvus_lite(self) -> bool:
        return "://" not in self.milvus.uri

    @property
    def bm25_dir(self) -> Path:
        return self.kb_dir / "bm25"

    @property
    def registry_path(self) -> Path:
        """The SQLite state database of the embedded default (unused when ``database.url`` is set)."""
        return self.data_dir / "registry.sqlite3"

    @property
    def database_url(self) -> str:
        url = self.database.url.get_secret_value()
        return url or f"sqlite:///{self.registry_path.resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def embedder_cache_dir(self) -> Path:
        """Where the packaged embedder is rebuilt: ``embedder.cache_dir``, else ``<data_dir>/models``."""
        cache = self.embedder.cache_dir
        return self.resolve(cache) if cache else self.models_dir

    @property
    def calibration_path(self) -> Path:
        """This knowledge base's calibrated cutoff and fusion (``rag_app.calibration``)."""
        return self.kb_dir / "calibration.json"


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by RAG_CONFIG (or configs/default.yaml)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = Path(os.environ.get("RAG_CONFIG", DEFAULT_CONFIG))
        self._data: dict[str, Any] = {}
        if path.is_file():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: expected a mapping at the top level")
            self._data = loaded
        elif "RAG_CONFIG" in os.environ:
            raise FileNotFoundError(f"RAG_CONFIG points to a missing file: {path}")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if v is not None}


def load_settings(config_path: str | Path | None = None, env_prefix: str = "RAG_", **overrides: Any) -> Settings:
    """Settings from ``config_path`` (or RAG_CONFIG, or the default file) plus env and overrides.
    ``env_prefix``: the environment variables read (another prefix than ``RAG_`` keeps this process's
    own settings out, e.g. ``RAG_OLD_`` for the knowledge base a migration reads from)."""
    if env_prefix != "RAG_":
        overrides["_env_prefix"] = env_prefix
    if config_path is not None:
        old = os.environ.get("RAG_CONFIG")
        os.environ["RAG_CONFIG"] = str(config_path)
        try:
            return Settings(**overrides)
        finally:
            if old is None:
                os.environ.pop("RAG_CONFIG", None)
            else:
                os.environ["RAG_CONFIG"] = old
    return Settings(**overrides)
