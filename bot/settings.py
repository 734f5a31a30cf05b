"""Settings of one qianmian process, read from the environment (and `.env` when present).

Every variable of the runtime contract is here; `.env.example` lists them all. Secrets come only
from the environment: nothing in the repository carries a real one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


@dataclass(frozen=True)
class OfficialAccount:
    """One configured WeChat official account (公众号)."""

    app_id: str
    app_secret: str
    token: str
    aes_key: str | None  # None: plain mode only


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field("sqlite:///qianmian.db", alias="DATABASE_URL")
    tz: str = Field("Asia/Shanghai", alias="QIANMIAN_TZ")

    wecom_corp_id: str | None = Field(None, alias="WECOM_CORP_ID")
    wecom_agent_id: str | None = Field(None, alias="WECOM_AGENT_ID")
    wecom_secret: str | None = Field(None, alias="WECOM_SECRET")
    wecom_token: str | None = Field(None, alias="WECOM_TOKEN")
    wecom_aes_key: str | None = Field(None, alias="WECOM_AES_KEY")

    # The first official account; more accounts via WECHAT_ACCOUNTS (see README).
    wechat_app_id: str | None = Field(None, alias="WECHAT_APP_ID")
    wechat_app_secret: str | None = Field(None, alias="WECHAT_APP_SECRET")
    wechat_token: str | None = Field(None, alias="WECHAT_TOKEN")
    wechat_aes_key: str | None = Field(None, alias="WECHAT_AES_KEY")
    # Further accounts: "appid:secret:token:aeskey;appid2:secret2:token2:" (empty aeskey = plain).
    wechat_accounts: Annotated[list[OfficialAccount], NoDecode] = Field(
        default_factory=list, alias="WECHAT_ACCOUNTS"
    )

    wecom_api_base: str = Field("https://qyapi.weixin.qq.com", alias="WECOM_API_BASE")
    wechat_api_base: str = Field("https://api.weixin.qq.com", alias="WECHAT_API_BASE")
    # Where official-account QR pictures are fetched (showqrcode); unset: https://mp.weixin.qq.com
    # when WECHAT_API_BASE is Tencent's, else WECHAT_API_BASE (a simulator or proxy serves both).
    wechat_mp_base: str | None = Field(None, alias="WECHAT_MP_BASE")

    public_url: str = Field("http://127.0.0.1:8080", alias="QIANMIAN_PUBLIC_URL")
    secret_key: str | None = Field(None, alias="QIANMIAN_SECRET_KEY")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8080, alias="PORT")

    # Identifiers that must never link anyone (data.md §3 "the configuration's blocklist"):
    # "phone:13800000000,unionid:oXXXX".
    identity_blocklist: Annotated[list[tuple[str, str]], NoDecode] = Field(
        default_factory=list, alias="QIANMIAN_IDENTITY_BLOCKLIST"
    )
    # How far a callback's timestamp may be from our clock (runtime.md: 5 minutes).
    callback_max_skew_seconds: int = Field(300, alias="QIANMIAN_CALLBACK_MAX_SKEW")
    # Timeouts and retries for Tencent API calls.
    api_timeout_seconds: float = Field(5.0, alias="QIANMIAN_API_TIMEOUT")
    api_max_retries: int = Field(3, alias="QIANMIAN_API_MAX_RETRIES")
    log_level: str = Field("INFO", alias="QIANMIAN_LOG_LEVEL")
    # Log every SQL statement slower than this many milliseconds (unset: none), to find what a
    # slow callback or page is waiting for.
    slow_sql_ms: float | None = Field(None, gt=0, alias="QIANMIAN_SLOW_SQL_MS")
    # The nightly full tag refresh (HH:MM business time; "off" disables it). A process that
    # starts after that time and finds today's refresh not done does it then.
    tags_refresh_at: str = Field("03:00", alias="QIANMIAN_TAGS_REFRESH_AT", pattern=r"^(off|([01]\d|2[0-3]):[0-5]\d)$")
    # WeCom corp tags: how often the outbox is looked at, and at most how many calls a second.
    corp_tags_interval_seconds: float = Field(5.0, gt=0, alias="QIANMIAN_CORP_TAGS_INTERVAL")
    corp_tags_per_second: float = Field(20.0, gt=0, alias="QIANMIAN_CORP_TAGS_RATE")
    # Portrait links (GET /p/{token}): how long a link sent to a guide stays valid.
    portrait_link_hours: float = Field(24.0, gt=0, alias="QIANMIAN_PORTRAIT_LINK_HOURS")
    # Coupon claim links (GET /c/{token}) in campaign messages: days a link stays valid from the
    # time its message is sent.
    claim_link_days: int = Field(7, ge=1, alias="QIANMIAN_CLAIM_LINK_DAYS")
    # WeCom OAuth2 on portrait pages: when on, the page asks WeCom who is opening it and refuses
    # anyone but the guide the link was sent to. Needs a trusted domain set up for the app.
    wecom_oauth: bool = Field(False, alias="QIANMIAN_WECOM_OAUTH")
    wecom_oauth_base: str = Field("https://open.weixin.qq.com", alias="WECOM_OAUTH_BASE")
    # Where QR code pictures are saved.
    media_dir: str = Field("qianmian-media", alias="QIANMIAN_MEDIA_DIR")
    # The outbox (portrait cards, welcomes, pictures): how often it is looked at for retries.
    outbox_interval_seconds: float = Field(2.0, gt=0, alias="QIANMIAN_OUTBOX_INTERVAL")
    # Chat commands: how long a preview waits for "确认" before it lapses; after how many seconds
    # of work a command first answers "正在圈选…".
    confirm_minutes: float = Field(10.0, gt=0, alias="QIANMIAN_CONFIRM_MINUTES")
    working_notice_seconds: float = Field(1.0, ge=0, alias="QIANMIAN_WORKING_NOTICE_SECONDS")
    # `qianmian serve`: how many worker processes process callbacks and send the outbox beside
    # the HTTP edge (0: the one process does everything; unset: 1 on PostgreSQL, 0 on SQLite,
    # whose single write lock is shared better within one process than across processes); how
    # often an idle worker looks for new callbacks; how much lower a worker's CPU priority is
    # than the edge's (nice increment), so answering Tencent comes first when both want the CPU.
    serve_workers: int | None = Field(None, ge=0, le=64, alias="QIANMIAN_SERVE_WORKERS")
    worker_poll_seconds: float = Field(0.02, gt=0, alias="QIANMIAN_WORKER_POLL")
    worker_nice: int = Field(19, ge=0, le=19, alias="QIANMIAN_WORKER_NICE")
    # HTTP edge processes sharing the port (SO_REUSEPORT); unset: one per core (at most 4) on
    # PostgreSQL, 1 on SQLite. More than one needs worker processes (the edges process nothing).
    serve_edges: int | None = Field(None, ge=1, le=64, alias="QIANMIAN_SERVE_EDGES")
    # A process of its own for sending (portraits, welcomes, campaigns, scheduled jobs) when
    # `serve` runs no worker processes; unset: yes on SQLite (the one process would otherwise
    # answer, process and send on one core), no on PostgreSQL (its workers send).
    serve_sender: bool | None = Field(None, alias="QIANMIAN_SERVE_SENDER")
    # Campaigns and journeys (issue 6): at most CAP_MESSAGES marketing messages per person within
    # any CAP_DAYS days, across all campaigns and journeys; no sends in the quiet hours (local
    # time, "HH:MM-HH:MM", start included, end excluded; a send inside them waits for the end).
    cap_messages: int = Field(2, ge=0, alias="QIANMIAN_CAP_MESSAGES")
    cap_days: int = Field(7, ge=1, alias="QIANMIAN_CAP_DAYS")
    quiet_hours: str = Field(
        "21:00-09:00", alias="QIANMIAN_QUIET_HOURS", pattern=r"^(off|([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d)$"
    )

    # The campaign sender (campaigns/dispatch.py): the OA template marketing messages use; rows
    # claimed per round; lease of a claim (s); per-row calls in flight; seconds between looks when
    # nothing is due; tries on -1 / network errors; how long a channel pauses after 45009 (s);
    # how often WeCom mass-send results are fetched (s). SMS: the gateway (empty: no SMS channel).
    campaign_oa_template_id: str = Field("", alias="QIANMIAN_CAMPAIGN_OA_TEMPLATE_ID")
    campaign_claim_batch: int = Field(5000, ge=1, alias="QIANMIAN_CAMPAIGN_CLAIM_BATCH")
    campaign_lease_seconds: float = Field(60.0, gt=0, alias="QIANMIAN_CAMPAIGN_LEASE_SECONDS")
    campaign_concurrency: int = Field(16, ge=1, alias="QIANMIAN_CAMPAIGN_CONCURRENCY")
    campaign_interval: float = Field(5.0, gt=0, alias="QIANMIAN_CAMPAIGN_INTERVAL")
    campaign_max_attempts: int = Field(3, ge=1, alias="QIANMIAN_CAMPAIGN_MAX_ATTEMPTS")
    campaign_channel_backoff: float = Field(30.0, gt=0, alias="QIANMIAN_CAMPAIGN_CHANNEL_BACKOFF")
    campaign_result_check_seconds: float = Field(300.0, gt=0, alias="QIANMIAN_CAMPAIGN_RESULT_CHECK_SECONDS")
    sms_base: str = Field("", alias="QIANMIAN_SMS_BASE")
    # Journeys (campaigns/journeys.py): how often who entered one is looked for (s); an add-to-cart
    # reminded after this many hours without buying the item; coupons reminded this many days before
    # they expire; a dormant customer woken at most once per this many days; the welcome's 新人券.
    journey_interval_seconds: float = Field(300.0, gt=0, alias="QIANMIAN_JOURNEY_INTERVAL")
    journey_cart_hours: float = Field(24.0, gt=0, alias="QIANMIAN_JOURNEY_CART_HOURS")
    journey_coupon_days: int = Field(3, ge=1, alias="QIANMIAN_JOURNEY_COUPON_DAYS")
    journey_dormant_days: int = Field(90, ge=1, alias="QIANMIAN_JOURNEY_DORMANT_DAYS")
    journey_welcome_card_id: str = Field("", alias="QIANMIAN_JOURNEY_WELCOME_CARD_ID")

    def today(self) -> date:
        """T by default: today in the business time zone."""
        return datetime.now(ZoneInfo(self.tz)).date()

    @field_validator("serve_workers", "serve_edges", "serve_sender", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("wechat_accounts", mode="before")
    @classmethod
    def _parse_accounts(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        accounts = []
        for chunk in filter(None, (c.strip() for c in value.split(";"))):
            parts = chunk.split(":")
            if len(parts) != 4:
                raise ValueError("WECHAT_ACCOUNTS: each account is appid:secret:token:aeskey")
            app_id, secret, token, aes = parts
            accounts.append(OfficialAccount(app_id, secret, token, aes or None))
        return accounts

    @field_validator("identity_blocklist", mode="before")
    @classmethod
    def _parse_blocklist(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = []
        for chunk in filter(None, (c.strip() for c in value.split(","))):
            kind, sep, ident = chunk.partition(":")
            if not sep or not ident:
                raise ValueError("QIANMIAN_IDENTITY_BLOCKLIST: each entry is kind:value")
            pairs.append((kind.strip(), ident.strip()))
        return pairs

    def official_accounts(self) -> dict[str, OfficialAccount]:
        """Every configured official account by appid."""
        accounts: dict[str, OfficialAccount] = {}
        if self.wechat_app_id and self.wechat_token:
            accounts[self.wechat_app_id] = OfficialAccount(
                self.wechat_app_id, self.wechat_app_secret or "", self.wechat_token, self.wechat_aes_key
            )
        for account in self.wechat_accounts:
            accounts[account.app_id] = account
        return accounts

    def workers_for_serve(self) -> int:
        """QIANMIAN_SERVE_WORKERS, or when unset: 1 on PostgreSQL, 0 (one process) on SQLite."""
        if self.serve_workers is not None:
            return self.serve_workers
        return 0 if self.database_url.startswith("sqlite") else 1

    def sender_for_serve(self) -> bool:
        """QIANMIAN_SERVE_SENDER, or when unset: on SQLite. Only without worker processes (they
        send themselves)."""
        if self.workers_for_serve() > 0:
            return False
        if self.serve_sender is not None:
            return self.serve_sender
        return self.database_url.startswith("sqlite")

    def edges_for_serve(self) -> int:
        """QIANMIAN_SERVE_EDGES, or when unset: one per core (at most 4) on PostgreSQL, 1 on SQLite
        (several edges there queue at the one write lock: measured no faster)."""
        if self.serve_edges is not None:
            return self.serve_edges
        return 1 if self.database_url.startswith("sqlite") else max(1, min(os.cpu_count() or 1, 4))

    def missing_for_serve(self) -> list[str]:
        """Names of the variables `serve` cannot start without (runtime.md)."""
        required = {
            "WECOM_CORP_ID": self.wecom_corp_id,
            "WECOM_AGENT_ID": self.wecom_agent_id,
            "WECOM_SECRET": self.wecom_secret,
            "WECOM_TOKEN": self.wecom_token,
            "WECOM_AES_KEY": self.wecom_aes_key,
            "QIANMIAN_SECRET_KEY": self.secret_key,
        }
        return [name for name, value in required.items() if not value]
