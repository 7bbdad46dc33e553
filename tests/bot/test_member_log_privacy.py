"""A registration through Tencent Cloud SMS (the fake, over HTTP) with every logger at DEBUG
as JSON lines: no line carries the one-time code, a wrong code typed, or the phone number.

Tencent Cloud's SDK writes each request it sends (phone and code) and each answer at DEBUG;
`bot.logs` holds its logger at INFO, as it holds aiosqlite's, and this test keeps it so."""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from tests.bot.conftest import ShopFactory
from tests.bot.test_log_privacy import log_lines  # noqa: F401 (the fixture)
from tests.fakes import tencent_sms
from tests.fakes.tencent_sms import FakeTencentSms

PHONE = "13987654321"


@pytest.mark.sqlite_only
async def test_a_registration_by_sms_leaves_no_code_or_phone_in_the_logs(
    make_shop: ShopFactory,
    sqlite_url: str,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    log_lines: io.StringIO,  # noqa: F811
) -> None:
    fake = FakeTencentSms()
    server = await aiohttp_server(fake.app())
    shop = await make_shop(sqlite_url, server={"log_format": "json"}, sms={
        "provider": "tencent", "secret_id": tencent_sms.SECRET_ID, "secret_key": tencent_sms.SECRET_KEY,
        "sdk_app_id": tencent_sms.SDK_APP_ID, "sign_name": tencent_sms.SIGN_NAME,
        "template_id": tencent_sms.TEMPLATE_ID, "endpoint": str(server.make_url("/")).rstrip("/"),
    })
    assert not logging.getLogger("tencentcloud_sdk_common").isEnabledFor(logging.DEBUG)
    user = shop.user("o_privacy_member_9k2")
    await user.say("会员")
    await user.say(PHONE)
    [code] = fake.codes_to(PHONE)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert "验证码不对" in (await user.say(wrong)).text
    assert "注册成功" in (await user.say(code)).text
    await shop.client.close()

    lines = log_lines.getvalue().splitlines()
    assert lines, "nothing was logged: the capture is broken"
    masked = PHONE[:3] + "****" + PHONE[-4:]
    for number, line in enumerate(lines, start=1):
        for what, secret in {"code": code, "wrong code": wrong, "phone": PHONE, "masked phone": masked}.items():
            if secret in line:
                pytest.fail(f"log line {number} of {len(lines)} carries the {what} ({secret!r}):\n{line}")
