"""Catalog commands in chat: add, edit, price, stock, on/off sale, import, product; through the real app."""

from __future__ import annotations

import dataclasses
import time

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.admin import catalog as catalog_commands
from bot.keys import SERVICES
from commerce.catalog.models import Product, Variant
from commerce.staff.models import AuditEntry
from tests.bot.conftest import OPERATOR, OWNER, SERVICE, STRANGER
from tests.bot.driver import Shop, db
from tests.bot.test_search_chat import numbered

pytestmark = pytest.mark.sqlite_only  # staff commands through the chat: their use cases run on both databases in tests/commerce


async def _audit(shop: Shop, command: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    if command is not None:
        query = query.where(AuditEntry.command == command)
    async with db(shop.client.app)() as session:
        return list((await session.scalars(query)).all())


async def _product(shop: Shop, name: str) -> Product:
    async with db(shop.client.app)() as session:
        product = await session.scalar(select(Product).where(Product.name == name))
        assert product is not None, name
        await session.refresh(product, ["variants"])
        return product


async def _variant(shop: Shop, sku: str) -> Variant:
    async with db(shop.client.app)() as session:
        variant = await session.scalar(select(Variant).where(Variant.sku_code == sku))
        assert variant is not None, sku
        return variant


async def _listed(shop: Shop, query: str) -> str:
    """The numbered lines a customer gets searching for `query`."""
    return "\n".join(numbered((await shop.user("o_shopper_1").say(query)).text).values())


# ---- /add -----------------------------------------------------------------------------


async def test_add_creates_a_product_that_search_finds_at_once(staffed: Shop) -> None:
    assert "冻干榴莲" not in await _listed(staffed, "榴莲")  # also warms the search snapshot
    reply = await staffed.user(OPERATOR).say('/add 冻干榴莲 39.9 30 零食 "泰国金枕 冻干"')
    assert "已上架新品" in reply.text and "冻干榴莲" in reply.text and "¥39.90" in reply.text
    product = await _product(staffed, "冻干榴莲")
    (variant,) = product.variants
    assert (variant.price_fen, variant.stock, product.status, product.subtitle) == (3990, 30, "on_sale", "泰国金枕 冻干")
    assert f"#{product.id}" in reply.text
    assert "冻干榴莲" in await _listed(staffed, "榴莲")

    (entry,) = await _audit(staffed, "add")
    assert (entry.actor, entry.role, entry.outcome) == (OPERATOR, "operator", "ok")
    assert entry.args[:4] == ["冻干榴莲", "39.9", "30", "零食"]
    assert entry.before is None and entry.after["name"] == "冻干榴莲"
    assert entry.after["variants"][0]["price_fen"] == 3990


@pytest.mark.parametrize(("typed", "fen"), [("39.9", 3990), ("0.1", 10), ("¥12", 1200), ("19.99", 1999), ("7元", 700)])
async def test_prices_in_yuan_become_exact_fen(sqlite_staffed: Shop, typed: str, fen: int) -> None:
    reply = await sqlite_staffed.user(OWNER).say(f"/add 测试商品 {typed} 5 零食")
    assert "已上架新品" in reply.text, reply.text
    assert (await _product(sqlite_staffed, "测试商品")).variants[0].price_fen == fen


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/add", "参数不对"),
        ("/add 榴莲", "参数不对"),
        ("/add 榴莲 abc 5 零食", "参数不对"),
        ("/add 榴莲 39.9 many 零食", "参数不对"),
        ("/add 榴莲 39.9 -5 零食", "参数不对"),
        ("/add 榴莲 39.999 5 零食", "最多两位小数"),
        ("/add 榴莲 0 5 零食", "价格需在 ¥0.01"),
        ("/add 榴莲 39.9 5 玩具", "没有「玩具」这个分类"),
    ],
)
async def test_add_refuses_wrong_arguments(sqlite_staffed: Shop, command: str, expected: str) -> None:
    reply = await sqlite_staffed.user(OWNER).say(command)
    assert expected in reply.text, reply.text
    if expected == "参数不对":
        assert "/add 名称 价格 库存 分类" in reply.text
    async with db(sqlite_staffed.client.app)() as session:
        assert await session.scalar(select(Product.id).where(Product.name == "榴莲")) is None


async def test_a_failed_add_is_audited_as_failed(sqlite_staffed: Shop) -> None:
    await sqlite_staffed.user(OWNER).say("/add 榴莲 39.9 5 玩具")
    (entry,) = await _audit(sqlite_staffed, "add")
    assert entry.outcome == "failed" and entry.after == {"error": "category_not_found"}


