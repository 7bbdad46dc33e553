"""Build the payment provider and `PaymentService` from the configuration (used by the app factory)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bot.config import Config, ConfigError, PayConfig
from commerce.balance.topups import TopUps
from commerce.orders.views import OrderView
from commerce.payments.alipay import AlipayProvider
from commerce.payments.base import PaymentProvider
from commerce.payments.sandbox import SandboxProvider
from commerce.payments.service import PaymentService, ProviderAccount
from commerce.payments.wechatpay_v2 import WeChatPayV2Provider
from commerce.payments.wechatpay_v3 import WeChatPayV3Provider, load_private_key, load_public_key
from commerce.uow import UnitOfWork, UnitOfWorkFactory

NOTIFY_PATH = "/pay/notify/{provider}"
REFUND_NOTIFY_PATH = "/pay/refund-notify/{provider}"
SANDBOX_MCHID = "sandbox"


def build_payment_service(
    config: Config,
    uows: UnitOfWorkFactory,
    http: aiohttp.ClientSession,
    *,
    on_paid: Callable[[UnitOfWork, OrderView], Awaitable[None]] | None = None,
    on_notification: Callable[[str, str], None] | None = None,
) -> PaymentService:
    """`on_paid`: told of each newly paid order in its unit of work (staff alerts, committed
    with the payment); `on_notification`: of every
    verified notification's (kind, result) (metrics)."""
    provider = build_provider(config, http)
    base = config.public_base_url
    return PaymentService(
        provider=provider,
        uows=uows,
        appid=config.pay_appid,
        mchid=merchant_id(config),
        notify_url=base + NOTIFY_PATH.format(provider=provider.name),
        refund_notify_url=base + REFUND_NOTIFY_PATH.format(provider=provider.name),
        on_paid=on_paid,
        on_notification=on_notification,
        more=[alipay_account(config, http)] if "alipay" in config.pay.methods else [],
        payables=[TopUps()],  # stored-balance top-ups are paid through the same providers
    )


def alipay_account(config: Config, http: aiohttp.ClientSession) -> ProviderAccount:
    """Alipay beside the primary provider (`pay.methods` names it; [alipay] holds its keys)."""
    ali = config.alipay
    try:
        provider = AlipayProvider(
            http=http,
            app_id=ali.app_id,
            seller_id=ali.seller_id,
            app_private_key_pem=_read(ali.private_key_path, "alipay.private_key_path").decode(),
            alipay_public_key_pem=_read(ali.public_key_path, "alipay.public_key_path").decode(),
            gateway_url=ali.gateway_url,
            timeout_seconds=config.pay.timeout_seconds,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"alipay.private_key_path / alipay.public_key_path: not RSA keys in PEM: {exc}") from None
    base = config.public_base_url
    return ProviderAccount(
        provider=provider,
        appid=ali.app_id,
        mchid=ali.seller_id,
        notify_url=ali.notify_url or base + NOTIFY_PATH.format(provider=provider.name),
        refund_notify_url=base + REFUND_NOTIFY_PATH.format(provider=provider.name),
    )


def merchant_id(config: Config) -> str:
    return config.pay.mchid or (SANDBOX_MCHID if config.pay.provider == "sandbox" else "")


def build_provider(config: Config, http: aiohttp.ClientSession) -> PaymentProvider:
    pay = config.pay
    if pay.provider == "sandbox":
        return SandboxProvider(
            secret=pay.sandbox_secret,
            mchid=merchant_id(config),
            appid=config.pay_appid,
            http=http,
            timeout_seconds=pay.timeout_seconds,
        )
    if pay.provider == "wechatpay_v3":
        if not (pay.platform_public_key_path and pay.platform_public_key_id):
            raise ConfigError(
                "pay.platform_public_key_path and pay.platform_public_key_id: required by the wechatpay_v3 "
                "provider (WeChat Pay public-key mode) to verify answers and notifications"
            )
        return WeChatPayV3Provider(
            http=http,
            mchid=pay.mchid,
            appid=config.pay_appid,
            api_v3_key=pay.api_v3_key,
            merchant_serial_no=pay.merchant_serial_no,
            private_key=load_private_key(_read(pay.private_key_path, "pay.private_key_path")),
            platform_public_key=load_public_key(
                _read(pay.platform_public_key_path, "pay.platform_public_key_path")
            ),
            platform_public_key_id=pay.platform_public_key_id,
            base_url=pay.api_base_url,
            timeout_seconds=pay.timeout_seconds,
        )
    if pay.provider == "wechatpay_v2":
        return WeChatPayV2Provider(
            http=http,
            mchid=pay.mchid,
            appid=config.pay_appid,
            api_key=pay.api_v2_key,
            sign_type=pay.v2_sign_type,
            base_url=pay.api_base_url,
            timeout_seconds=pay.timeout_seconds,
            client_ssl=client_ssl_context(pay),
        )
    raise ConfigError(f"pay.provider: unknown provider {pay.provider!r}")


def client_ssl_context(pay: PayConfig) -> ssl.SSLContext | None:
    """v2 refunds need the merchant's client certificate (apiclient_cert.pem / apiclient_key.pem)."""
    if not (pay.client_cert_path or pay.client_key_path):
        return None
    if not (pay.client_cert_path and pay.client_key_path):
        raise ConfigError("pay.client_cert_path and pay.client_key_path: set both or neither")
    context = ssl.create_default_context()
    try:
        context.load_cert_chain(pay.client_cert_path, pay.client_key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"pay.client_cert_path: cannot load the client certificate: {exc}") from None
    return context


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
