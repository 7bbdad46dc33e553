"""Web pages the chat links to: the product page behind a product card, and what every
page shares (`render_page`: the page's language and its 中文 / English switch).

Pages speak one language at a time, Chinese unless the link says `?lang=en` (or, for a
page of one customer's, that customer chats in English; else `shop.locale`); each page
links to the other language. The words themselves stay in the templates: `t("中文",
"English")` there picks one.

Below the variants, the product's visible reviews (买家秀: stars, words, photos), newest
first, with their average. The product page ends with what to do next. A page inside WeChat cannot send a chat
message for the customer, so it does what Chinese shops in a 公众号 do: a button copies
the word that opens this product in the chat (`商品 ID`), with the instruction to paste
it there, and, when the shop has a WeChat client, the product's QR code, whose long
press opens the account on the product's card.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

import templates
from bot.chat.render import yuan
from bot.keys import CONFIG, RENDERER, SERVICES
from bot.wechat.scenes import PRODUCT_ID_MAX, ProductShare
from commerce.reviews import actions as reviews

PAGES_DIR = Path(templates.__file__).parent / "pages"
PAGES = web.AppKey("pages", jinja2.Environment)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PAGES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["yuan"] = yuan
    return env


LANGS = ("zh", "en")


def page_lang(request: web.Request, default: str | None = None) -> str:
    """`?lang=zh|en` when the link says, else `default` (a customer's own locale), else the shop's."""
    asked = request.query.get("lang", "")
    if asked in LANGS:
        return asked
    for fallback in (default, request.app[CONFIG].shop.locale):
        if fallback in LANGS:
            return str(fallback)
    return "zh"


def render_page(
    request: web.Request,
    name: str,
    data: Mapping[str, Any],
    *,
    lang: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """One page in one language, with `shop`, `lang`, `t(zh, en)` and `other_lang_url` (the switch)."""
    other = "en" if lang == "zh" else "zh"
    # a query-only link (the same path): a pay page's token never appears in its HTML
    query = urlencode({**request.query, "lang": other})
    html = request.app[PAGES].get_template(name).render(
        shop=request.app[CONFIG].shop.name,
        lang=lang,
        t=lambda zh, en: en if lang == "en" else zh,
        other_lang_url=f"?{query}",
        **data,
    )
    return web.Response(status=status, text=html, content_type="text/html", headers=headers)


REVIEWS_SHOWN = 10
_PRODUCT_ID = re.compile(r"[1-9][0-9]{0,9}")
OPEN_WORD = {"zh": "商品 {id}", "en": "product {id}"}
"""What a customer sends in the chat to open a product's card (bot/handlers/text.py)."""


async def product_page(request: web.Request) -> web.Response:
    raw = request.match_info["product_id"]
    # ASCII digits within the column's range: int() alone takes "１２", " 12" and numbers
    # no database integer holds (an overflow there was a 500).
    product_id = int(raw) if _PRODUCT_ID.fullmatch(raw) and int(raw) <= PRODUCT_ID_MAX else None
    services = request.app[SERVICES]
    product = await services.catalog.product(product_id) if product_id else None
    lang = page_lang(request)
    if product is None:
        return render_page(request, "not_found.html", {}, lang=lang, status=404)
    qr_url = await services.invites.image_url(ProductShare(product.id))  # "" without a WeChat client
    async with services.uow() as uow:  # the visible reviews and their rating (the catalog holds neither)
        rated = await reviews.rating_of(uow.session, product.id)
        shown = await reviews.product_reviews(uow.session, product_id=product.id, limit=REVIEWS_SHOWN)
    return render_page(
        request,
        "product.html",
        {
            "product": product,
            "image": request.app[RENDERER].absolute(product.image_url),
            "open_word": OPEN_WORD[lang].format(id=product.id),
            "qr_url": qr_url,
            "rating": {"average": rated.average, "count": rated.count} if rated is not None else None,
            "reviews": [reviews.review_data(r) for r in shown],
        },
        lang=lang,
    )


def add_routes(app: web.Application) -> None:
    app[PAGES] = _environment()
    app.router.add_get(r"/products/{product_id}", product_page)
