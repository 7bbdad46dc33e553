"""Configuration: `config.toml` plus `STOREFRONT_<SECTION>__<KEY>` environment overrides.

Every section is a frozen dataclass; the field types are the schema. Loading
validates every key and fails with a `ConfigError` that names the bad key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "STOREFRONT_"
CONFIG_ENV = "STOREFRONT_CONFIG"
DEFAULT_PATH = "config.toml"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


EVENT_LOOPS = ("uvloop", "asyncio")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    max_body_bytes: int = 64 * 1024
    # connections the kernel queues for a worker before it accepts them (the listen backlog,
    # capped by net.core.somaxconn); a full queue drops a connection's SYN and its sender
    # tries again only a second later: a flash sale's opening second overflowed aiohttp's 128
    backlog: int = 4096
    # the event loop of `storefront serve`: "uvloop" (libuv, about 4% more flash-sale
    # decisions a second and a lower p99 in bench/rush.py) or "asyncio" (the standard one)
    event_loop: str = "uvloop"
    reply_deadline_seconds: float = 4.5
    # a message's claim: a worker that dies holding it loses it to another after this long
    # (renewed every third of it while the worker lives); shorter: quicker recovery, more writes
    intake_lease_seconds: float = 30.0
    secret_key: str = ""  # keys payment and export links and log hashes; empty: made once per install
    log_format: str = "text"  # text (a terminal) or json (one object a line, for log collectors)
    messages_per_minute: int = 30  # per customer; over it: one polite reply, then silence; 0 = off
    staff_messages_per_minute: int = 300  # staff's own limit (they run the shop in bursts); 0 = none
    health_timeout_seconds: float = 2.0  # /healthz: each check (database, Redis) gives up after this
    # /metrics: on its own address ("127.0.0.1:9100", never the public port), or on the public
    # port behind `Authorization: Bearer <metrics_token>`; neither: only in development (sandbox)
    metrics_listen: str = ""
    metrics_token: str = ""
    # /dev/* (browser chat simulator), development (sandbox) only: "loopback" answers only
    # requests from this machine, "any" answers everyone, "off" never
    dev_tools: str = "loopback"


@dataclass(frozen=True)
class WeChatConfig:
    appid: str = "wx_demo_appid"
    appsecret: str = ""
    token: str = "storefront-dev-token"
    encoding_aes_key: str = ""
    api_base_url: str = "https://api.weixin.qq.com"
    # The console's 消息加解密方式: "plain" (明文), "compatible" (兼容: plaintext accepted too, but
    # never as staff), "safe" (安全: encrypted only). Empty: "safe" with an encoding_aes_key, else "plain".
    message_mode: str = ""
    # A signed request older (or newer) than this many seconds is refused, and each
    # (timestamp, nonce, signature) is accepted for one body only within it. 0 turns the
    # window off (serve warns): a captured triple would then never expire.
    max_clock_skew_seconds: int = 300
    # --- outbound notifications (bot/planner.py) ---
    window_messages: int = 5  # customer-service messages per customer message (48-hour window)
    window_messages_after_payment: int = 20  # ... and within 48 hours of a payment
    max_sends_per_second: int = 50
    template_ids: str = ""  # template-message fallbacks: "order_paid=TEMPLATE_ID,order_shipped=ID2"
    staff_alert_template_id: str = ""  # the template message of every staff alert whose window is closed
    outbox_max_attempts: int = 8  # delivery attempts before a message is failed and staff are told
    outbox_retry_seconds: float = 30.0  # pause after WeChat certainly refused a send; doubled each time
    # Seconds to wait for WeChat's answer to a call (it usually answers in well under one). A
    # message send with no answer in time is "uncertain" and never repeated (bot/outbound/planner.py):
    # keep it well above WeChat's latency, and well below the outbox lease (2 minutes).
    api_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///storefront.db"
    echo: bool = False
    # SQLite: a writer waits this long for another's write lock, then fails ("database is
    # locked"); a chat turn that fails so runs again until `busy_deadline_seconds`, then the
    # customer is told their message is kept (commerce/db.py has the whole policy)
    busy_timeout_seconds: float = 5.0
    busy_deadline_seconds: float = 60.0


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""
    # One bounded pool a worker: a burst waits for a free connection (back-pressure), at most
    # pool_timeout_seconds; then the message is served without Redis (in-process fallbacks).
    max_connections: int = 50
    pool_timeout_seconds: float = 1.0
    socket_timeout_seconds: float = 1.0  # each command; a slower Redis counts as down
    connect_timeout_seconds: float = 1.0


@dataclass(frozen=True)
class PayConfig:
    provider: str = "sandbox"
    mchid: str = ""
    appid: str = ""  # empty: the official account's wechat.appid
    api_base_url: str = "https://api.mch.weixin.qq.com"
    # WeChat Pay API v3
    api_v3_key: str = ""
    merchant_serial_no: str = ""
    private_key_path: str = ""
    platform_public_key_path: str = ""
    platform_public_key_id: str = ""
    # WeChat Pay API v2
    api_v2_key: str = ""
    v2_sign_type: str = "HMAC-SHA256"
    client_cert_path: str = ""
    client_key_path: str = ""
    # sandbox provider: signs its simulated notifications with this secret; empty: made once per install
    sandbox_secret: str = ""
    timeout_seconds: float = 10.0
    # what the pay page offers, in order: "wechat" (the provider above: WeChat Pay, or the
    # sandbox) and "alipay" (the [alipay] section; opened outside WeChat, which blocks it)
    methods: tuple[str, ...] = ("wechat",)


PAY_METHODS = ("wechat", "alipay")


@dataclass(frozen=True)
class AlipayConfig:
    """Alipay (支付宝) mobile-site pay, RSA2: used when `pay.methods` names "alipay"."""

    app_id: str = ""
    seller_id: str = ""  # the merchant's PID (2088...): notifications must name it
    private_key_path: str = ""  # the app private key (PEM) that signs our requests
    public_key_path: str = ""  # Alipay's public key (PEM, from the console) that verifies its answers
    gateway_url: str = "https://openapi.alipay.com/gateway.do"
    notify_url: str = ""  # empty: server.base_url + /pay/notify/alipay


@dataclass(frozen=True)
class SmsConfig:
    """One-time codes for members: "sandbox" shows the code in the chat; "tencent" sends it
    with Tencent Cloud SMS (secret_id / secret_key best from STOREFRONT_SMS__SECRET_ID / __SECRET_KEY)."""

    provider: str = "sandbox"
    secret_id: str = ""
    secret_key: str = ""
    sdk_app_id: str = ""  # the SMS application's SdkAppId (1400...)
    sign_name: str = ""  # the approved signature (签名), e.g. the shop's name
    template_id: str = ""  # an approved verification template: {1} the code, {2} its minutes
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"  # or an http(s) URL (a fake in tests)
    timeout_seconds: float = 10.0


SMS_PROVIDERS = ("sandbox", "tencent")


@dataclass(frozen=True)
class StaffConfig:
    owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShopConfig:
    name: str = "示例小店"
    locale: str = "zh"
    seed_demo: bool = True
    timezone: str = "Asia/Shanghai"
    order_timeout_minutes: int = 30
    remind_before_minutes: int = 10
    auto_complete_days: int = 10
    return_window_days: int = 7
    max_line_quantity: int = 99
    group_buy_hours: int = 24
    delivery_fee_fen: int = 800
    free_delivery_threshold_fen: int = 9900
    new_customer_coupon: str = ""
    dispatch_hours: int = 48  # paid orders ship within this many hours (told to customers who ask)
    weekend_dispatch: bool = True  # whether the shop ships on Saturdays and Sundays
    service_hours: str = "每天 09:00-21:00"  # when staff answer (told to customers who ask "几点下班")
    few_left_below: int = 10  # customers see "仅剩 N 件" below this stock, else just "有货"; staff see numbers
    contact: str = ""  # how to reach a person besides the chat, shown on the pay page ("客服电话 400-...")


@dataclass(frozen=True)
class ReferralConfig:
    binding_days: int = 365
    commission_rate_bp: int = 500
    commission_on_group_orders: bool = False
    withdrawal_min_fen: int = 1000


@dataclass(frozen=True)
class BalanceConfig:
    """Stored balance (储值): the top-up plans a fresh development shop starts with (the
    demo), as "PAY:BONUS" in yuan; staff edit the shop's plans in chat (/topup)."""

    demo_plans: tuple[str, ...] = ("100:10", "300:40")


