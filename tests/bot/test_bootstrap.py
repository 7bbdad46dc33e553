"""The composition root: the default configuration builds a complete, frozen shop."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import aiohttp
import pytest

from bot import bootstrap
from bot.bootstrap import open_shop
from bot.config import ConfigError
from bot.dialogs.base import Active, Dialog
from bot.dialogs.store import StoredDialog
from bot.metrics import Metrics
from bot.outbound.sender import MemoryOutbox
from bot.web.invites import InvitesUnavailable, NoQrCodes
from bot.wechat.scenes import ProductShare, ReferralInvite
from commerce.payments.service import PaymentService
from scheduler.runner import run_job
from tests.bot.conftest import make_config


async def test_the_default_config_builds_every_service(sqlite_url: str) -> None:
    config = make_config(sqlite_url, scheduler={"enabled": False})  # no appsecret, no Redis
    async with open_shop(config, metrics=Metrics()) as shop:
        services = shop.services
        missing = [f.name for f in dataclasses.fields(services) if getattr(services, f.name) is None]
        assert missing == []
        assert isinstance(services.payments, PaymentService) and shop.payments is services.payments
        assert services.payments.provider.name == "sandbox"
        assert isinstance(shop.outbound, MemoryOutbox)  # no appsecret: no planner, nothing sent to WeChat
        assert shop.jobs.payments is services.payments and shop.jobs.uow is services.uow
        assert await run_job("deliver_outbox", shop.jobs) == 0  # nothing was told: nothing is due
        with pytest.raises(dataclasses.FrozenInstanceError):
            services.payments = services.payments  # type: ignore[misc]  # frozen: nothing is patched in later
        with pytest.raises(dataclasses.FrozenInstanceError):
            shop.services = services  # type: ignore[misc]


async def test_without_a_wechat_client_invites_explain_instead_of_failing(sqlite_url: str) -> None:
    config = make_config(sqlite_url, scheduler={"enabled": False})
    async with open_shop(config, metrics=Metrics()) as shop:
        invites = shop.services.invites
        with pytest.raises(InvitesUnavailable, match="wechat.appsecret"):
            await invites.qr_for(ReferralInvite("ABC123"), permanent=True)
        assert await invites.image_url(ProductShare(1)) == ""  # a page or reply shows no picture
        assert invites.share_link(ProductShare(1)) == "https://shop.example.com/s/v1.p.1"  # links still work


async def test_the_null_qr_maker_says_why_there_is_no_code() -> None:
    with pytest.raises(InvitesUnavailable, match="WeChat client"):
        await NoQrCodes().create_qr("v1.p.1", permanent=False)


# the fields a dialog's record cannot do without (the rest have defaults)
REQUIRED = {"search": {"source": "query"}, "confirm": {"command": "refund"}}


async def test_each_typed_dialog_is_the_one_the_runtime_loads_by_name(sqlite_url: str) -> None:
    config = make_config(sqlite_url, scheduler={"enabled": False})
    async with open_shop(config, metrics=Metrics()) as shop:
        dialogs = shop.services.dialogs
        typed: list[Dialog[Any, Any]] = [
            dialogs.search, dialogs.cart, dialogs.checkout, dialogs.orders, dialogs.confirm, dialogs.group
        ]
        assert [d.name for d in typed] == ["search", "cart", "checkout", "orders", "confirm", "group"]
        for dialog in typed:
            state = str(next(iter(dialog.initial)))
            data = REQUIRED.get(dialog.name, {})
            await dialogs.store.put("o_boot", StoredDialog(dialog.name, state, dialog.version, data, time.time() + 60))
            loaded = await dialogs.load("o_boot")
            assert isinstance(loaded, Active) and loaded.dialog is dialog


async def test_a_failure_while_building_closes_what_was_opened(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[aiohttp.ClientSession] = []
    make_session = aiohttp.ClientSession

    def recording(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = make_session(*args, **kwargs)
        opened.append(session)
        return session

    monkeypatch.setattr(bootstrap.aiohttp, "ClientSession", recording)
    pay = {"provider": "wechatpay_v3", "mchid": "1900000001", "api_v3_key": "k" * 32,
           "merchant_serial_no": "SN1", "private_key_path": "missing.pem"}  # and no platform key
    config = make_config(sqlite_url, pay=pay, scheduler={"enabled": False})
    with pytest.raises(ConfigError, match="platform_public_key"):
        async with open_shop(config, metrics=Metrics()):
            pytest.fail("a shop without a way to verify payments must not open")
    assert opened and all(session.closed for session in opened)  # the payment provider's HTTP session
