"""Catalog commands: add, edit, price, stock, on/off sale (confirmed), photo, import, show.

Products are named by id ("12"); variants by product id (a one-variant product) or SKU
code ("FRU-APPLE-5J"). Prices are typed in yuan ("39.9") and become integer fen through
`commerce.money`, never a float. After every write the customer-facing catalog snapshot is
invalidated, so the next search sees the change.

`/add` of a name the shop already has restates the existing product (its ID, price and
stock) and adds a second one only after a confirmation: the same name twice is most
often a product added twice. `/edit ID FIELD VALUE` changes any field; taking a product
off sale that way is confirmed like `/offsale`. `/photo ID` opens the step in which staff
send the product's pictures (`bot/dialogs/photo.py`).

`/import` takes CSV pasted under the command in the same message, or an http(s) URL
that is fetched (10 s, at most 1 MB, public addresses only, at most 3 redirects).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from bot.admin.registry import (
    ALL_ARGS,
    MANAGERS,
    PREFIXES,
    REGISTRY,
    AdminContext,
    Outcome,
    UsageError,
)
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from commerce import money
from commerce.catalog import admin as catalog_admin
from commerce.catalog import csv_io as catalog_csv
from commerce.catalog import images as catalog_images
from commerce.catalog.admin import PRICE_RANGE, AdminProductView
from commerce.errors import ErrorCode, ShopError
from commerce.reports import stats

FETCH_TIMEOUT_SECONDS = 10.0
FETCH_MAX_BYTES = 1024 * 1024
FETCH_MAX_REDIRECTS = 3
IMPORT_ERRORS_SHOWN = 5
EDIT_FIELDS = {
    **dict.fromkeys(("name", "名称", "名字", "品名"), "name"),
    **dict.fromkeys(("subtitle", "副标题"), "subtitle"),
    **dict.fromkeys(("description", "desc", "描述", "详情", "介绍", "说明"), "description"),
    **dict.fromkeys(("price", "价格", "售价"), "price"),
    **dict.fromkeys(("stock", "库存"), "stock"),
    **dict.fromkeys(("category", "分类", "类目"), "category"),
    **dict.fromkeys(("tags", "tag", "标签"), "tags"),
    **dict.fromkeys(("status", "sale", "状态", "上下架"), "status"),
}
SALE_WORDS = {
    **dict.fromkeys(("on", "on_sale", "onsale", "上架", "在售", "开"), True),
    **dict.fromkeys(("off", "off_sale", "offsale", "下架", "停售", "关"), False),
}
CLEAR_WORDS = frozenset({"clear", "清空", "删除", "delete"})
_TAG_COMMAS = re.compile(r"[,，、;；]")
_STOCK = re.compile(r"^([+-]?)(\d{1,9})(?:件|个|箱|份|盒|袋)?$")  # "20", "+5", "-3", "100件"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


# ---- argument parsing (shared with the coupon commands) -------------------------------------


def parse_yuan(word: str) -> int:
    """Yuan as typed ("39.9", "¥39.90", "40元") to integer fen, exactly.

    Not a number at all: `UsageError`. More than two decimals: PRICE_INVALID (a price
    the shop cannot charge). The range is the commerce core's to check.
    """
    try:  # signs and size are the core's to judge (its range errors say more)
        return money.parse_yuan(word, signed=True, max_decimals=None, max_fen=None)
    except money.MoneyError as exc:
        if exc.code != "too_many_decimals":
            raise UsageError from None
        low, high = PRICE_RANGE
        raise ShopError(ErrorCode.PRICE_INVALID, field="price", min=low, max=high, decimals=2) from None


def parse_id(word: str) -> int:
    word = word.strip().lstrip("#")
    if not (word.isascii() and word.isdigit()) or not 0 < int(word) < 2**31:
        raise UsageError
    return int(word)


def product_data(product: AdminProductView) -> dict[str, object]:
    return {
        "id": product.id,
        "name": product.name,
        "subtitle": product.subtitle,
        "description": product.description,
        "images": product.images,
        "category": product.category,
        "on_sale": product.on_sale,
        "stock": product.total_stock,
        "sales": product.sales_count,
        "variants": [
            {"sku": v.sku_code, "label": v.label, "price": v.price_fen, "stock": v.stock,
             "low": v.stock <= v.low_stock_threshold}
            for v in product.variants
        ],
    }


# ---- commands ------------------------------------------------------------------------------


@REGISTRY.command("add", "新品", "上新", roles=MANAGERS, group="catalog", confirm=True, commas=4)
async def add(actx: AdminContext) -> Outcome:
    """/add 名称 价格 库存 分类 [副标题]: a name the shop has already is confirmed first."""
    if len(actx.args) == 3:  # no category: which there are, and how to name one
        async with unit_of_work(actx.ctx) as session:
            await catalog_admin.find_category(session, "")  # raises CATEGORY_NOT_FOUND with them
    name, price_fen, count, category = actx.arg(0), parse_yuan(actx.arg(1)), actx.arg(2), actx.arg(3)
    if not (count.isascii() and count.isdigit()):
        raise UsageError
    subtitle = " ".join(actx.args[4:])
    if not actx.confirmed:
        async with unit_of_work(actx.ctx) as session:
            same = await catalog_admin.find_named(session, name)
        if same is not None:
            return Outcome(Text("admin/add_duplicate", {**product_data(same), "new_name": name.strip()}),
                           confirm_first=True)
    async with unit_of_work(actx.ctx) as session:
        created, (before, after) = await catalog_admin.create_product(
            session, name=name, price_fen=price_fen, stock=int(count), category=category, subtitle=subtitle
        )
    return Outcome(Text("admin/product_added", product_data(created)), before, after)


@REGISTRY.command("edit", "编辑", "修改", roles=MANAGERS, group="catalog", confirm=True, commas=2)
async def edit(actx: AdminContext) -> Outcome:
    """/edit ID|NAME FIELD VALUE: name, subtitle, description, price (yuan), stock (N, +N, -N),
    category, tags (comma-separated), status (on / off: off is confirmed first). The
    product by its id or its name, as `/product` takes it (the words before the field)."""
    at = next((i for i, word in enumerate(actx.args[1:], 1) if word.lower() in EDIT_FIELDS), None)
    if at is None:
        raise UsageError
    field, text = EDIT_FIELDS[actx.arg(at).lower()], actx.rest(at + 1)
    product_id = await product_id_of(actx, " ".join(actx.args[:at]))
    if field == "price":
        return await _price(actx, str(product_id), parse_yuan(text), typed=text)
    if field == "stock":
        return await _stock(actx, str(product_id), text)
    if field == "status":
        on_sale = SALE_WORDS.get(text.strip().lower())
        if on_sale is None:
            raise UsageError
        if on_sale:
            return await _set_on_sale(actx, product_id=product_id, on_sale=True)
        return await _off_sale(actx, product_id)
    values: dict[str, Any] = {field: _tags(text) if field == "tags" else text}
    async with unit_of_work(actx.ctx) as session:
        before, after = await catalog_admin.edit_product(session, product_id=product_id, **values)
    return Outcome(Text("admin/product_edited", {"id": product_id, "field": field, "before": before,
                                                  "after": after}), before, after)


@REGISTRY.command("price", "改价", "价格", roles=MANAGERS, group="catalog", commas=ALL_ARGS)
async def price(actx: AdminContext) -> Outcome:
    """/price REF 价格"""
    if len(actx.args) != 2:
        raise UsageError
    return await _price(actx, actx.arg(0), parse_yuan(actx.arg(1)), typed=actx.arg(1))


async def _price(actx: AdminContext, ref: str, price_fen: int, *, typed: str) -> Outcome:
    try:
        async with unit_of_work(actx.ctx) as session:
            before, after = await catalog_admin.set_price(session, ref=ref, price_fen=price_fen)
    except ShopError as exc:
        return which_variant(exc, actx, command="price", value=typed)
    return Outcome(Text("admin/price_set", {"before": before, "after": after}), before, after)


LOW_STOCK_LISTED = 30  # /stock alone


@REGISTRY.command("stock", "库存", roles=MANAGERS, group="catalog", commas=ALL_ARGS)
async def stock(actx: AdminContext) -> Outcome:
    """/stock REF 数量|+N|-N; /stock alone: what is running low, the emptiest first."""
    if not actx.args:
        async with unit_of_work(actx.ctx) as session:
            low = await stats.low_stock_rows(session, limit=LOW_STOCK_LISTED)
        return Outcome(Text("admin/stock_low", {"low_stock": list(low)}))
    if len(actx.args) != 2:
        raise UsageError
    return await _stock(actx, actx.arg(0), actx.arg(1))


async def _stock(actx: AdminContext, ref: str, typed: str) -> Outcome:
    match = _STOCK.match(typed.strip())
    if match is None:
        raise UsageError
    sign, number = match.group(1), int(match.group(2))
    change = {"absolute": number} if not sign else {"delta": number if sign == "+" else -number}
    try:
        async with unit_of_work(actx.ctx) as session:
            before, after = await catalog_admin.change_stock(session, ref=ref, **change)
    except ShopError as exc:
        return which_variant(exc, actx, command="stock", value=typed.strip())
    return Outcome(Text("admin/stock_set", {"before": before, "after": after}), before, after)


def which_variant(
    exc: ShopError, actx: AdminContext, *, command: str | None = None, value: str | None = None
) -> Outcome:
    """A product id that names several variants: list their SKUs to choose from, with the
    command to type (`/command SKU value`: by default the command run and its second word).

    Any other error goes on to the usual error sentence."""
    variants = exc.details.get("variants")
    if exc.code != ErrorCode.VARIANT_NOT_FOUND or not variants:
        raise exc
    if value is None:
        value = actx.args[1] if len(actx.args) > 1 else ""
    data = {"id": exc.details.get("product_id"), "name": exc.details.get("name", ""), "variants": variants,
            "command": command or actx.command.name, "value": value}
    return Outcome(Text("admin/choose_sku", data), outcome="failed", after={"error": str(exc.code)})


@REGISTRY.command("onsale", "上架", roles=MANAGERS, group="catalog", commas=ALL_ARGS)
async def onsale(actx: AdminContext) -> Outcome:
    """/onsale ID"""
    return await _set_on_sale(actx, product_id=_single_id(actx), on_sale=True)


@REGISTRY.command("offsale", "下架", roles=MANAGERS, group="catalog", confirm=True, commas=ALL_ARGS)
async def offsale(actx: AdminContext) -> Outcome:
    """/offsale ID: restates the product and its stock, then waits for a confirmation."""
    return await _off_sale(actx, _single_id(actx))


async def _off_sale(actx: AdminContext, product_id: int) -> Outcome:
    if not actx.confirmed:
        async with unit_of_work(actx.ctx) as session:
            found = await catalog_admin.show_product(session, product_id=product_id)
        if not found.on_sale:
            return Outcome(Text("admin/sale_status", {"name": found.name, "id": found.id,
                                                      "on_sale": False, "unchanged": True}))
        return Outcome(Text("admin/offsale_confirm", product_data(found)), confirm_first=True)
    return await _set_on_sale(actx, product_id=product_id, on_sale=False)


def _tags(text: str) -> list[str]:
    """"水果,苹果,green tea" (commas, 、 or ;) or, with none of them, "水果 苹果 新鲜"."""
    parts = _TAG_COMMAS.split(text) if _TAG_COMMAS.search(text) else text.split()
    return [t.strip() for t in parts if t.strip()]


def _single_id(actx: AdminContext) -> int:
    if len(actx.args) != 1:
        raise UsageError
    return parse_id(actx.arg(0))


async def _set_on_sale(actx: AdminContext, *, product_id: int, on_sale: bool) -> Outcome:
    async with unit_of_work(actx.ctx) as session:
        before, after = await catalog_admin.set_on_sale(session, product_id=product_id, on_sale=on_sale)
    data = {"name": after["name"] if after else "", "id": product_id, "on_sale": on_sale,
            "unchanged": bool(before and after and before.get("status") == after.get("status"))}
    return Outcome(Text("admin/sale_status", data), before, after)


@REGISTRY.command("product", "商品", roles=MANAGERS, group="catalog", commas=ALL_ARGS)
async def product(actx: AdminContext) -> Outcome:
    """/product ID|NAME: its variants, prices, stock and status (also when off sale); a
    name fitting several products lists them with their ids."""
    if not actx.args:
        raise UsageError
    product_id = await product_id_of(actx, actx.rest(0))
    async with unit_of_work(actx.ctx) as session:
        found = await catalog_admin.show_product(session, product_id=product_id)
    return Outcome(Text("admin/product", product_data(found)))


async def product_id_of(actx: AdminContext, typed: str) -> int:
    """The product staff named by its id ("12", "#12") or its name (`product_named`: a
    part of it will do; PRODUCT_AMBIGUOUS lists the products it fits, PRODUCT_NOT_FOUND)."""
    typed = typed.strip().lstrip("#")
    if typed.isascii() and typed.isdigit():
        return parse_id(typed)
    async with unit_of_work(actx.ctx) as session:
        named = await catalog_admin.product_named(session, typed)
    if named is None:
        raise ShopError(ErrorCode.PRODUCT_NOT_FOUND, ref=typed)
    return named


@REGISTRY.command("photo", "图片", "配图", "传图", roles=MANAGERS, group="catalog", commas=ALL_ARGS)
async def photo(actx: AdminContext) -> Outcome:
    """/photo ID: then the product's pictures, one image message after another;
    /photo ID clear: remove all its pictures."""
    product_id = parse_id(actx.arg(0))
    if len(actx.args) == 2 and actx.arg(1).lower() in CLEAR_WORDS:
        async with unit_of_work(actx.ctx) as session:
            before, after = await catalog_images.clear_pictures(session, product_id=product_id)
        assert before is not None and after is not None
        data = {"id": product_id, "name": after["name"], "removed": len(before["images"])}
        return Outcome(Text("admin/photo_cleared", data), before, after)
    if len(actx.args) != 1:
        raise UsageError
    async with unit_of_work(actx.ctx) as session:
        found = await catalog_admin.show_product(session, product_id=product_id)
        count = await catalog_images.check_room(session, product_id=product_id)
    reply = await actx.services.dialogs.photo.begin(
        actx.ctx, product_id=found.id, name=found.name, count=count, placeholder=found.images > count
    )
    return Outcome(reply)


@REGISTRY.command("import", "导入", roles=MANAGERS, group="catalog")
async def import_(actx: AdminContext) -> Outcome:
    """/import URL, or /import with CSV lines pasted below it in the same message."""
    body = _body(actx.ctx.msg.text)
    if not body:
        raise UsageError
    source = "paste"
    if "\n" not in body and _SCHEME.match(body):
        text, source = await fetch_csv(body), "url"
    else:
        text = body
    async with unit_of_work(actx.ctx) as session:
        report = await catalog_csv.import_catalog_csv(
            session, text=text, base_url=actx.services.config.public_base_url
        )
    errors = [{"line": line, "message": message} for line, message in report.errors]
    summary = {"source": source, "created": report.created, "updated": report.updated,
               "unchanged": report.unchanged, "errors": len(errors)}
    data = {**summary, "error_lines": errors[:IMPORT_ERRORS_SHOWN],
            "more_errors": max(0, len(errors) - IMPORT_ERRORS_SHOWN)}
    return Outcome(Text("admin/import_done", data), None, summary)


def _body(text: str) -> str:
    """What follows the command word, with its line breaks (the parsed args lose them)."""
    text = text.strip()
    if text.startswith(PREFIXES):
        text = text[1:]
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""


# ---- fetching a CSV from a URL -------------------------------------------------------------


def _is_public(address: str) -> bool:
    """Whether an address is on the public internet (no loopback, private, link-local...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicResolver(AbstractResolver):
    """Resolves names like aiohttp does, but only to public addresses.

    The check happens on the addresses the connection will use, so a name that
    resolves to an internal address (or rebinds to one) cannot reach inside.
    """

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = [r for r in await self._inner.resolve(host, port, family) if _is_public(r["host"])]
        if not results:
            raise OSError(f"{host} has no public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def _check_url(url: URL) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise ShopError(ErrorCode.CSV_INVALID, reason="url")
    host = url.host.strip("[]")
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver checks its addresses
    if not _is_public(host):  # aiohttp connects to an address literal without resolving it
        raise ShopError(ErrorCode.CSV_INVALID, reason="private")


async def fetch_csv(address: str) -> str:
    """The text at an http(s) URL: CSV_INVALID (details: reason) when it cannot be had."""
    try:
        url = URL(address)
    except ValueError:
        raise ShopError(ErrorCode.CSV_INVALID, reason="url") from None
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(resolver=PublicResolver(), limit=2)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector, trust_env=False) as http:
            async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
                raw = await _download(http, url)
    except (aiohttp.ClientError, OSError, TimeoutError):
        raise ShopError(ErrorCode.CSV_INVALID, reason="fetch") from None
    return _decode(raw)


async def _download(http: aiohttp.ClientSession, url: URL) -> bytes:
    for _ in range(FETCH_MAX_REDIRECTS + 1):
        _check_url(url)  # every hop: a redirect may point anywhere
        async with http.get(url, allow_redirects=False, headers={"Accept": "text/csv, text/plain, */*"}) as response:
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                url = url.join(URL(response.headers["Location"]))
                continue
            if response.status != 200:
                raise ShopError(ErrorCode.CSV_INVALID, reason="http", status=response.status)
            if (response.content_length or 0) > FETCH_MAX_BYTES:
                raise ShopError(ErrorCode.CSV_INVALID, reason="too_large", max_bytes=FETCH_MAX_BYTES)
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > FETCH_MAX_BYTES:
                    raise ShopError(ErrorCode.CSV_INVALID, reason="too_large", max_bytes=FETCH_MAX_BYTES)
            return bytes(body)
    raise ShopError(ErrorCode.CSV_INVALID, reason="redirects")


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without a BOM), else GB18030: what Excel saves on a Chinese Windows."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ShopError(ErrorCode.CSV_INVALID, reason="encoding")
