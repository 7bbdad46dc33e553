"""Stateless entry points, one module per kind of inbound thing.

`build_routes()` returns the routes that work everywhere (checked before the open
dialog) and the fallback routes (checked after it).
"""

from __future__ import annotations

from bot.chat.router import Router
from bot.handlers import admin, events, media, text


def build_routes() -> tuple[Router, Router]:
    routes = Router()
    routes.include(admin.router)  # "/..." first: staff commands (a stranger's falls through to search)
    routes.include(events.router)
    routes.include(text.router)
    routes.include(media.router)
    fallback = Router()
    fallback.include(text.fallback)
    fallback.include(media.fallback)
    return routes, fallback
