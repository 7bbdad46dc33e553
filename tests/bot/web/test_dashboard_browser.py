"""The staff dashboard in a real browser (Debian's chromium through playwright, as
tests/bot/web/test_browser.py): opened from a staff link on a seeded month, every chart is
an ECharts instance holding the seeded figures and drawn on its canvas; a month without
activity shows empty states; an expired or forged link is refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.keys import CONFIG
from bot.outbound.sender import MemoryOutbox
from bot.web.dashboard import make_dashboard_token
from tests.bot.conftest import OWNER, STRANGER, make_config, seed
from tests.bot.driver import db
from tests.bot.web.test_browser import _new_page, _screenshot, browser  # noqa: F401
from tests.commerce.analytics.month import seed_month
from tests.ports import free_port

CHARTS = ("traffic", "revenue", "funnel", "retention", "provinces", "categories", "products", "searches",
          "referrers", "groups")
NOVEMBER = "?start=2026-11-01&end=2026-11-30"


@pytest.fixture
async def staffed_server(
    sqlite_url: str, aiohttp_server: Callable[..., Awaitable[TestServer]], demo_catalog: None
) -> tuple[TestServer, str]:
    """(server, base URL): the app with an owner on a real port, its November seeded."""
    await seed(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = make_config(sqlite_url, server={"base_url": base}, staff={"owners": [OWNER]})
    server = await aiohttp_server(create_app(config, outbound=MemoryOutbox()), port=port)
    async with db(server.app)() as session:
        await seed_month(session)
        await session.commit()
    return server, base


def _path(server: TestServer, openid: str = OWNER, *, minutes: int = 30) -> str:
    expires_at = datetime.now(UTC) + timedelta(minutes=minutes)
    key = server.app[CONFIG].signing_key
    return "/dashboard/" + make_dashboard_token(key=key, openid=openid, expires_at=expires_at)


SERIES = """() => {
  const out = {};
  for (const el of document.querySelectorAll(".chart")) {
    const chart = echarts.getInstanceByDom(el);
    if (!chart) continue;
    const option = chart.getOption();
    const canvas = el.querySelector("canvas");
    const context = canvas.getContext("2d");
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
    out[el.id.slice(6)] = {
      series: option.series.map(s => s.data),
      names: option.series.map(s => s.name),
      y: (option.yAxis[0] || {}).data || null,
      width: canvas.width, painted: painted,
    };
  }
  return out;
}"""


async def test_the_charts_are_drawn_with_the_seeded_month(browser: Any, staffed_server: tuple[TestServer, str]) -> None:  # noqa: F811
    server, base = staffed_server
    page = await _new_page(browser, base)
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    response = await page.goto(base + _path(server) + NOVEMBER)
    assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    await page.wait_for_selector("body[data-charts]", state="attached")
    assert await page.get_attribute("body", "data-charts") == str(len(CHARTS))
    assert await page.locator("h1").inner_text() == "数据看板"
    assert await page.locator("#kpi-revenue .kpi-value").inner_text() == "¥336.00"
    assert "上期 ¥10.00" in await page.locator("#kpi-revenue .kpi-before").inner_text()
    assert await page.locator("#kpi-visitors .kpi-value").inner_text() == "6"

    charts = await page.evaluate(SERIES)
    assert sorted(charts) == sorted(CHARTS)
    for name, chart in charts.items():
        assert chart["width"] > 0 and chart["painted"] > 500, name  # drawn, not blank
    traffic = charts["traffic"]["series"]
    assert traffic[0][:3] == [2, 4, 1] and traffic[0][14] == 1 and sum(traffic[0]) == 8  # visitors
    assert traffic[1][:3] == [1, 2, 1] and sum(traffic[1]) == 8  # paying customers per day
    revenue = charts["revenue"]["series"]
    assert revenue[0][2] == 128 and sum(revenue[0]) == 336  # yuan per day
    assert revenue[1][3] == 28  # the refund, on the 4th
    assert charts["funnel"]["series"] == [[9, 8, 7, 7, 6], [1, 0, 0, 1, 1]]
    assert charts["funnel"]["y"] == ["搜索", "看商品", "加购", "去结算", "付款"]
    assert charts["provinces"]["y"] == ["上海市", "浙江省", "江苏省", "广东省", "北京市"]
    assert charts["provinces"]["series"] == [[3, 2, 1, 1, 1], [0, 0, 0, 0, 1]]
    assert charts["products"]["y"] == ["铁观音", "苹果", "香蕉"]
    assert charts["products"]["series"][0] == [256, 50, 30]
    assert charts["searches"]["y"] == ["榴莲", "车厘子", "cherry"]
    assert charts["searches"]["series"] == [[3, 2, 1], [1, 0, 0]]
    assert charts["referrers"]["series"] == [[3, 1], [2, 1], [2, 0]]
    assert charts["groups"]["series"] == [[3, 2], [1, 1]]
    assert "66.7%" in charts["groups"]["names"][0]
    cells = charts["retention"]["series"][0]
    assert [0, 0, 33.3] in cells and [1, 0, 0] in cells and [0, 1, 0] in cells  # week +1, +2 of the first cohort
    assert [c for c in charts["retention"]["y"]] [0].startswith("11-02 (3")
    await _screenshot(page, "dashboard")

    # the English switch keeps the range
    await page.click("#lang-switch")
    await page.wait_for_selector("body[data-charts]", state="attached")
    assert await page.locator("h1").inner_text() == "Dashboard"
    assert "2026-11-01" in await page.locator("#range").inner_text()
    assert (await page.evaluate(SERIES))["funnel"]["y"][0] == "Search"
    assert page.errors == [] and csp_errors == []


async def test_a_quiet_month_shows_empty_states_and_presets_work(browser: Any, staffed_server: tuple[TestServer, str]) -> None:  # noqa: F811
    server, base = staffed_server
    page = await _new_page(browser, base)
    await page.goto(base + _path(server) + "?start=2026-01-01&end=2026-01-31")
    await page.wait_for_selector("body[data-charts]", state="attached")
    assert await page.get_attribute("body", "data-charts") == "0"
    empty = page.locator(".chart.empty")
    assert await empty.count() == len(CHARTS)
    assert await empty.first.inner_text() == "这段时间还没有数据"
    assert await page.locator(".chart canvas").count() == 0

    await page.click("#preset-7")
    await page.wait_for_selector("body[data-charts]", state="attached")
    assert "days=7" in page.url and await page.get_attribute("#preset-7", "class") == "on"
    assert page.errors == []


async def test_expired_forged_and_strangers_links_are_refused(browser: Any, staffed_server: tuple[TestServer, str]) -> None:  # noqa: F811
    server, base = staffed_server
    page = await _new_page(browser, base)
    expired = await page.goto(base + _path(server, minutes=-1))
    assert expired.status == 410 and "已过期" in await page.inner_text("body")
    good = _path(server)
    forged = good[:-3] + ("AAA" if good[-3:] != "AAA" else "BBB")
    refused = await page.goto(base + forged)
    assert refused.status in (403, 404) and "dashboard" in (await page.inner_text("body")).lower()
    stranger = await page.goto(base + _path(server, STRANGER))
    assert stranger.status == 403 and "没有查看数据的权限" in await page.inner_text("body")
    bad_range = await page.goto(base + good + "?start=2026-11-30&end=2026-11-01")
    assert bad_range.status == 400
    assert await page.locator("canvas").count() == 0
