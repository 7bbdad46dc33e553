"""What every fault test shares: the fake WeChat API server the workers send to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.fakes.wechat import FakeWeChat
from tests.ports import free_port


@pytest.fixture
async def fake_wechat() -> AsyncIterator[tuple[FakeWeChat, str]]:
    """The fake WeChat API on a free loopback port: (the fake, its base URL)."""
    fake = FakeWeChat()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()