# ---- who may run the catalog commands -------------------------------------------------------


@pytest.mark.parametrize("command", ["/add 榴莲 39.9 5 零食", "/price FRU-BANANA-3J 1", "/stock 3 0", "/offsale 3",
                                     "/onsale 18", "/edit 3 name 香蕉王", "/import x", "/product 3"])
async def test_service_staff_may_not_change_the_catalog(staffed: Shop, command: str) -> None:
    before = await _variant(staffed, "FRU-BANANA-3J")
    reply = await staffed.user(SERVICE).say(command)
    assert "您的角色不能使用" in reply.text
    after = await _variant(staffed, "FRU-BANANA-3J")
    assert (after.price_fen, after.stock) == (before.price_fen, before.stock)
    entries = await _audit(staffed)
    assert (entries[-1].actor, entries[-1].role, entries[-1].outcome) == (SERVICE, "service", "refused")


async def test_service_help_does_not_list_catalog_commands(staffed: Shop) -> None:
    assert "/add" not in (await staffed.user(SERVICE).say("/help")).text
    owner_help = (await staffed.user(OWNER).say("/help")).text
    for command in ("/add", "/edit", "/price", "/stock", "/onsale", "/offsale", "/import", "/product"):
        assert command in owner_help


async def test_a_stranger_typing_a_catalog_command_just_searches(staffed: Shop) -> None:
    before = await _variant(staffed, "FRU-BANANA-3J")
    reply = await staffed.user(STRANGER).say("/price FRU-BANANA-3J 0.01")
    assert "改价" not in reply.text and "参数" not in reply.text and "/help" not in reply.text
    assert "找到" in reply.text  # an ordinary search answer (or "nothing found")
    assert (await _variant(staffed, "FRU-BANANA-3J")).price_fen == before.price_fen
    entry = (await _audit(staffed))[-1]
    assert (entry.actor, entry.role, entry.command, entry.outcome) == (STRANGER, "", "price", "refused")
    assert "已上架" not in (await staffed.user(STRANGER).say("/新品 榴莲 1 1 零食")).text


# ---- /price, /stock, /edit ------------------------------------------------------------------


async def test_price_change_is_seen_by_search_at_once(staffed: Shop) -> None:
    banana = await _product(staffed, "香蕉")
    assert "¥12.90" in await _listed(staffed, "香蕉")
    reply = await staffed.user(OWNER).say(f"/price {banana.id} 15.5")
    assert "已改价" in reply.text and "¥12.90 → ¥15.50" in reply.text
    assert (await _variant(staffed, "FRU-BANANA-3J")).price_fen == 1550
    listed = await _listed(staffed, "香蕉")
    assert "¥15.50" in listed and "¥12.90" not in listed

    assert "¥42.90" in (await staffed.user(OPERATOR).say("/改价 fru-apple-5j 42.9")).text  # by SKU, any case
    assert (await _variant(staffed, "FRU-APPLE-5J")).price_fen == 4290
    first, second = await _audit(staffed, "price")
    assert (first.actor, first.before["price_fen"], first.after["price_fen"]) == (OWNER, 1290, 1550)
    assert (second.actor, second.before["price_fen"], second.after["price_fen"]) == (OPERATOR, 4590, 4290)


async def test_price_of_a_product_with_several_variants_asks_for_the_sku(staffed: Shop) -> None:
    apple = await _product(staffed, "烟台红富士苹果")
    reply = await staffed.user(OWNER).say(f"/price {apple.id} 30")
    assert "有 3 个规格" in reply.text and "FRU-APPLE-5J" in reply.text and "/price FRU-APPLE-3J 30" in reply.text
    assert (await _variant(staffed, "FRU-APPLE-3J")).price_fen == 2990
    (entry,) = await _audit(staffed, "price")
    assert entry.outcome == "failed"


@pytest.mark.parametrize(
    ("command", "expected"),
    [("/price", "参数不对"), ("/price FRU-BANANA-3J", "参数不对"), ("/price FRU-BANANA-3J cheap", "参数不对"),
     ("/price FRU-BANANA-3J 1 2", "参数不对"), ("/price NO-SUCH-SKU 9.9", "没有找到「NO-SUCH-SKU」"),
     ("/price 99999 9.9", "没有找到商品 #99999")],
)
async def test_price_refuses_wrong_arguments(sqlite_staffed: Shop, command: str, expected: str) -> None:
    reply = await sqlite_staffed.user(OWNER).say(command)
    assert expected in reply.text, reply.text
    assert (await _variant(sqlite_staffed, "FRU-BANANA-3J")).price_fen == 1290


