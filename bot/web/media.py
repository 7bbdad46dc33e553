"""GET /media/{name}: product pictures from the media store, cached for good.

Every name is the SHA-256 of its file (`commerce.media.store`), so what is served under a
name never changes: browsers, WeChat's image proxy and any CDN in front may keep it a year
without asking again (`immutable`), and one that asks anyway (`If-None-Match` with the
hash as ETag) is answered 304 without the file being read. Anything but a well-formed
name is a 404 before the store is touched.
"""

from __future__ import annotations

from aiohttp import web

from bot.keys import SERVICES
from commerce.media.store import content_type, digest_of, is_key

CACHE_FOREVER = "public, max-age=31536000, immutable"


def _etag_matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak or strong, or "*")."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


async def media_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if not is_key(name):
        raise web.HTTPNotFound()
    etag = f'"{digest_of(name)}"'
    headers = {"Cache-Control": CACHE_FOREVER, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if _etag_matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    data = await request.app[SERVICES].media.get(name)
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type=content_type(name), headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/media/{name}", media_file)
