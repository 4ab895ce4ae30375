"""Citewise's settings: one typed, frozen object, parsed once from the environment when Django's settings load.

Django's settings module holds it as ``settings.CITEWISE`` (console/settings/base.py), so a test's
``override_settings``/``settings`` fixture swaps the whole object; nothing changes a field in place (the object is
frozen). Code reads it through ``current()``, which is typed, and passes it on to what it calls.
A value that does not parse stops the process at start-up with the variable's name, not at the first question.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_RATE = re.compile(r"(\d+)/(\d*)([smhd])")


def _env(name: str) -> Any:
    """The field reads this environment variable (several: the first set wins)."""
    return AliasChoices(name)


class SettingsError(ValueError):
    """A setting in the environment does not parse; the message names the variable."""


class CitewiseSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True, populate_by_name=True)

    # --- Search backend
    # "embedded" (SQLite FTS5 + in-process vectors) or "elasticsearch".
    search_backend: Literal["embedded", "elasticsearch"] = Field("embedded", validation_alias=_env("CITEWISE_SEARCH_BACKEND"))
    index_name: str = Field("citewise-chunks", validation_alias=_env("CITEWISE_INDEX_NAME"))
    embedded_index_dir: Path = Field(Path("var/index"), validation_alias=_env("CITEWISE_EMBEDDED_INDEX_DIR"))
    # Dense search in the embedded backend: "approximate" scores a projection of the vectors first on indexes of
    # 20,000+ chunks and rescores the best 1,000 exactly (search/backends/embedded_memory.py); "exact" scores all.
    embedded_dense_search: Literal["approximate", "exact"] = Field(
        "approximate", validation_alias=_env("CITEWISE_EMBEDDED_DENSE_SEARCH"))
    elasticsearch_url: str = Field("http://127.0.0.1:9200", validation_alias=_env("ELASTICSEARCH_URL"))
    elasticsearch_api_key: str = Field("", validation_alias=_env("ELASTICSEARCH_API_KEY"), repr=False)
    elasticsearch_timeout_s: float = Field(30.0, gt=0, validation_alias=_env("ELASTICSEARCH_TIMEOUT_S"))
    elasticsearch_shards: int = Field(1, ge=1, validation_alias=_env("ELASTICSEARCH_SHARDS"))
    elasticsearch_replicas: int = Field(0, ge=0, validation_alias=_env("ELASTICSEARCH_REPLICAS"))

    # --- Embeddings and chunking. Any sentence-transformers model name or path; the default ships in a pip package.
    embedding_model: str = Field("all-MiniLM-L6-v2", validation_alias=_env("CITEWISE_EMBEDDING_MODEL"))
    embedding_batch_size: int = Field(32, ge=1, validation_alias=_env("CITEWISE_EMBEDDING_BATCH_SIZE"))
    embedding_device: str = Field("cpu", validation_alias=_env("CITEWISE_EMBEDDING_DEVICE"))
    # What runs the model (retrieval/embeddings.py; docs/benchmarks.md, "Embedding backends"): "onnx-int8" (ONNX
    # Runtime; documents with int8 weights, ~2x torch's ingestion, vectors at cosine ~0.997 from fp32; questions and
    # the answer units closest to them with the fp32 graph, answer_rescored_units), "onnx" (ONNX Runtime, fp32:
    # torch's vectors to within rounding) or "torch" (plain PyTorch). The ONNX files are exported from the same local
    # weights on first use into model_cache_dir.
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8", validation_alias=_env("CITEWISE_EMBEDDING_BACKEND"))
    # Threads one embedding call uses; 0: one per core this process may run on.
    embedding_threads: int = Field(0, ge=0, validation_alias=_env("CITEWISE_EMBEDDING_THREADS"))
    # Where ONNX exports are kept; "": the user's cache ($XDG_CACHE_HOME or ~/.cache, then citewise/models).
    model_cache_dir: str = Field("", validation_alias=_env("CITEWISE_MODEL_CACHE_DIR"))
    chunk_max_tokens: int = Field(200, ge=8, validation_alias=_env("CITEWISE_CHUNK_MAX_TOKENS"))
    chunk_overlap_tokens: int = Field(40, ge=0, validation_alias=_env("CITEWISE_CHUNK_OVERLAP_TOKENS"))

    # --- Ingestion limits: what one file may be, and turn into, whatever its size on disk (decompression bombs).
    max_file_bytes: int = Field(25 * 1024 * 1024, ge=1, validation_alias=_env("CITEWISE_MAX_FILE_BYTES"))
    max_extracted_chars: int = Field(2_000_000, ge=1, validation_alias=_env("CITEWISE_MAX_EXTRACTED_CHARS"))
    max_chunks_per_document: int = Field(5_000, ge=1, validation_alias=_env("CITEWISE_MAX_CHUNKS_PER_DOCUMENT"))
    max_uncompressed_bytes: int = Field(64 * 1024 * 1024, ge=1, validation_alias=_env("CITEWISE_MAX_UNCOMPRESSED_BYTES"))
    max_compression_ratio: float = Field(100.0, gt=1, validation_alias=_env("CITEWISE_MAX_COMPRESSION_RATIO"))
    ingest_batch_documents: int = Field(64, ge=1, validation_alias=_env("CITEWISE_INGEST_BATCH_DOCUMENTS"))
    # One content sync per source at a time: its lease lasts this long unless renewed (it is, as the sync goes), so a
    # sync whose worker vanished on another machine blocks the source at most this long.
    sync_lease_s: int = Field(900, ge=1, validation_alias=_env("CITEWISE_SYNC_LEASE_S"))
    # Default seconds between scheduled runs of each kind of sync (a source may set its own; 0 never runs it).
    # Content is incremental where the connector has a change feed, full otherwise.
    permission_sync_interval_s: int = Field(300, ge=0, validation_alias=_env("CITEWISE_PERMISSION_SYNC_INTERVAL_S"))
    content_sync_interval_s: int = Field(3600, ge=0, validation_alias=_env("CITEWISE_CONTENT_SYNC_INTERVAL_S"))
    full_sync_interval_s: int = Field(86400, ge=0, validation_alias=_env("CITEWISE_FULL_SYNC_INTERVAL_S"))
    prune_interval_s: int = Field(3600, ge=0, validation_alias=_env("CITEWISE_PRUNE_INTERVAL_S"))
    group_sync_interval_s: int = Field(900, ge=0, validation_alias=_env("CITEWISE_GROUP_SYNC_INTERVAL_S"))
    # How often beat looks for syncs that are due (and runs left by dead workers, to resume them).
    sync_dispatch_interval_s: int = Field(60, ge=1, validation_alias=_env("CITEWISE_SYNC_DISPATCH_INTERVAL_S"))
    # The mass-deletion guard: a run may not delete more than this share of a source of at least this many
    # documents unless an admin confirms (a source emptied by an outage or a revoked permission is not pruned).
    mass_deletion_max_share: float = Field(0.5, ge=0, le=1, validation_alias=_env("CITEWISE_MASS_DELETION_MAX_SHARE"))
    mass_deletion_min_documents: int = Field(
        10, ge=1, validation_alias=_env("CITEWISE_MASS_DELETION_MIN_DOCUMENTS"))
    # Freshness (the console's dashboard, connectors.selectors.freshness): a source whose last successful content
    # sync is older than its target (Source.freshness_target_s, else this) is stale; a running run older than
    # max(stuck_run_s, 3x the source's median successful run) is stuck. Beat checks every
    # freshness_check_interval_s (0: never) and emails alert_emails (comma-separated) when a source turns stale or
    # failing.
    freshness_target_s: int = Field(86400, ge=1, validation_alias=_env("CITEWISE_FRESHNESS_TARGET_S"))
    stuck_run_s: int = Field(3600, ge=1, validation_alias=_env("CITEWISE_STUCK_RUN_S"))
    freshness_check_interval_s: int = Field(300, ge=0, validation_alias=_env("CITEWISE_FRESHNESS_CHECK_INTERVAL_S"))
    alert_emails: str = Field("", validation_alias=_env("CITEWISE_ALERT_EMAILS"))

    # --- Hybrid retrieval: weighted reciprocal rank (or linear) fusion of the BM25 and kNN legs.
    fusion: Literal["rrf", "linear"] = Field("rrf", validation_alias=_env("CITEWISE_FUSION"))
    rrf_k: int = Field(60, ge=1, validation_alias=_env("CITEWISE_RRF_K"))
    bm25_weight: float = Field(1.0, ge=0, validation_alias=_env("CITEWISE_BM25_WEIGHT"))
    dense_weight: float = Field(1.0, ge=0, validation_alias=_env("CITEWISE_DENSE_WEIGHT"))
    candidates_per_leg: int = Field(100, ge=1, validation_alias=_env("CITEWISE_CANDIDATES_PER_LEG"))
    knn_num_candidates: int = Field(200, ge=1, validation_alias=_env("CITEWISE_KNN_NUM_CANDIDATES"))

    # --- Answering: rerank the fused candidates, give the best passages to a composer, check citations.
    reranker: Literal["none", "cross-encoder", "cohere"] = Field("none", validation_alias=_env("CITEWISE_RERANKER"))
    rerank_model: str = Field("cross-encoder/ms-marco-MiniLM-L6-v2", validation_alias=_env("CITEWISE_RERANK_MODEL"))
    rerank_candidates: int = Field(50, ge=1, validation_alias=_env("CITEWISE_RERANK_CANDIDATES"))
    answer_passages: int = Field(5, ge=1, validation_alias=_env("CITEWISE_ANSWER_PASSAGES"))
    # The refusal gate: "threshold" compares the best passage unit's score with answer_threshold; "learned" (opt-in)
    # reads the question and passages through a small fitted model (answers/answerability.py; trained by
    # `manage.py train_answerability`), better on the set it was fitted on but not on held-out questions yet
    # (docs/answering.md). answerability_model names another fitted model; "" is the bundled one.
    answerability: Literal["learned", "threshold"] = Field("threshold",
                                                           validation_alias=_env("CITEWISE_ANSWERABILITY"))
    answerability_model: str = Field("", validation_alias=_env("CITEWISE_ANSWERABILITY_MODEL"))
    # The threshold gate's bar, and a part's bar in a two-part question (docs/answering.md: calibration).
    answer_threshold: float = Field(0.65, validation_alias=_env("CITEWISE_ANSWER_THRESHOLD"))
    # With int8 embeddings (embedding_backend "onnx-int8"), the passage units closest to the question (this many by
    # relevance, and as many by the composer's score) are scored again with the fp32 model before the gate and the
    # composer read them: int8 moves a cosine by ~0.01, enough to cross the bar above (answers/scoring.py). 0: never.
    answer_rescored_units: int = Field(1, ge=0, validation_alias=_env("CITEWISE_ANSWER_RESCORED_UNITS"))
    # Correct misspelt words of a question against the index's vocabulary before searching (retrieval/spelling.py).
    spell_correction: bool = Field(True, validation_alias=_env("CITEWISE_SPELL_CORRECTION"))
    composer: Literal["extractive", "cohere", "openai"] = Field("extractive", validation_alias=_env("CITEWISE_COMPOSER"))
    llm_timeout_s: float = Field(20.0, gt=0, validation_alias=_env("CITEWISE_LLM_TIMEOUT_S"))
    llm_max_retries: int = Field(2, ge=0, validation_alias=_env("CITEWISE_LLM_MAX_RETRIES"))
    llm_max_input_tokens: int = Field(6000, ge=256, validation_alias=_env("CITEWISE_LLM_MAX_INPUT_TOKENS"))
    llm_max_output_tokens: int = Field(600, ge=16, validation_alias=_env("CITEWISE_LLM_MAX_OUTPUT_TOKENS"))
    # Daily LLM budgets (answers/budget.py): past either, answers are composed without the LLM until midnight. 0: none.
    llm_daily_token_budget: int = Field(0, ge=0, validation_alias=_env("CITEWISE_LLM_DAILY_TOKEN_BUDGET"))
    llm_daily_cost_budget_usd: float = Field(0.0, ge=0, validation_alias=_env("CITEWISE_LLM_DAILY_COST_BUDGET_USD"))
    # Emails, phone numbers, card numbers, IBANs and SSNs replaced by placeholders before an LLM call leaves the
    # process, put back in the answer (answers/llm/pii.py); phone numbers without a country code read as this region's.
    pii_redaction: bool = Field(True, validation_alias=_env("CITEWISE_PII_REDACTION"))
    pii_phone_region: str = Field("US", min_length=2, max_length=2, validation_alias=_env("CITEWISE_PII_PHONE_REGION"))
    llm_usd_per_1k_input_tokens: float = Field(0.0, ge=0, validation_alias=_env("CITEWISE_LLM_USD_PER_1K_INPUT_TOKENS"))
    llm_usd_per_1k_output_tokens: float = Field(0.0, ge=0,
                                                validation_alias=_env("CITEWISE_LLM_USD_PER_1K_OUTPUT_TOKENS"))
    # Fernet keys (comma-separated, newest first) that encrypt connector credentials at rest (connectors/secrets.py):
    # the first encrypts, every one decrypts, so a key is rotated by putting a new one in front and running
    # `manage.py rotate_secrets`. Unset: no source can be given credentials.
    encryption_key: str = Field("", validation_alias=_env("CITEWISE_ENCRYPTION_KEY"), repr=False)
    cohere_api_key: str = Field("", validation_alias=_env("COHERE_API_KEY"), repr=False)
    cohere_base_url: str = Field("https://api.cohere.com", validation_alias=_env("COHERE_BASE_URL"))
    cohere_chat_model: str = Field("command-a-03-2025", validation_alias=_env("COHERE_CHAT_MODEL"))
    cohere_rerank_model: str = Field("rerank-v3.5", validation_alias=_env("COHERE_RERANK_MODEL"))
    openai_base_url: str = Field("http://127.0.0.1:11434/v1", validation_alias=_env("OPENAI_BASE_URL"))
    openai_api_key: str = Field("", validation_alias=_env("OPENAI_API_KEY"), repr=False)
    openai_model: str = Field("llama3.1:8b", validation_alias=_env("OPENAI_MODEL"))
    # Identical questions (same rewritten query, settings, principals and index version) within this many seconds are
    # answered from the cache, still recorded and audited; 0 turns the answer cache off.
    answer_cache_ttl_s: int = Field(300, ge=0, validation_alias=_env("CITEWISE_ANSWER_CACHE_TTL_S"))

    # --- Rate limits: questions per asker (a Citewise user, or an unlinked Slack/Teams user) across every surface,
    # and per Slack or Teams channel; searches per user. "N/s|m|h|d" ("5/10m": per ten minutes); "0" or "" is off.
    ask_rate_per_user: str = Field("20/m", validation_alias=_env("CITEWISE_ASK_RATE_PER_USER"))
    ask_rate_per_channel: str = Field("60/m", validation_alias=_env("CITEWISE_ASK_RATE_PER_CHANNEL"))
    search_rate_per_user: str = Field("60/m", validation_alias=_env("CITEWISE_SEARCH_RATE_PER_USER"))

    @field_validator("ask_rate_per_user", "ask_rate_per_channel", "search_rate_per_user", mode="before")
    @classmethod
    def _rate(cls, value: object) -> str:
        text = str(value).strip()
        if text in ("", "0"):
            return ""
        match = _RATE.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a rate: use e.g. 20/m (per s, m, h or d), or 0 for none")
        return "" if int(match.group(1)) == 0 else text

    @field_validator("*", mode="before")
    @classmethod
    def _empty_means_default(cls, value: object, info: Any) -> object:
        # An exported-but-empty variable (VAR=) leaves a number, path or choice at its default, as unset would.
        if value == "" and info.field_name in _DEFAULT_WHEN_EMPTY:
            return cls.model_fields[info.field_name].default
        return value

    def replace(self, **changes: Any) -> Self:
        """A validated copy with these fields changed (the object itself never changes)."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"no such Citewise setting: {', '.join(unknown)}")
        return type(self).model_validate({**self.model_dump(), **changes})


_DEFAULT_WHEN_EMPTY = frozenset(
    name for name, field in CitewiseSettings.model_fields.items() if field.annotation not in (str,)
)


def load(var_dir: Path) -> CitewiseSettings:
    """Parse the environment once (Django's settings module calls this); a bad value raises SettingsError naming it."""
    try:
        loaded = CitewiseSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"{_variable(CitewiseSettings, str(item['loc'][0]))}={item.get('input')!r}: {item['msg']}"
            for item in error.errors()
        )
        raise SettingsError(f"Invalid Citewise settings: {problems}") from None
    if "embedded_index_dir" not in loaded.model_fields_set:
        loaded = loaded.replace(embedded_index_dir=var_dir / "index")
    return loaded


def _variable(model: type[CitewiseSettings], field_name: str) -> str:
    field = model.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field_name


def current() -> CitewiseSettings:
    """The settings in force: Django's ``settings.CITEWISE`` (a test may have swapped it for a changed copy)."""
    from django.conf import settings

    value = settings.CITEWISE
    if not isinstance(value, CitewiseSettings):
        raise TypeError("settings.CITEWISE must be a core.config.CitewiseSettings (use .replace(...) to change it)")
    return value
