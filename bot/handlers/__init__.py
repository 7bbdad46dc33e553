"""Stateless entry points, one module per kind of inbound thing.

`build_routes()` returns the routes that work everywhere (checked before the open
dialog) and the fallback routes (checked after it). What the understanding step
recognises (bot.chat.understanding) is answered in both: the intents no dialog expects
before the dialog, the others just before search.
"""

from __future__ import annotations

from bot.chat.router import Router
from bot.handlers import admin, events, media, text, understood


def build_routes() -> tuple[Router, Router]:
    routes = Router()
    routes.include(admin.router)  # "/..." first: staff commands (a stranger's falls through to search)
    routes.include(events.router)
    routes.include(text.router)
    routes.include(understood.early)  # greeting, thanks, a call for a person: before the open dialog
    routes.include(media.router)
    fallback = Router()
    fallback.include(understood.router)  # shop questions and help: before search, the last resort
    fallback.include(text.fallback)
    fallback.include(media.fallback)
    return routes, fallback
