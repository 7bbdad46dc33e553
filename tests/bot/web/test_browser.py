"""A real headless browser (Debian's chromium, driven by playwright) on the real app.

The app listens on a real localhost port and its public base URL is that address, so
every link and image the pages show is local; the browser refuses anything else.
Without /usr/bin/chromium these tests are skipped on a developer's machine and FAIL
in CI (`CI` set), so CI can never silently skip them. Set STOREFRONT_SCREENSHOTS to a
folder to keep a screenshot of each page.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.keys import CONFIG
from bot.outbound.sender import MemoryOutbox
from commerce.orders.models import Order
from tests.bot.conftest import make_config, seed
from tests.bot.driver import db
from tests.bot.web.conftest import pay_path, place_apple_order
from tests.ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
# an <img> that has loaded (waiting for its load when it is still coming: a busy machine
# served the picture after the card appeared) and has a size: not a broken image
LOADED = """img => (img.complete ? Promise.resolve() : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done);
})).then(() => img.complete && img.naturalWidth > 0)"""


def _require_browser() -> None:
    """Skip without chromium or playwright on a developer's machine; fail in CI."""
    reason = ""
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install -e '.[test]')"
    if reason and os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    if reason:
        pytest.skip(reason)


def _screenshot_path(name: str) -> str | None:
    folder = os.environ.get("STOREFRONT_SCREENSHOTS")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return str(Path(folder) / f"{name}.png")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def served_shop(
    sqlite_url: str, aiohttp_server: Callable[..., Awaitable[TestServer]], demo_catalog: None
) -> tuple[TestServer, str]:
    """(server, base URL): the app on a real port whose links all point back at it."""
    await seed(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = make_config(sqlite_url, server={"base_url": base})
    outbox = MemoryOutbox()
    server = await aiohttp_server(create_app(config, outbound=outbox), port=port)
    assert str(server.make_url("")).rstrip("/") == base
    return server, base


async def _new_page(browser: Any, base: str) -> Any:
    context = await browser.new_context(viewport={"width": 420, "height": 820}, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)

    async def local_only(route: Any) -> None:
        if route.request.url.startswith(base + "/"):
            await route.continue_()
        else:
            await route.abort()

    await context.route("**/*", local_only)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    return page


async def _screenshot(page: Any, name: str) -> None:
    path = _screenshot_path(name)
    if path is not None:
        await page.screenshot(path=path, full_page=True)


async def _say(page: Any, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def test_chat_search_then_product_card(browser: Any, served_shop: tuple[TestServer, str]) -> None:
    _server, base = served_shop
    page = await _new_page(browser, base)
    await page.goto(base + "/dev/chat")
    await page.click("#follow")
    await page.wait_for_selector(".row.bot .bubble:has-text('欢迎关注测试小店')")

    await _say(page, "pingguo")
    results = page.locator(".row.bot .bubble", has_text="烟台红富士苹果")
    await results.wait_for()
    text = await results.inner_text()
    number = re.search(r"^(\d+)\. 烟台红富士苹果", text, re.M)
    assert number, text
    assert await page.locator(".row.me .bubble", has_text="pingguo").count() == 1

    await _say(page, number.group(1))
    card = page.locator(".news").last
    await card.locator(".headline", has_text="烟台红富士苹果").wait_for()
    assert "3斤装" in await card.locator(".desc").inner_text()
    image = card.locator("img")
    assert (await image.get_attribute("src")).startswith(base + "/media/")
    assert await image.evaluate(LOADED), "the picture did not load"
    link = card.locator("a").first
    assert await link.get_attribute("target") == "_blank"
    assert "noopener" in await link.get_attribute("rel")
    await _screenshot(page, "dev_chat")

    # The card opens the product page in a new tab.
    async with page.context.expect_page() as opened:
        await link.click()
    product = await opened.value
    await product.wait_for_load_state()
    assert re.fullmatch(re.escape(base) + r"/products/\d+", product.url)
    assert "烟台红富士苹果" in await product.locator("h1").inner_text()
    assert page.errors == []


async def test_chat_shows_message_text_as_text(browser: Any, served_shop: tuple[TestServer, str]) -> None:
    _server, base = served_shop
    page = await _new_page(browser, base)
    await page.goto(base + "/dev/chat")
    hostile = '<img src=x onerror="window.pwned=1">'
    await _say(page, hostile)
    await page.locator(".row.bot .bubble").last.wait_for()
    await page.wait_for_timeout(300)
    assert await page.locator(".row.me .bubble").last.inner_text() == hostile
    assert await page.locator(".log img").count() == 0
    assert await page.evaluate("window.pwned") is None
    # The menu buttons send CLICK events.
    await page.click("[data-click=CATEGORIES]")
    await page.locator(".row.bot .bubble", has_text="水果").wait_for()
    assert page.errors == []


async def test_pay_page_simulate_then_paid_and_the_chat_hears_of_it(
    browser: Any, served_shop: tuple[TestServer, str]
) -> None:
    server, base = served_shop
    app = server.app
    order = await place_apple_order(app, "o_browser_payer")

    chat = await _new_page(browser, base)
    await chat.goto(base + "/dev/chat")
    await chat.fill("#openid", "o_browser_payer")
    await chat.click("#switch")
    await chat.locator(".system", has_text="o_browser_payer").wait_for()
    await chat.wait_for_selector("body[data-outbox-ready]", state="attached")

    page = await _new_page(browser, base)
    await page.goto(base + pay_path(app[CONFIG], order))
    # Chinese, one language: where it goes, what it is (with its picture), how to reach a person
    assert await page.locator("h1").inner_text() == "订单支付"
    address = await page.locator("#address").inner_text()
    assert "收货地址" in address and "张三 138****8000" in address and "上海市浦东新区世纪大道100号" in address
    line = page.locator("#lines .line", has_text="烟台红富士苹果")
    assert "3斤装" in await line.inner_text()
    picture = line.locator("img")
    assert (await picture.get_attribute("src")).startswith(base + "/media/")
    assert await picture.evaluate(LOADED), "the picture did not load"
    assert "客服时间" in await page.locator("#contact").inner_text()
    body = await page.locator("main").inner_text()
    assert "Pay" not in body and "Delivery" not in body
    remaining = await page.locator("#remaining").inner_text()
    assert re.fullmatch(r"(29|30):\d\d", remaining), remaining
    await _screenshot(page, "pay_page")

    # The switch: the same page in English, and the payment goes on in English
    await page.click("#lang-switch")
    await page.wait_for_url(re.compile(r".*\?lang=en$"))
    assert await page.locator("h1").inner_text() == "Pay for your order"
    assert "Delivery address" in await page.locator("#address").inner_text()
    assert "订单" not in await page.locator("main").inner_text()
    assert await page.locator("#lang-switch").inner_text() == "中文"
    await page.click("#simulate")
    await page.locator("#result", has_text="Paid").wait_for()
    assert await page.locator("#simulate").is_hidden()
    await _screenshot(page, "pay_paid")

    async with db(app)() as session:
        status = await session.scalar(select(Order.status).where(Order.order_no == order.order_no))
    assert status == "paid"

    # The "order paid" notice goes out after the webhook's window: the chat polls it in.
    await chat.locator(".late", has_text="sent later").wait_for()
    await _screenshot(chat, "dev_chat_paid_notice")

    # Reloading the link now says the order is paid.
    response = await page.reload()
    assert response.status == 409
    assert "already paid" in await page.locator("h1").inner_text()
    await page.click("#lang-switch")
    assert "已经支付" in await page.locator("h1").inner_text()
    await _screenshot(page, "pay_error_paid")
    assert page.errors == [] and chat.errors == []


async def test_group_page_shows_progress_and_the_code(
    browser: Any, served_shop: tuple[TestServer, str]
) -> None:
    from tests.bot.web.test_group import open_apple_group

    server, base = served_shop
    code = await open_apple_group(server.app, "o_browser_leader")
    page = await _new_page(browser, base)
    await page.goto(f"{base}/g/{code}")
    assert "烟台红富士苹果" in await page.locator("h1").inner_text()
    assert "¥19.90" in await page.locator("#group-price").inner_text()
    assert "1/3" in await page.locator("#progress").inner_text()
    assert "拼团中" in await page.locator("#status").inner_text()
    assert await page.locator("#code").inner_text() == code
    image = page.locator("img.product")
    assert await image.evaluate(LOADED), "the picture did not load"
    await _screenshot(page, "group_page")

    missing = await page.goto(f"{base}/g/NOSUCH")
    assert missing is not None and missing.status == 404
    assert "拼团不存在" in await page.locator("h1").inner_text()
    assert page.errors == []



async def test_live_page_count_falls_after_a_purchase(
    browser: Any, sqlite_url: str, aiohttp_server: Callable[..., Awaitable[TestServer]], demo_catalog: None
) -> None:
    """A live drop run from the chat (through the simulator's signed webhook): the live
    page shows the units left and, with no reload, one fewer the moment a customer takes
    one in the chat (server-sent events)."""
    import aiohttp

    owner = "o_live_owner1"
    await seed(sqlite_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = make_config(sqlite_url, server={"base_url": base}, staff={"owners": [owner]})
    await aiohttp_server(create_app(config, outbound=MemoryOutbox()), port=port)

    async with aiohttp.ClientSession() as http:

        async def say(openid: str, text: str) -> str:
            answer = await http.post(f"{base}/dev/chat/send", json={"openid": openid, "text": text})
            reply = (await answer.json())["reply"]
            return str(reply["text"] or reply["articles"][0]["title"])

        await say(owner, "/live start 晚八点直播")
        assert "已开始" in await say(owner, "确认")
        await say(owner, "/live push FRU-APPLE-3J 9.9 5")
        pushed = await say(owner, "确认")
        url = pushed.split("直播页：")[1].split()[0]
        assert url.startswith(base + "/live/")

        page = await _new_page(browser, base)
        await page.goto(url)
        assert "直播价 ¥9.90" in await page.locator("#price").inner_text()
        assert await page.locator("#left").inner_text() == "5"
        assert "抢直播" in await page.locator("#copy-word").inner_text()

        await say("o_live_viewer", "抢直播")  # a unit held (the address step asks for one)
        await page.wait_for_function("document.getElementById('left').textContent === '4'")
        await _screenshot(page, "live_page")
        assert page.errors == []