def parse_plan(text: str) -> tuple[int, int]:
    """ "100:10" -> (10000, 1000) fen; ValueError when it is not "PAY:BONUS" in yuan."""
    pay, sep, bonus = text.partition(":")
    if not sep:
        raise ValueError(text)
    pay_fen, bonus_fen = round(float(pay) * 100), round(float(bonus) * 100)
    if not 0 < pay_fen <= 5_000_000 or not 0 <= bonus_fen <= pay_fen:
        raise ValueError(text)
    return pay_fen, bonus_fen


@dataclass(frozen=True)
class PointsConfig:
    per_yuan: int = 1
    first_share: int = 20
    referral: int = 100
    redeem_points_per_yuan: int = 100
    redeem_max_percent: int = 50
    review: int = 10  # for the review of a received order, once per order; 0: none


@dataclass(frozen=True)
class DialogConfig:
    ttl_seconds: int = 1800


@dataclass(frozen=True)
class ServiceConfig:
    idle_minutes: int = 60  # an open service ticket nobody spoke on this long is closed
    keep_days: int = 30  # customers' messages, the shop's replies and closed tickets are kept this long


@dataclass(frozen=True)
class BroadcastConfig:
    max_age_hours: int = 24  # a broadcast message not sent within this is given up (not sent stale)


