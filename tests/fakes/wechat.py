"""A fake WeChat Official Account API server for tests: real HTTP, WeChat's JSON and errcodes.

It issues access tokens (`/cgi-bin/stable_token`, and the classic `/cgi-bin/token`)
that live `expires_in` seconds by its clock and counts the fetches, rejects unknown or
revoked tokens with 40001 and expired ones with 42001, serves the calls the shop makes
(customer-service and template messages, QR codes, menu, user info, media upload and
download), records every request, and can be told to misbehave: expire or revoke the current
token, fail the next N calls (errcode -1, HTTP 500, or an answer slower than the
client's timeout), refuse messages to an openid with 45015 / 45047 / 43004, or be slow
(`answer_delay`: every call is carried out at once, as WeChat does, and its answer held
back: a client that times out has still sent the message).

Media (`/cgi-bin/media/get`) is served the way WeChat's published protocol has it: the
file with its own Content-Type and a `Content-disposition: attachment` naming it, or, for
an id it does not know (or one older than the 3 days temporary media live), the JSON
error `{"errcode":40007,"errmsg":"invalid media_id"}`, labelled text/plain as WeChat
labels it. A video answers `{"video_url": ...}` instead of its bytes. `add_media` puts a
file there as if a user had sent it in a message; uploads (`/cgi-bin/media/upload`) land
there too.

Nothing is imported from `bot.wechat.api`: the fake is an independent witness.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

APPID = "wx_test_account"
APPSECRET = "test-appsecret-0123456789abcdef"
TOKEN_LIFETIME = 7200
MEDIA_LIFETIME = 3 * 24 * 3600  # temporary media
EARLY_RENEWAL = 300  # stable_token (normal mode) renews during the token's last 5 minutes
_ids = itertools.count(1)

INVALID_CREDENTIAL = 40001
ACCESS_TOKEN_EXPIRED = 42001
ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40007: "invalid media_id",
    40013: "invalid appid",
    40035: "invalid args",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41006: "media_id missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40023: "invalid sub button size",
    40025: "invalid sub button name size",
    40027: "invalid sub button url size",
    40055: "invalid button url domain",
    40166: "invalid appid",
    47001: "data format error",
}


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    json: dict[str, Any] | None
    form: dict[str, Any] = field(default_factory=dict)  # multipart: name -> (filename, bytes)


@dataclass
class Failure:
    errcode: int = -1  # answered with HTTP 200 and this errcode...
    status: int = 200  # ...unless this is >= 500: a bare HTTP error
    delay: float = 0.0  # > 0: answer normally, but only after this many seconds


@dataclass
class Media:
    kind: str  # image, voice, video, thumb
    data: bytes
    content_type: str
    created_at: float


def sniff(data: bytes) -> tuple[str, str]:
    """(content type, file extension) from a file's first bytes, as WeChat labels what it serves."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return "application/octet-stream", "bin"


@dataclass
class Issued:
    value: str
    expires_at: float
    revoked: bool = False


