"""Settings from the environment (prefix HUASHU_), read when asked for, never at import time."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(user_data_dir("huashu", appauthor=False))


class Settings(BaseSettings):
    """All runtime configuration. Names match ../shared/CONTRACT.md (HUASHU_*)."""

    model_config = SettingsConfigDict(env_prefix="HUASHU_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    cache_dir: Path = Field(default_factory=lambda: Path(user_cache_dir("huashu", appauthor=False)))
    database_url: str = ""  # empty: SQLite file under data_dir
    redis_url: str = ""  # empty: in-process sessions
    gateway_secret: str = ""  # comma-separated: the first signs, all verify (rotation)
    agent_keys: str = ""  # comma-separated bearer keys for /v1/wecom and the sidebar
    admin_key: str = ""  # API key for admin endpoints (track reload)
    calling_window: str = "09:00-21:00"
    timezone: str = "Asia/Shanghai"
    max_calls_per_day: int = 1
    max_calls_per_week: int = 3
    phone_key: str = ""  # store: phone hash/encryption secret; empty: key file under data_dir
    database_timeout_s: float = 5.0  # store: connect / lock wait before the outbox takes over
    sms_webhook_url: str = ""  # store: campaign SMS provider webhook
    wecom_webhook_url: str = ""  # store: campaign WeCom provider webhook
    wecom_token: str = ""  # wecom: callback Token (msg_signature); empty: callback disabled (503)
    wecom_aes_key: str = ""  # wecom: callback EncodingAESKey (43 chars)
    wecom_corp_id: str = ""  # wecom: receive id checked in every decrypted message (corpid / suite id)
    wecom_max_skew_s: int = 300  # wecom: callbacks with |now - timestamp| above this are rejected
    wecom_agent_id: str = ""  # wecom: the sidebar app's AgentId (JS-SDK agentConfig)
    wecom_secret: str = ""  # wecom: the sidebar app's Secret (access_token → agent_config jsapi_ticket)
    wecom_api_base: str = "https://qyapi.weixin.qq.com"  # wecom: server API base (tests: a local stand-in)
    vosk_model: str = ""
    whisper_model: str = ""
    asr_backend: str = "whisper"  # vosk | whisper | text
    asr_hangover_ms: int = 300  # non-speech that ends an utterance (VAD endpointing)
    asr_vad_threshold: float = 0.5  # Silero speech probability that counts as speech
    # 1 × 2 over 2 × 1: one thread per decode costs less CPU (the beam search's small matrix
    # products do not split well) and two decodes overlap; bench/asr_batch.py, 20 calls.
    asr_threads: int = 1  # CPU threads per Whisper decode
    asr_workers: int = 2  # concurrent Whisper decodes per process
    # Whisper: decode up to this many utterances that end together as one batch (1: one at a
    # time). Same results as one at a time, less CPU per utterance under load (bench/asr_batch.py)
    asr_max_batch: int = 8
    nlu_model_dir: str = ""  # empty: <data_dir>/nlu-model
    nlu_threads: int = 1  # server: torch intra-op threads per process (parallelism = batching + workers)
    scripts_dir: str = ""  # empty: the scripts_zh shipped with the package
    public_base_url: str = "http://127.0.0.1:8000"
    callback_budget_ms: int = 1500
    max_body_bytes: int = 2_000_000
    session_ttl_s: int = 7200  # server: call state, locks' owner record and idempotency cache TTL
    lock_ttl_ms: int = 10_000  # server: per-call lock lease (a killed worker's lock expires)
    worker_heartbeat_ms: int = 3000  # server (Redis): a worker silent this long is dead; its locks are taken over
    outbox_drain_interval_ms: int = 1000  # server: how often queued store writes are retried
    failpoint: str = ""  # tests only: stop/delay opt-out turns at a point (server.failpoints)
    redis_prefix: str = "huashu:"  # server: key prefix in Redis (tests use a unique one)
    jambonz_secret: str = ""  # server: jambonz webhook secret (Jambonz-Signature); empty: unchecked
    # server: our recogniser as a jambonz custom speech vendor (WS /stt/jambonz). The api key the
    # vendor is given in the jambonz portal (Authorization: Bearer); the vendor name `gather`
    # should use (e.g. "custom:huashu"; empty: jambonz's own default recogniser).
    jambonz_stt_key: str = ""
    jambonz_stt_vendor: str = ""
    filler_clip: str = "filler"  # server: persona clip played when a turn misses the budget
    otel: bool = False  # server: FastAPI's OpenTelemetry spans/metrics (needs a configured provider)
    insecure_dev: bool = False  # server: open the areas whose secret/keys are unset (local demo only)

    @field_validator("calling_window")
    @classmethod
    def _window(cls, v: str) -> str:
        try:
            start, end = v.split("-")
            for part in (start, end):
                hh, mm = part.split(":")
                if not (0 <= int(hh) <= 24 and 0 <= int(mm) < 60):
                    raise ValueError
        except ValueError:
            raise ValueError(f"HUASHU_CALLING_WINDOW must look like 09:00-21:00, got {v!r}") from None
        return v

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "huashu.sqlite3"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def effective_nlu_model_dir(self) -> Path:
        return Path(self.nlu_model_dir) if self.nlu_model_dir else self.data_dir / "nlu-model"

    @property
    def effective_scripts_dir(self) -> Path:
        if self.scripts_dir:
            return Path(self.scripts_dir)
        import scripts_zh

        return Path(scripts_zh.__file__).parent

    @property
    def gateway_secrets(self) -> list[str]:
        return [s.strip() for s in self.gateway_secret.split(",") if s.strip()]

    @property
    def agent_key_list(self) -> list[str]:
        return [s.strip() for s in self.agent_keys.split(",") if s.strip()]

    @property
    def missing_credentials(self) -> list[str]:
        """The server's credential settings that are unset (empty: secure as configured)."""
        missing = [] if self.gateway_secrets else ["HUASHU_GATEWAY_SECRET"]
        return missing + ([] if self.agent_key_list else ["HUASHU_AGENT_KEYS"])


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (tests build their own `Settings(...)` instead)."""
    return Settings()
