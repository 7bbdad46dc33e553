"""Web pages the chat links to: the product page behind a product card."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
from aiohttp import web

import templates
from bot.chat.render import yuan
from bot.keys import CONFIG, RENDERER, SERVICES
from bot.wechat.scenes import PRODUCT_ID_MAX

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


_PRODUCT_ID = re.compile(r"[1-9][0-9]{0,9}")


async def product_page(request: web.Request) -> web.Response:
    raw = request.match_info["product_id"]
    # ASCII digits within the column's range: int() alone takes "１２", " 12" and numbers
    # no database integer holds (an overflow there was a 500).
    product_id = int(raw) if _PRODUCT_ID.fullmatch(raw) and int(raw) <= PRODUCT_ID_MAX else None
    product = await request.app[SERVICES].catalog.product(product_id) if product_id else None
    env = request.app[PAGES]
    config = request.app[CONFIG]
    if product is None:
        html = env.get_template("not_found.html").render(shop=config.shop.name)
        return web.Response(status=404, text=html, content_type="text/html")
    html = env.get_template("product.html").render(
        shop=config.shop.name, product=product, image=request.app[RENDERER].absolute(product.image_url)
    )
    return web.Response(text=html, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app[PAGES] = _environment()
    app.router.add_get(r"/products/{product_id}", product_page)