async def test_stock_set_add_and_take_away(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    assert "200 → 50" in (await owner.say("/stock FRU-BANANA-3J 50")).text
    assert "50 → 60" in (await owner.say("/库存 FRU-BANANA-3J +10")).text
    assert "60 → 55" in (await owner.say("/stock FRU-BANANA-3J -5")).text
    assert (await _variant(staffed, "FRU-BANANA-3J")).stock == 55
    refused = await owner.say("/stock FRU-BANANA-3J -56")
    assert "库存不够：现有 55 件" in refused.text
    assert (await _variant(staffed, "FRU-BANANA-3J")).stock == 55
    entries = await _audit(staffed, "stock")
    assert [(e.before["stock"], e.after["stock"]) for e in entries if e.outcome == "ok"] == [(200, 50), (50, 60), (60, 55)]
    assert entries[-1].outcome == "failed"


async def test_stock_zero_shows_as_out_of_stock_in_search(staffed: Shop) -> None:
    banana = await _product(staffed, "香蕉")
    await _listed(staffed, "香蕉")
    await staffed.user(OWNER).say(f"/stock {banana.id} 0")
    line = next(v for v in numbered((await staffed.user("o_shopper_1").say("香蕉")).text).values() if "香蕉" in v)
    assert "缺货" in line


@pytest.mark.parametrize("command", ["/stock FRU-BANANA-3J", "/stock FRU-BANANA-3J lots", "/stock FRU-BANANA-3J 1.5",
                                     "/stock FRU-BANANA-3J ++1"])
async def test_stock_refuses_wrong_arguments(sqlite_staffed: Shop, command: str) -> None:
    reply = await sqlite_staffed.user(OWNER).say(command)
    assert "参数不对" in reply.text and "/stock" in reply.text


async def test_edit_name_and_subtitle(staffed: Shop) -> None:
    banana = await _product(staffed, "香蕉")
    await _listed(staffed, "香蕉")
    reply = await staffed.user(OWNER).say(f"/edit {banana.id} name 海南香蕉 特级")
    assert "「香蕉」→「海南香蕉 特级」" in reply.text
    reply = await staffed.user(OWNER).say(f'/编辑 {banana.id} 副标题 "Hainan bananas"')
    assert "→「Hainan bananas」" in reply.text
    edited = await _product(staffed, "海南香蕉 特级")
    assert edited.subtitle == "Hainan bananas"
    assert "海南香蕉 特级" in await _listed(staffed, "香蕉")
    first, second = await _audit(staffed, "edit")
    assert (first.before["name"], first.after["name"]) == ("香蕉", "海南香蕉 特级")
    assert second.after["subtitle"] == "Hainan bananas"


@pytest.mark.parametrize(("command", "expected"), [("/edit", "参数不对"), ("/edit 3", "参数不对"), ("/edit 3 name", "参数不对"),
                                                   ("/edit 3 colour red", "参数不对"), ("/edit 没有这种东西 name y", "没有名称含「没有这种东西」的商品"),
                                                   ("/edit x name y", "没有名称含「x」的商品"),
                                                   ("/edit 99999 name y", "没有找到商品")])
async def test_edit_refuses_wrong_arguments(sqlite_staffed: Shop, command: str, expected: str) -> None:
    assert expected in (await sqlite_staffed.user(OWNER).say(command)).text


# ---- /product, /onsale, /offsale ------------------------------------------------------------


async def test_product_shows_variants_stock_and_status(staffed: Shop) -> None:
    apple = await _product(staffed, "烟台红富士苹果")
    reply = await staffed.user(OPERATOR).say(f"/product {apple.id}")
    assert f"#{apple.id}「烟台红富士苹果」在售" in reply.text
    assert "FRU-APPLE-5J 5斤装 ¥45.90 库存80" in reply.text
    assert "FRU-APPLE-10J 10斤装 ¥79.90 库存0（缺货）" in reply.text
    tea = await _product(staffed, "菊花枸杞茶")
    assert "已下架" in (await staffed.user(OPERATOR).say(f"/商品 {tea.id}")).text
    assert "参数不对" in (await staffed.user(OPERATOR).say("/product")).text
    assert "没有找到商品" in (await staffed.user(OPERATOR).say("/product 99999")).text


async def test_offsale_confirmed_hides_the_product(staffed: Shop) -> None:
    banana = await _product(staffed, "香蕉")
    assert "香蕉" in await _listed(staffed, "香蕉")
    owner = staffed.user(OPERATOR)
    ask = await owner.say(f"/offsale {banana.id}")
    assert "将下架" in ask.text and "「香蕉」" in ask.text and "当前库存 200 件" in ask.text and "确认码" in ask.text
    assert (await _product(staffed, "香蕉")).status == "on_sale"  # nothing happens before the confirmation
    done = await owner.say("确认")
    assert "已下架" in done.text
    assert (await _product(staffed, "香蕉")).status == "off_sale"
    assert "香蕉" not in await _listed(staffed, "香蕉")
    (entry,) = await _audit(staffed, "offsale")
    assert (entry.actor, entry.outcome, entry.before["status"], entry.after["status"]) == (
        OPERATOR, "ok", "on_sale", "off_sale")

    back = await owner.say(f"/上架 {banana.id}")
    assert "已上架" in back.text
    assert "香蕉" in await _listed(staffed, "香蕉")
    (entry,) = await _audit(staffed, "onsale")
    assert (entry.before["status"], entry.after["status"]) == ("off_sale", "on_sale")


async def test_offsale_confirmed_with_the_code(staffed: Shop) -> None:
    banana = await _product(staffed, "香蕉")
    ask = await staffed.user(OWNER).say(f"/下架 {banana.id}")
    code = ask.text.split("确认码 ")[1][:4]
    assert "已下架" in (await staffed.user(OWNER).say(code)).text
    assert (await _product(staffed, "香蕉")).status == "off_sale"


async def test_offsale_refused_keeps_the_product(staffed: Shop) -> None:
    banana = await _product(staffed, "香蕉")
    await staffed.user(OWNER).say(f"/offsale {banana.id}")
    assert "已取消" in (await staffed.user(OWNER).say("不了")).text
    assert (await _product(staffed, "香蕉")).status == "on_sale"
    assert "香蕉" in await _listed(staffed, "香蕉")
    (entry,) = await _audit(staffed, "offsale")
    assert (entry.outcome, entry.before, entry.after) == ("cancelled", None, None)


async def test_offsale_timed_out_keeps_the_product(staffed: Shop) -> None:
    banana = await _product(staffed, "香蕉")
    await staffed.user(OWNER).say(f"/offsale {banana.id}")
    store = staffed.client.app[SERVICES].dialogs.store
    stored = await store.get(OWNER)
    assert stored is not None and stored.dialog == "confirm"
    await store.put(OWNER, dataclasses.replace(stored, data={**stored.data, "deadline": time.time() - 1}))
    assert "超时" in (await staffed.user(OWNER).say("确认")).text
    assert (await _product(staffed, "香蕉")).status == "on_sale"
    (entry,) = await _audit(staffed, "offsale")
    assert entry.outcome == "expired"


async def test_offsale_of_an_off_sale_product_asks_nothing(staffed: Shop) -> None:
    tea = await _product(staffed, "菊花枸杞茶")
    reply = await staffed.user(OWNER).say(f"/offsale {tea.id}")
    assert "本来就是下架状态" in reply.text and "确认码" not in reply.text
    assert "/help" in (await staffed.user(OWNER).say("/help")).text  # no confirmation is pending


@pytest.mark.parametrize(("command", "expected"), [("/offsale", "参数不对"), ("/offsale 3 4", "参数不对"),
                                                   ("/offsale abc", "参数不对"), ("/offsale 99999", "没有找到商品"),
                                                   ("/onsale", "参数不对"), ("/onsale 99999", "没有找到商品")])
async def test_sale_status_refuses_wrong_arguments(sqlite_staffed: Shop, command: str, expected: str) -> None:
    reply = await sqlite_staffed.user(OWNER).say(command)
    assert expected in reply.text and "确认码" not in reply.text


# ---- /import --------------------------------------------------------------------------------

CSV = (
    "sku_code,name,subtitle,category,price_yuan,stock,status,spec\n"
    "FRU-BANANA-3J,香蕉,,水果,13.50,150,on_sale,\n"
    'NEW-DURIAN-1,"冻干榴莲, 金枕",泰国,零食,59.90,20,on_sale,规格=100g\n'
    "BAD-1,坏行,,零食,abc,1,,\n"
)


async def test_import_pasted_csv(staffed: Shop) -> None:
    await _listed(staffed, "榴莲")
    reply = await staffed.user(OPERATOR).say("/import\n" + CSV)
    assert "导入完成" in reply.text and "新增 1 个规格" in reply.text and "更新 1 个" in reply.text
    assert "1 行有误" in reply.text and "第 4 行" in reply.text
    assert (await _variant(staffed, "FRU-BANANA-3J")).price_fen == 1350
    durian = await _variant(staffed, "NEW-DURIAN-1")
    assert (durian.price_fen, durian.stock, durian.spec) == (5990, 20, {"规格": "100g"})
    assert "冻干榴莲, 金枕" in await _listed(staffed, "榴莲")
    (entry,) = await _audit(staffed, "import")
    assert entry.outcome == "ok" and entry.after == {"source": "paste", "created": 1, "updated": 1, "unchanged": 0,
                                                     "errors": 1}


async def test_import_without_a_header_changes_nothing(sqlite_staffed: Shop) -> None:
    reply = await sqlite_staffed.user(OWNER).say("/导入\nFRU-BANANA-3J,香蕉,,水果,13.50,150,on_sale,")
    assert "CSV 缺少列" in reply.text
    assert (await _variant(sqlite_staffed, "FRU-BANANA-3J")).price_fen == 1290
    assert "参数不对" in (await sqlite_staffed.user(OWNER).say("/import")).text
    assert "CSV 表头" in (await sqlite_staffed.user(OWNER).say("/import")).text


async def _serve(aiohttp_server, routes: dict[str, web.Response | bytes]):  # type: ignore[no-untyped-def]
    app = web.Application()
    for path, answer in routes.items():
        async def handler(request: web.Request, answer=answer) -> web.StreamResponse:
            return answer if isinstance(answer, web.Response) else web.Response(body=answer)
        app.router.add_get(path, handler)
    return await aiohttp_server(app)


async def test_import_from_a_url(sqlite_staffed: Shop, aiohttp_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(catalog_commands, "_is_public", lambda address: True)  # the test server is on 127.0.0.1
    gbk = CSV.replace("BAD-1,坏行,,零食,abc,1,,\n", "").encode("gb18030")
    server = await _serve(aiohttp_server, {
        "/catalog.csv": ("\ufeff" + CSV).encode("utf-8"),
        "/excel.csv": gbk,
        "/moved": web.Response(status=302, headers={"Location": "/catalog.csv"}),
        "/missing": web.Response(status=404),
        "/huge": b"x" * (catalog_commands.FETCH_MAX_BYTES + 1),
    })
    owner = sqlite_staffed.user(OWNER)
    reply = await owner.say(f"/import {server.make_url('/moved')}")
    assert "导入完成（来自链接）" in reply.text and "新增 1 个规格" in reply.text
    assert (await _variant(sqlite_staffed, "NEW-DURIAN-1")).price_fen == 5990
    assert "未变 2 个" in (await owner.say(f"/import {server.make_url('/excel.csv')}")).text
    assert "服务器返回 404" in (await owner.say(f"/import {server.make_url('/missing')}")).text
    assert "文件太大" in (await owner.say(f"/import {server.make_url('/huge')}")).text
    outcomes = [(e.outcome, (e.after or {}).get("error")) for e in await _audit(sqlite_staffed, "import")]
    assert outcomes == [("ok", None), ("ok", None), ("failed", "csv_invalid"), ("failed", "csv_invalid")]


async def test_import_refuses_internal_addresses_and_other_schemes(sqlite_staffed: Shop, aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    server = await _serve(aiohttp_server, {"/catalog.csv": CSV.encode()})
    owner = sqlite_staffed.user(OWNER)
    assert "内网地址" in (await owner.say(f"/import {server.make_url('/catalog.csv')}")).text
    local_name = f"http://localhost:{server.port}/catalog.csv"
    assert "没能下载" in (await owner.say(f"/import {local_name}")).text  # the name resolves to loopback: refused
    assert "只支持 http 或 https" in (await owner.say("/import ftp://example.com/catalog.csv")).text
    assert "只支持 http 或 https" in (await owner.say("/import file:///etc/passwd")).text
    assert (await _variant(sqlite_staffed, "FRU-BANANA-3J")).price_fen == 1290


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.1.1", False), ("169.254.169.254", False),
     ("::1", False), ("::ffff:127.0.0.1", False), ("fe80::1%eth0", False), ("2001:4860:4860::8888", True), ("0.0.0.0", False)],
)
def test_only_public_addresses_are_fetched(address: str, public: bool) -> None:
    assert catalog_commands._is_public(address) is public


@pytest.mark.parametrize(("typed", "fen"), [("39.9", 3990), ("39.90", 3990), (".5", 50), ("¥1", 100), ("￥2.5", 250), ("3元", 300)])
def test_parse_yuan_is_exact(typed: str, fen: int) -> None:
    assert catalog_commands.parse_yuan(typed) == fen


# ---- /edit of every field, /add of a name the shop has -------------------------------------------


async def _added(shop: Shop, command: str) -> int:
    reply = await shop.user(OWNER).say(command)
    assert "已上架新品" in reply.text, reply.text
    return int(reply.text.split("#", 1)[1].split("「", 1)[0])


async def test_edit_changes_every_field(sqlite_staffed: Shop) -> None:
    owner = sqlite_staffed.user(OWNER)
    product_id = await _added(sqlite_staffed, "/add 秋月梨 10 5 水果")

    reply = await owner.say(f"/edit {product_id} description 果肉细腻，汁水足，冷藏更好吃")
    assert "描述：「」→「果肉细腻，汁水足，冷藏更好吃」" in reply.text
    assert "¥10.00 → ¥12.50" in (await owner.say(f"/edit {product_id} price 12.5")).text
    assert "5 → 10" in (await owner.say(f"/edit {product_id} stock +5")).text
    assert "10 → 3" in (await owner.say(f"/编辑 {product_id} 库存 3")).text
    assert "分类：「水果」→「零食」" in (await owner.say(f"/edit {product_id} 分类 零食")).text
    assert "标签：「」→「pear、梨、秋月」" in (await owner.say(f"/edit {product_id} tags 梨,pear，秋月")).text
    product = await _product(sqlite_staffed, "秋月梨")
    assert product.description == "果肉细腻，汁水足，冷藏更好吃"
    assert (product.variants[0].price_fen, product.variants[0].stock) == (1250, 3)
    assert "秋月梨" in await _listed(sqlite_staffed, "秋月")  # found by its new tag
    assert "「pear、梨、秋月」→「pear、梨」" in (await owner.say(f"/edit {product_id} tags 梨 pear")).text
    assert "→「asian pear」" in (await owner.say(f"/edit {product_id} 标签 asian pear,")).text  # a comma: one tag

    ask = await owner.say(f"/edit {product_id} status off")  # off sale: restated, then confirmed
    assert "将下架" in ask.text and "确认码" in ask.text
    assert (await _product(sqlite_staffed, "秋月梨")).status == "on_sale"
    assert "已下架" in (await owner.say("确认")).text
    assert (await _product(sqlite_staffed, "秋月梨")).status == "off_sale"
    assert "已上架" in (await owner.say(f"/edit {product_id} 状态 上架")).text
    assert (await _product(sqlite_staffed, "秋月梨")).status == "on_sale"

    entries = await _audit(sqlite_staffed, "edit")
    fields = [next(k for k in (e.after or {}) if k in ("description", "price_fen", "stock", "category", "tags", "status"))
              for e in entries if e.outcome == "ok"]
    assert fields == ["description", "price_fen", "stock", "stock", "category", "tags", "tags", "tags", "status",
                      "status"]
    (category,) = [e for e in entries if e.after and "category" in e.after]
    assert (category.before["category"], category.after["category"]) == ("水果", "零食")


@pytest.mark.parametrize(
    "command",
    ["/edit 3 price cheap", "/edit 3 stock many", "/edit 3 stock 1.5", "/edit 3 status maybe", "/edit 3 colour red",
     "/edit 3 price"],
)
async def test_a_bad_edit_gets_the_usage_with_an_example(sqlite_staffed: Shop, command: str) -> None:
    reply = await sqlite_staffed.user(OWNER).say(command)
    assert "参数不对" in reply.text and "例如：/edit 12 price 39.9" in reply.text, reply.text
    assert "描述、价格（元）" in reply.text and "状态（上架/下架）" in reply.text


@pytest.mark.parametrize(
    ("command", "expected"),
    [("/edit 3 price 39.999", "最多两位小数"), ("/edit 3 category 玩具", "没有「玩具」这个分类"),
     ("/edit 3 description " + "长" * 1001, "描述需为 0 到 1000 个字"), ("/edit 3 tags " + "x" * 33, "每个标签 1 到 32 个字"),
     ("/edit 99999 description 好吃", "没有找到商品 #99999")],
)
async def test_an_edit_the_shop_cannot_take_says_why(sqlite_staffed: Shop, command: str, expected: str) -> None:
    assert expected in (await sqlite_staffed.user(OWNER).say(command)).text


async def test_edit_price_of_a_product_with_several_variants_names_the_price_command(sqlite_staffed: Shop) -> None:
    apple = await _product(sqlite_staffed, "烟台红富士苹果")
    reply = await sqlite_staffed.user(OWNER).say(f"/edit {apple.id} price 30")
    assert "有 3 个规格" in reply.text and "/price FRU-APPLE-3J 30" in reply.text
    assert (await _variant(sqlite_staffed, "FRU-APPLE-3J")).price_fen == 2990


async def test_adding_a_name_the_shop_has_restates_it_and_waits_for_a_confirmation(sqlite_staffed: Shop) -> None:
    banana = await _product(sqlite_staffed, "香蕉")
    owner = sqlite_staffed.user(OWNER)
    ask = await owner.say("/add 香蕉 9.9 10 水果")
    assert f"已经有同名商品 #{banana.id}「香蕉」" in ask.text and f"/edit {banana.id}" in ask.text
    assert "确认码" in ask.text and "已上架新品" not in ask.text
    assert "已取消" in (await owner.say("算了")).text
    async with db(sqlite_staffed.client.app)() as session:
        assert len((await session.scalars(select(Product).where(Product.name == "香蕉"))).all()) == 1

    await owner.say("/add 香蕉 9.9 10 水果")
    assert "已上架新品" in (await owner.say("确认")).text  # a second one, as asked
    async with db(sqlite_staffed.client.app)() as session:
        assert len((await session.scalars(select(Product).where(Product.name == "香蕉"))).all()) == 2
    assert "已经有同名商品" in (await owner.say("/add 香蕉 9.9 10 水果")).text  # any case of it: " 香蕉 " too


# ---- products named in words ("/price 香蕉 15", "/product 龙井") ------------------------------


async def test_a_product_is_named_by_its_name(staffed: Shop) -> None:
    owner = staffed.user(OWNER)
    banana = await _product(staffed, "香蕉")
    priced = await owner.say("/price 香蕉 15")  # one product, one variant: its price
    assert "15.00" in priced.text, priced.text
    async with db(staffed.client.app)() as session:
        assert await session.scalar(select(Variant.price_fen).where(Variant.product_id == banana.id)) == 1500
    shown = await owner.say("/product 龙井")  # a part of the name
    assert "西湖龙井" in shown.text and "/price SKU" in shown.text, shown.text
    several = await owner.say("/stock 苹果 +5")  # two apple products: their ids to choose from
    apples = [await _product(staffed, "烟台红富士苹果"), await _product(staffed, "阿克苏冰糖心苹果")]
    assert all(f"#{p.id} {p.name}" in several.text for p in apples), several.text
    assert all(f"· #{p.id} {p.name}" in several.text.splitlines() for p in apples), several.text  # a line each
    variants = await owner.say("/stock 烟台红富士苹果 +5")  # the whole name, three variants: their SKUs
    assert "FRU-APPLE-3J" in variants.text and "/stock FRU-APPLE-3J +5" in variants.text, variants.text


@pytest.mark.parametrize(("command", "says"), [
    ("/product 哈密瓜", "没有名称含「哈密瓜」的商品"),
    ("/price 哈密瓜 35", "没有找到「哈密瓜」"),
    ("/product %", "没有名称含「%」的商品"),  # a LIKE wildcard is a character like any other
    ("/product _", "没有名称含「_」的商品"),
])
async def test_a_name_that_fits_no_product_is_said(staffed: Shop, command: str, says: str) -> None:
    reply = await staffed.user(OWNER).say(command)
    assert says in reply.text, reply.text


async def test_add_without_a_category_names_the_categories(sqlite_staffed: Shop) -> None:
    reply = await sqlite_staffed.user(OWNER).say("/add 新疆哈密瓜 39.9 20")
    assert "请写上商品的分类" in reply.text and "水果" in reply.text and "茶饮" in reply.text, reply.text
    async with db(sqlite_staffed.client.app)() as session:
        assert await session.scalar(select(Product.id).where(Product.name == "新疆哈密瓜")) is None
    added = await sqlite_staffed.user(OWNER).say("/add 新疆哈密瓜 39.9 20 水果")
    assert "新疆哈密瓜" in added.text and "没有" not in added.text, added.text


async def test_numbers_typed_in_full_width_are_read(staffed: Shop) -> None:
    """A Chinese keyboard in full-width mode types "３５．８", "＋１０" and an ideographic space:
    they used to get the usage line. Free text keeps its own punctuation."""
    owner = staffed.user(OWNER)
    banana = await _product(staffed, "香蕉")
    assert "¥35.80" in (await owner.say("/price 香蕉 ３５．８")).text
    assert "¥16.00" in (await owner.say("/改价　香蕉　１６元")).text
    assert "200 → 210" in (await owner.say("/stock 香蕉 ＋１０")).text
    assert "210 → 100" in (await owner.say("/stock 香蕉 100件")).text
    assert "100 → 97" in (await owner.say(f"/stock ＃{banana.id} －３")).text
    variant = await _variant(staffed, "FRU-BANANA-3J")
    assert (variant.price_fen, variant.stock) == (1600, 97)
    await owner.say(f"/edit {banana.id} 描述 海南直发，坏果包赔（１年）")
    assert (await _product(staffed, "香蕉")).description == "海南直发，坏果包赔（１年）"
    assert [e.args[-1] for e in await _audit(staffed, "stock") if e.outcome == "ok"] == ["+10", "100件", "-3"]


async def test_a_near_miss_category_suggests_the_closest(sqlite_staffed: Shop) -> None:
    reply = await sqlite_staffed.user(OWNER).say("/add 桂花乌龙 68 30 茶叶")
    assert "没有「茶叶」这个分类，是「茶饮」吗？现有分类：水果、茶饮" in reply.text, reply.text
    far = await sqlite_staffed.user(OWNER).say("/add 桂花乌龙 68 30 玩具")
    assert "没有「玩具」这个分类。现有分类：水果" in far.text, far.text
    english = await sqlite_staffed.user(OWNER).say("/add 桂花乌龙 68 30 tea")  # near its English name
    assert "没有「tea」这个分类，是「茶饮」吗？" in english.text, english.text
    assert "已上架新品" in (await sqlite_staffed.user(OWNER).say("/add 桂花乌龙 68 30 茶饮")).text


async def test_edit_names_the_product_as_price_does(staffed: Shop) -> None:
    """"/edit 阳光玫瑰 price 33" used to get the usage line though /price takes names."""
    owner = staffed.user(OWNER)
    banana = await _product(staffed, "香蕉")
    priced = await owner.say("/edit 香蕉 price 33")
    assert "¥33.00" in priced.text, priced.text
    assert (await _variant(staffed, "FRU-BANANA-3J")).price_fen == 3300
    renamed = await owner.say("/edit 香蕉 副标题 海南直发")  # a part of the name will do as well
    assert "海南直发" in renamed.text and (await _product(staffed, "香蕉")).subtitle == "海南直发"
    await owner.say("/edit 龙井 描述 明前采摘")
    assert (await _product(staffed, "西湖龙井")).description == "明前采摘"
    several = await owner.say("/edit 苹果 price 9.9")
    apples = [await _product(staffed, "烟台红富士苹果"), await _product(staffed, "阿克苏冰糖心苹果")]
    assert all(f"#{p.id} {p.name}" in several.text for p in apples), several.text
    off = await owner.say("/edit 香蕉 状态 下架")
    assert "确认码" in off.text and (await _product(staffed, "香蕉")).status == "on_sale"
    await owner.say("确认")
    assert (await _product(staffed, banana.name)).status == "off_sale"


async def test_chinese_commas_separate_the_values_of_catalog_commands(staffed: Shop) -> None:
    """"/price 阳光玫瑰，36" used to get the usage line: a Chinese keyboard types "，" or "、"
    between values. Free text after them (a subtitle, an edited description) keeps its commas."""
    owner = staffed.user(OWNER)
    banana = await _product(staffed, "香蕉")
    assert "¥36.00" in (await owner.say("/price 香蕉，36")).text
    assert "200 → 210" in (await owner.say("/stock 香蕉，+10")).text
    assert "210 → 215" in (await owner.say("/库存 香蕉、＋５")).text
    added = await owner.say("/add 红心火龙果，29.9，40，水果，甜，红心")
    assert "已上架新品" in added.text and "红心火龙果" in added.text, added.text
    dragon = await _product(staffed, "红心火龙果")
    assert dragon.subtitle == "甜，红心"
    await owner.say(f"/edit {banana.id}，描述，海南直发，坏果包赔")
    assert (await _product(staffed, "香蕉")).description == "海南直发，坏果包赔"
    shown = await owner.say(f"/product {dragon.id}，")
    assert "红心火龙果" in shown.text and "参数不对" not in shown.text
    assert [e.args for e in await _audit(staffed, "price") if e.outcome == "ok"] == [["香蕉", "36"]]