def _bytes(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else 0


def _menu_leaf(button: Any, *, name_limit: int, name_error: int) -> int:
    """The errcode WeChat gives this menu button, 0 when it is good."""
    if not isinstance(button, dict):
        return 47001
    kind = button.get("type")
    if kind not in ("click", "view", "miniprogram"):  # the types this shop pushes
        return 40017
    if _bytes(button.get("name")) not in range(1, name_limit + 1):
        return name_error
    if kind == "click" and _bytes(button.get("key")) not in range(1, 129):
        return 40019
    if kind in ("view", "miniprogram"):
        url = button.get("url")
        if _bytes(url) not in range(1, 1025) or not str(url).startswith(("http://", "https://")):
            return 40027 if name_limit == 60 else 40055
    if kind == "miniprogram" and not (button.get("appid") and button.get("pagepath")):
        return 40166 if not button.get("appid") else 47001
    return 0


def answer(errcode: int = 0, **extra: Any) -> web.Response:
    body = {"errcode": errcode, "errmsg": ERRMSG.get(errcode, "ok" if errcode == 0 else "error"), **extra}
    return web.json_response(body, dumps=lambda d: json.dumps(d, ensure_ascii=False))


class FakeWeChat:
    def __init__(
        self,
        *,
        appid: str = APPID,
        appsecret: str = APPSECRET,
        token_lifetime: int = TOKEN_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appid = appid
        self.appsecret = appsecret
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.received: list[Received] = []
        self.delivered: list[Received] = []  # messages (custom and template) WeChat accepted
        self.token_fetches = 0
        self.forced_fetches = 0
        self.tokens: dict[str, Issued] = {}
        self.current: Issued | None = None
        self.refusals: dict[str, int] = {}  # openid -> errcode for messages to it
        self.users: dict[str, dict[str, Any]] = {}
        self.media: dict[str, Media] = {}
        self._failures: deque[Failure] = deque()
        self.answer_delay = 0.0  # seconds every API answer is held back after the call is done
        self.menu: dict[str, Any] | None = None  # the custom menu last accepted

    # ---- control ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._slow_answers])
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_get("/cgi-bin/token", self._classic_token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        app.router.add_post("/cgi-bin/qrcode/create", self._qrcode_create)
        app.router.add_post("/cgi-bin/menu/create", self._menu_create)
        app.router.add_get("/cgi-bin/user/info", self._user_info)
        app.router.add_post("/cgi-bin/media/upload", self._media_upload)
        app.router.add_get("/cgi-bin/media/get", self._media_get)
        return app

    def add_media(self, data: bytes, *, kind: str = "image", content_type: str | None = None) -> str:
        """A media file as if a user had just sent it; its MediaId (for the message's XML).
        `content_type`: what WeChat labels it, when not what its bytes say."""
        media_id = f"{secrets.token_urlsafe(32)}"
        self.media[media_id] = Media(kind, data, content_type or sniff(data)[0], self.clock())
        return media_id

    def fail_next(self, failure: Failure | None = None, *, times: int = 1) -> None:
        """The next `times` API calls (not token fetches) fail this way."""
        for _ in range(times):
            self._failures.append(failure or Failure())

    def recover(self) -> None:
        """Calls go through again: failures still queued by `fail_next` are dropped."""
        self._failures.clear()

    def expire_token(self) -> None:
        """The current token expires now: calls with it get 42001."""
        if self.current is not None:
            self.current.expires_at = self.clock() - 1

    def revoke_token(self) -> None:
        """The current token becomes invalid (as after someone's forced refresh): 40001."""
        if self.current is not None:
            self.current.revoked = True

    def refuse(self, openid: str, errcode: int) -> None:
        """Messages to `openid` get this errcode (45015 window closed, 45047, 43004...)."""
        self.refusals[openid] = errcode

    def requests(self, path_part: str = "") -> list[Received]:
        return [r for r in self.received if path_part in r.path]

    def api_requests(self, path_part: str = "") -> list[Received]:
        return [r for r in self.requests(path_part) if not r.path.endswith(("/stable_token", "/token"))]

    @web.middleware
    async def _slow_answers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """The call is done at once; its answer waits `answer_delay` (token fetches are not slowed)."""
        response = await handler(request)
        if self.answer_delay and not request.path.endswith(("/stable_token", "/token")):
            await asyncio.sleep(self.answer_delay)
        return response

    # ---- tokens -----------------------------------------------------------------------------

    def _issue(self) -> Issued:
        token = Issued(f"ACCESS_TOKEN_{next(_ids)}_{secrets.token_hex(8)}", self.clock() + self.token_lifetime)
        self.tokens[token.value] = token
        self.current = token
        return token

    def _token_answer(self, token: Issued) -> web.Response:
        remaining = max(0, int(token.expires_at - self.clock()))
        return web.json_response({"access_token": token.value, "expires_in": remaining})

    async def _stable_token(self, request: web.Request) -> web.Response:
        received = await self._record(request)
        data = received.json or {}
        if data.get("grant_type") != "client_credential":
            return answer(40035)
        if data.get("appid") != self.appid:
            return answer(40013)
        if data.get("secret") != self.appsecret:
            return answer(40125)
        self.token_fetches += 1
        current = self.current
        force = data.get("force_refresh") is True
        if force:
            self.forced_fetches += 1
            if current is not None:
                current.revoked = True
        elif (
            current is not None
            and not current.revoked
            and current.expires_at - self.clock() > EARLY_RENEWAL
        ):
            return self._token_answer(current)
        return self._token_answer(self._issue())

    async def _classic_token(self, request: web.Request) -> web.Response:
        await self._record(request)
        q = request.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != self.appid:
            return answer(40013)
        if q.get("secret") != self.appsecret:
            return answer(40125)
        self.token_fetches += 1
        if self.current is not None:
            self.current.revoked = True
        return self._token_answer(self._issue())

    # ---- the gate every API call passes ---------------------------------------------------------

    async def _record(self, request: web.Request) -> Received:
        data: dict[str, Any] | None = None
        form: dict[str, Any] = {}
        if request.content_type.startswith("multipart/"):
            async for part in await request.multipart():
                form[part.name] = (part.filename, await part.read())  # type: ignore[union-attr]
        else:
            raw = await request.read()
            if raw:
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = None
        received = Received(request.method, request.path, dict(request.query), data, form)
        self.received.append(received)
        return received

    async def _begin(self, request: web.Request) -> tuple[Received, web.Response | None]:
        received = await self._record(request)
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and failure.delay:
            await asyncio.sleep(failure.delay)
            failure = None
        if failure is not None:
            if failure.status >= 500:
                return received, web.Response(status=failure.status, text="Internal Server Error")
            return received, answer(failure.errcode)
        value = received.query.get("access_token")
        if not value:
            return received, answer(41001)
        token = self.tokens.get(value)
        if token is None or token.revoked:
            return received, answer(INVALID_CREDENTIAL)
        if token.expires_at <= self.clock():
            return received, answer(ACCESS_TOKEN_EXPIRED)
        return received, None

    # ---- endpoints --------------------------------------------------------------------------

    async def _custom_send(self, request: web.Request) -> web.Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        data = received.json
        if not data:
            return answer(44002)
        openid, kind = data.get("touser"), data.get("msgtype")
        if not openid:
            return answer(40003)
        content = data.get(kind) if isinstance(kind, str) else None
        if not isinstance(content, dict):
            return answer(47001)
        if kind == "text" and not content.get("content"):
            return answer(47001)
        if kind == "news":
            articles = content.get("articles")
            if not isinstance(articles, list) or len(articles) != 1 or not articles[0].get("title"):
                return answer(47001)
        if kind == "image" and not content.get("media_id"):
            return answer(47001)
        if openid in self.refusals:
            return answer(self.refusals[openid])
        self.delivered.append(received)
        return answer()

    async def _template_send(self, request: web.Request) -> web.Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        data = received.json or {}
        if not data.get("touser") or not data.get("template_id") or not isinstance(data.get("data"), dict):
            return answer(47001)
        if any(not isinstance(v, dict) or "value" not in v for v in data["data"].values()):
            return answer(47001)
        if data["touser"] in self.refusals and self.refusals[data["touser"]] == 43004:
            return answer(43004)
        self.delivered.append(received)
        return answer(msgid=next(_ids) + 200_000_000)

    async def _qrcode_create(self, request: web.Request) -> web.Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        data = received.json or {}
        action = data.get("action_name")
        scene = ((data.get("action_info") or {}).get("scene") or {}).get("scene_str")
        if action not in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE"):
            return answer(40035)
        if not isinstance(scene, str) or not 1 <= len(scene) <= 64:
            return answer(40035)
        ticket = f"gQH{secrets.token_urlsafe(24)}=="
        url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}"
        if action == "QR_LIMIT_STR_SCENE":
            return web.json_response({"ticket": ticket, "url": url})
        expire = int(data.get("expire_seconds", 30))
        return web.json_response({"ticket": ticket, "expire_seconds": min(expire, 2_592_000), "url": url})

    async def _menu_create(self, request: web.Request) -> web.Response:
        """WeChat's published rules for `menu/create`: 1-3 buttons, 1-5 sub-buttons, names of
        16 (top) and 60 (sub) bytes, click needs a key of 128 bytes, view a url of 1024 bytes,
        miniprogram url + appid + pagepath. The menu accepted is kept in `menu`."""
        received, early = await self._begin(request)
        if early is not None:
            return early
        buttons = (received.json or {}).get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return answer(40016)
        for button in buttons:
            if not isinstance(button, dict):
                return answer(47001)
            subs = button.get("sub_button")
            if subs:  # a group: its own name, then its buttons
                if not isinstance(subs, list) or len(subs) > 5:
                    return answer(40023)
                if _bytes(button.get("name")) not in range(1, 17):
                    return answer(40018)
                for sub in subs:
                    refused = _menu_leaf(sub, name_limit=60, name_error=40025)
                    if refused:
                        return answer(refused)
            else:
                refused = _menu_leaf(button, name_limit=16, name_error=40018)
                if refused:
                    return answer(refused)
        self.menu = received.json
        return answer()

    async def _user_info(self, request: web.Request) -> web.Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        openid = received.query.get("openid", "")
        if not openid:
            return answer(40003)
        if self.refusals.get(openid) == 43004:
            return web.json_response({"subscribe": 0, "openid": openid})
        info = {
            "subscribe": 1,
            "openid": openid,
            "language": received.query.get("lang", "zh_CN"),
            "subscribe_time": 1_700_000_000,
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": "ADD_SCENE_QR_CODE",
            "qr_scene": 0,
            "qr_scene_str": "",
            **self.users.get(openid, {}),
        }
        return web.json_response(info)

    async def _media_upload(self, request: web.Request) -> web.Response:
        received, early = await self._begin(request)
        if early is not None:
            return early
        kind = received.query.get("type")
        if kind not in ("image", "voice", "video", "thumb"):
            return answer(40004 if kind else 40035)
        media = received.form.get("media")
        if not media or not media[1]:
            return answer(44001)
        media_id = f"MEDIA_{next(_ids)}_{secrets.token_hex(6)}"
        self.media[media_id] = Media(kind, media[1], sniff(media[1])[0], self.clock())
        return web.json_response({"type": kind, "media_id": media_id, "created_at": int(self.clock())})

    async def _media_get(self, request: web.Request) -> web.StreamResponse:
        received, early = await self._begin(request)
        if early is not None:
            return early
        media_id = received.query.get("media_id", "")
        if not media_id:
            return _text_plain_error(41006)
        media = self.media.get(media_id)
        if media is None or self.clock() - media.created_at > MEDIA_LIFETIME:
            return _text_plain_error(40007)
        if media.kind == "video":
            return web.json_response({"video_url": f"http://vweixinf.tc.qq.com/{media_id}.mp4"})
        ext = sniff(media.data)[1]
        return web.Response(
            body=media.data,
            content_type=media.content_type,
            headers={
                "Content-disposition": f'attachment; filename="{media_id}.{ext}"',
                "Cache-Control": "no-cache, must-revalidate",
            },
        )


def _text_plain_error(errcode: int) -> web.Response:
    """An error of /cgi-bin/media/get: JSON, but labelled text/plain (as WeChat sends it)."""
    body = json.dumps({"errcode": errcode, "errmsg": ERRMSG[errcode]}, ensure_ascii=False)
    return web.Response(text=body, content_type="text/plain")