@dataclass(frozen=True)
class LiveConfig:
    poll_seconds: float = 2.0  # a live page's units are read again this often besides the pokes of a grab


@dataclass(frozen=True)
class SearchConfig:
    page_size: int = 5
    cache_seconds: float = 2.0  # how often a worker looks for catalog edits made elsewhere; 0: never
    rebuild_seconds: float = 900.0  # a full rebuild in the background (popularity); 0: never
    query_cache_size: int = 4096


@dataclass(frozen=True)
class SchedulerConfig:
    enabled: bool = True


@dataclass(frozen=True)
class AnalyticsConfig:
    enabled: bool = True  # count the events the dashboard draws (searches, cards, carts, orders...)
    flush_seconds: float = 2.0  # events are written in batches this often (or every 500)
    keep_days: int = 400  # events older than this are deleted by the prune_events job


@dataclass(frozen=True)
class MediaConfig:
    dir: str = "media"  # product pictures, served at /media/<name>; relative to the working directory
    max_bytes: int = 10 * 1024 * 1024  # the largest picture staff may send (WeChat's own limit)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    wechat: WeChatConfig = field(default_factory=WeChatConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    pay: PayConfig = field(default_factory=PayConfig)
    alipay: AlipayConfig = field(default_factory=AlipayConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    staff: StaffConfig = field(default_factory=StaffConfig)
    shop: ShopConfig = field(default_factory=ShopConfig)
    referral: ReferralConfig = field(default_factory=ReferralConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    points: PointsConfig = field(default_factory=PointsConfig)
    dialog: DialogConfig = field(default_factory=DialogConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    broadcast: BroadcastConfig = field(default_factory=BroadcastConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)

    @property
    def signing_key(self) -> bytes:
        """The key of links (payment page, exports) and of hashed openids in logs.

        `server.secret_key`, or the install's own random secret that the app reads from
        the database at start-up (`bot.install.resolve_install_secrets`) when none is set.
        """
        if not self.server.secret_key:
            raise ConfigError("server.secret_key is not resolved yet (the app fills it in at start-up)")
        return self.server.secret_key.encode()

    @property
    def message_mode(self) -> str:
        """plain, compatible or safe: how `/wechat` treats plaintext and encrypted requests."""
        if self.wechat.message_mode:
            return self.wechat.message_mode
        return "safe" if self.wechat.encoding_aes_key else "plain"

    @property
    def is_development(self) -> bool:
        """The sandbox payment provider: no real money can move, so this is not a live shop."""
        return self.pay.provider == "sandbox"

    @property
    def pay_appid(self) -> str:
        return self.pay.appid or self.wechat.appid

    @property
    def public_base_url(self) -> str:
        """The URL customers' links point at (falls back to the listen address)."""
        if self.server.base_url:
            return self.server.base_url.rstrip("/")
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host
        return f"http://{host}:{self.server.port}"

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """A copy with some keys changed, validated like a file: `cfg.replace(shop={"locale": "en"})`."""
        data = {name: dataclasses.asdict(getattr(self, name)) for name in _sections()}
        for name, values in sections.items():
            if name not in data:
                raise ConfigError(f"unknown config section [{name}]")
            data[name].update(values)
        return build_config(data)


def _sections() -> dict[str, type]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _coerce(where: str, kind: Any, value: Any, *, from_env: bool) -> Any:
    origin = typing.get_origin(kind)
    if origin is tuple:
        (item_kind, _ellipsis) = typing.get_args(kind)
        if from_env and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(where, item_kind, v, from_env=from_env) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported type")  # pragma: no cover - schema bug
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {kind!r}")  # pragma: no cover


def build_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML mapping (plus environment overrides) into a `Config`."""
    sections = _sections()
    merged: dict[str, dict[str, tuple[Any, bool]]] = {name: {} for name in sections}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(f"unknown config section [{name}]")
        if not isinstance(values, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        for key, value in values.items():
            merged[name][key] = (value, False)
    for var, value in (env or {}).items():
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV:
            continue
        name, sep, key = var[len(ENV_PREFIX):].lower().partition("__")
        if not sep:
            raise ConfigError(f"{var}: expected STOREFRONT_<SECTION>__<KEY> (two underscores)")
        if name not in sections:
            raise ConfigError(f"{var}: unknown config section [{name}]")
        merged[name][key] = (value, True)

    built = {}
    for name, section_type in sections.items():
        hints = typing.get_type_hints(section_type)
        known = {f.name for f in dataclasses.fields(section_type)}
        kwargs = {}
        for key, (value, from_env) in merged[name].items():
            if key not in known:
                raise ConfigError(f"unknown config key {name}.{key}")
            kwargs[key] = _coerce(f"{name}.{key}", hints[key], value, from_env=from_env)
        built[name] = section_type(**kwargs)
    config = Config(**built)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    if not 0 < config.server.port < 65536:
        raise ConfigError("server.port: must be between 1 and 65535")
    if config.server.max_body_bytes < 1024:
        raise ConfigError("server.max_body_bytes: must be at least 1024")
    if not 16 <= config.server.backlog <= 65535:
        raise ConfigError("server.backlog: must be between 16 and 65535")
    if config.server.event_loop not in EVENT_LOOPS:
        raise ConfigError(f"server.event_loop: must be one of {', '.join(EVENT_LOOPS)}")
    if not 0.5 <= config.server.reply_deadline_seconds <= 4.8:
        raise ConfigError("server.reply_deadline_seconds: must be between 0.5 and 4.8 (WeChat waits 5 s)")
    if not 1 <= config.server.intake_lease_seconds <= 120:
        raise ConfigError("server.intake_lease_seconds: must be between 1 and 120")
    if config.server.messages_per_minute < 0:
        raise ConfigError("server.messages_per_minute: must not be negative (0 turns the limit off)")
    if config.server.staff_messages_per_minute < 0:
        raise ConfigError("server.staff_messages_per_minute: must not be negative (0: staff are not limited)")
    if not 0.1 <= config.server.health_timeout_seconds <= 30:
        raise ConfigError("server.health_timeout_seconds: must be between 0.1 and 30")
    if not 0 <= config.wechat.max_sends_per_second <= 10_000:
        raise ConfigError("wechat.max_sends_per_second: must be between 0 and 10000")
    if config.server.log_format not in ("text", "json"):
        raise ConfigError("server.log_format: must be text or json")
    if not config.wechat.token:
        raise ConfigError("wechat.token: must not be empty")
    if config.wechat.message_mode not in ("", "plain", "compatible", "safe"):
        raise ConfigError("wechat.message_mode: must be plain, compatible or safe")
    if config.wechat.message_mode in ("compatible", "safe") and not config.wechat.encoding_aes_key:
        raise ConfigError(f"wechat.message_mode: {config.wechat.message_mode} mode needs wechat.encoding_aes_key")
    if not 0.1 <= config.wechat.api_timeout_seconds <= 60:
        raise ConfigError("wechat.api_timeout_seconds: must be between 0.1 and 60 (the outbox lease is 2 minutes)")
    if not 0.1 <= config.wechat.outbox_retry_seconds <= 3600:
        raise ConfigError("wechat.outbox_retry_seconds: must be between 0.1 and 3600")
    if not 0 <= config.wechat.max_clock_skew_seconds <= 86400:
        raise ConfigError("wechat.max_clock_skew_seconds: must be between 0 (off) and 86400")
    if config.server.dev_tools not in ("loopback", "any", "off"):
        raise ConfigError("server.dev_tools: must be loopback, any or off")
    if config.server.metrics_listen:
        host, sep, port = config.server.metrics_listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("server.metrics_listen: expected HOST:PORT, e.g. 127.0.0.1:9100")
        if (host.strip("[]"), int(port)) == (config.server.host, config.server.port):
            raise ConfigError("server.metrics_listen: must not be the shop's own address (server.host:port)")
    key = config.wechat.encoding_aes_key
    if key:
        try:
            raw = base64.b64decode(key + "=", validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(key) != 43 or len(raw) != 32:
            raise ConfigError("wechat.encoding_aes_key: must be the 43-character key from the WeChat console")
    if not config.database.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError("database.url: use sqlite+aiosqlite:///FILE or postgresql+asyncpg://...")
    if not 0.05 <= config.database.busy_timeout_seconds <= 60:
        raise ConfigError("database.busy_timeout_seconds: must be between 0.05 and 60")
    if not 0 <= config.database.busy_deadline_seconds <= 600:
        raise ConfigError("database.busy_deadline_seconds: must be between 0 (no retry) and 600")
    if config.redis.url and not config.redis.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis.url: must start with redis://, rediss:// or unix://")
    if not 1 <= config.redis.max_connections <= 10_000:
        raise ConfigError("redis.max_connections: must be between 1 and 10000")
    for key in ("pool_timeout_seconds", "socket_timeout_seconds", "connect_timeout_seconds"):
        if not 0.01 <= getattr(config.redis, key) <= 30:
            raise ConfigError(f"redis.{key}: must be between 0.01 and 30")
    if config.pay.provider not in ("sandbox", "wechatpay_v3", "wechatpay_v2"):
        raise ConfigError("pay.provider: must be sandbox, wechatpay_v3 or wechatpay_v2")
    for part in filter(None, (p.strip() for p in config.wechat.template_ids.split(","))):
        event, sep, template_id = part.partition("=")
        if not sep or not event.strip() or not template_id.strip():
            raise ConfigError(f"wechat.template_ids: expected EVENT=TEMPLATE_ID, got {part!r}")
    if config.pay.v2_sign_type not in ("MD5", "HMAC-SHA256"):
        raise ConfigError("pay.v2_sign_type: must be MD5 or HMAC-SHA256")
    if config.pay.provider == "wechatpay_v3":
        for key in ("mchid", "api_v3_key", "merchant_serial_no", "private_key_path"):
            if not getattr(config.pay, key):
                raise ConfigError(f"pay.{key}: required by the wechatpay_v3 provider")
        if len(config.pay.api_v3_key) != 32:
            raise ConfigError("pay.api_v3_key: must be the 32-character APIv3 key")
    if config.pay.provider == "wechatpay_v2":
        for key in ("mchid", "api_v2_key"):
            if not getattr(config.pay, key):
                raise ConfigError(f"pay.{key}: required by the wechatpay_v2 provider")
    methods = config.pay.methods
    if "wechat" not in methods or len(set(methods)) != len(methods) or set(methods) - set(PAY_METHODS):
        raise ConfigError('pay.methods: a list of "wechat" (always) and "alipay", each once')
    if "alipay" in methods:
        for key in ("app_id", "seller_id", "private_key_path", "public_key_path"):
            if not getattr(config.alipay, key):
                raise ConfigError(f'alipay.{key}: required when pay.methods names "alipay"')
        if not config.alipay.gateway_url.startswith(("https://", "http://")):
            raise ConfigError("alipay.gateway_url: must be an http(s) URL")
    if config.sms.provider not in SMS_PROVIDERS:
        raise ConfigError("sms.provider: must be sandbox or tencent")
    if config.sms.provider == "tencent":
        for key in ("secret_id", "secret_key", "sdk_app_id", "sign_name", "template_id"):
            if not getattr(config.sms, key):
                raise ConfigError(f"sms.{key}: required by the tencent provider")
    if not 1 <= config.sms.timeout_seconds <= 30:
        raise ConfigError("sms.timeout_seconds: must be between 1 and 30")
    if not 1 <= config.pay.timeout_seconds <= 30:
        raise ConfigError("pay.timeout_seconds: must be between 1 and 30")
    if config.shop.locale not in ("zh", "en"):
        raise ConfigError("shop.locale: must be zh or en")
    for key in ("order_timeout_minutes", "group_buy_hours", "delivery_fee_fen", "free_delivery_threshold_fen",
                "remind_before_minutes", "auto_complete_days", "return_window_days", "dispatch_hours",
                "few_left_below"):
        if getattr(config.shop, key) < 0:
            raise ConfigError(f"shop.{key}: must not be negative")
    if not 0 < len(config.shop.service_hours.strip()) <= 60:
        raise ConfigError("shop.service_hours: 1 to 60 characters, e.g. 每天 09:00-21:00")
    if config.shop.order_timeout_minutes < 1:
        raise ConfigError("shop.order_timeout_minutes: must be at least 1")
    if not 1 <= config.shop.max_line_quantity <= 9999:
        raise ConfigError("shop.max_line_quantity: must be between 1 and 9999")
    try:
        zoneinfo.ZoneInfo(config.shop.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"shop.timezone: unknown time zone {config.shop.timezone!r}") from None
    if not 1 <= config.referral.binding_days <= 36500:
        raise ConfigError("referral.binding_days: must be between 1 and 36500")
    if not 0 <= config.referral.commission_rate_bp <= 5000:
        raise ConfigError("referral.commission_rate_bp: must be between 0 and 5000 (50%)")
    for plan in config.balance.demo_plans:
        try:
            parse_plan(plan)
        except ValueError:
            raise ConfigError(f'balance.demo_plans: "{plan}" is not "PAY:BONUS" in yuan (bonus at most the pay)') from None
    if config.referral.withdrawal_min_fen < 1:
        raise ConfigError("referral.withdrawal_min_fen: must be at least 1")
    for key in ("per_yuan", "first_share", "referral", "review"):
        if not 0 <= getattr(config.points, key) <= 1_000_000:
            raise ConfigError(f"points.{key}: must be between 0 and 1000000")
    if not 1 <= config.points.redeem_points_per_yuan <= 1_000_000:
        raise ConfigError("points.redeem_points_per_yuan: must be between 1 and 1000000")
    if not 0 <= config.points.redeem_max_percent <= 100:
        raise ConfigError("points.redeem_max_percent: must be between 0 and 100")
    if not 0 <= config.search.query_cache_size <= 1_000_000:
        raise ConfigError("search.query_cache_size: must be between 0 and 1000000")
    if not 0 <= config.search.cache_seconds <= 86400:
        raise ConfigError("search.cache_seconds: must be between 0 and 86400")
    if config.search.rebuild_seconds != 0 and not 60 <= config.search.rebuild_seconds <= 7 * 86400:
        raise ConfigError("search.rebuild_seconds: must be 0 (never) or between 60 and 604800")
    if not config.media.dir.strip():
        raise ConfigError("media.dir: must name a folder, e.g. media")
    if not 1024 <= config.media.max_bytes <= 50 * 1024 * 1024:
        raise ConfigError("media.max_bytes: must be between 1024 and 52428800 (50 MB)")
    if config.dialog.ttl_seconds < 10:
        raise ConfigError("dialog.ttl_seconds: must be at least 10")
    if not 1 <= config.service.idle_minutes <= 7 * 24 * 60:
        raise ConfigError("service.idle_minutes: must be between 1 and 10080 (a week)")
    if not 1 <= config.service.keep_days <= 3650:
        raise ConfigError("service.keep_days: must be between 1 and 3650")
    if not 1 <= config.broadcast.max_age_hours <= 7 * 24:
        raise ConfigError("broadcast.max_age_hours: must be between 1 and 168 (a week)")
    if not 0.2 <= config.live.poll_seconds <= 60:
        raise ConfigError("live.poll_seconds: must be between 0.2 and 60")
    if not 0.1 <= config.analytics.flush_seconds <= 300:
        raise ConfigError("analytics.flush_seconds: must be between 0.1 and 300")
    if not 1 <= config.analytics.keep_days <= 36500:
        raise ConfigError("analytics.keep_days: must be between 1 and 36500")
    if not 1 <= config.search.page_size <= 8:
        raise ConfigError("search.page_size: must be between 1 and 8 (a news reply holds 8 articles)")


def config_path(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(explicit or env.get(CONFIG_ENV) or DEFAULT_PATH)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config file (missing file = defaults) and apply environment overrides."""
    env = dict(os.environ if env is None else env)
    file = config_path(str(path) if path else None, env)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
    elif path or env.get(CONFIG_ENV):
        raise ConfigError(f"config file {file} does not exist")
    return build_config(data, env)
