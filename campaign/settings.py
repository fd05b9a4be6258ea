"""Campaign settings (env, prefix HUASHU_), read when asked for, never at import time."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CampaignSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUASHU_", extra="ignore")

    broker_url: str = ""  # redis://… | amqp://… ; empty: in-process broker (huashu serve)
    redis_url: str = ""  # the rate limiters' backend (empty: limits per process)
    redis_prefix: str = "huashu:"
    worker_threads: int = Field(default=4, ge=1, le=64)
    campaign_tick_s: float = Field(default=2.0, gt=0)
    campaign_embedded: bool = False  # `huashu serve` turns it on: the runner in-process without a broker
    campaign_resend_s: float = Field(default=60, gt=0)  # re-enqueue a due touch whose message got lost
    campaign_lease_s: float = Field(default=300, gt=0)  # a claimed touch's lease (a dead worker's expires)
    campaign_result_timeout_s: float = Field(default=1800, gt=0)  # a placed call without a result fails no_result
    gateway_secret: str = ""  # signs originate webhooks (first of the comma-separated list)
    public_base_url: str = "http://127.0.0.1:8000"
    call_gateway: str = ""  # "" (no calls) | webhook | jambonz
    originate_url: str = ""  # webhook gateway: where originate requests go
    jambonz_api_url: str = ""
    jambonz_account_sid: str = ""
    jambonz_api_key: str = ""
    jambonz_application_sid: str = ""
    caller_id: str = ""
    trunk: str = ""
    sms_webhook_url: str = ""
    wecom_webhook_url: str = ""
    provider_include_phone: bool = False  # message providers get unmasked phones (opt-in)

    @property
    def signing_secret(self) -> str:
        return next((s.strip() for s in self.gateway_secret.split(",") if s.strip()), "")
