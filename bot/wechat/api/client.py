"""An async client for the WeChat Official Account API (the calls this shop makes).

Every call has a timeout and is retried with bounded, jittered exponential backoff when
it certainly did nothing: the connection could not be made (refused, DNS, connect
timeout), an HTTP 5xx other than a gateway's 502/504, errcode -1 (busy). A rejected
access token (40001/42001/40014) makes the client ask its `TokenProvider` for a new one
ONCE, naming the token that failed so that concurrent failures cause a single refresh.
Other errcodes raise `WeChatError`. The token travels in the query string, so URLs
are never logged nor put into exceptions.

An outcome nobody can know (the request was on its way or written and no answer came:
a timeout while waiting, the connection reset or cut mid-answer, a 502/504 from a
gateway that may have passed it on) raises `WeChatUncertain`. Why a 500 or 503 counts
as "not sent" and a 502 or 504 does not: WeChat's API reports its own failures as HTTP
200 with an errcode (-1 when busy), so a bare 5xx is the front end refusing the request
itself, except 502/504, by which a gateway says its upstream failed or did not answer
in time: the upstream may have acted. (A pooled connection the server had closed also
ends as uncertain: rare, and on the safe side.) Reads and idempotent
calls (user info, QR codes, the menu, media) are retried after it like after any
transient failure; message sends are NOT: WeChat has no idempotency key for them, and
a repeated "支付成功" is worse than one a person has to check (`bot/outbound/planner.py`
decides what happens next). The answer timeout (`timeout`, `wechat.api_timeout_seconds`)
is set well above WeChat's usual latency (well under a second) so that a merely slow
answer is still waited for; the connect timeout is short and separate, so a connection
that never opened is told apart from an answer that never came.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import aiohttp

from bot.chat.render import RenderedArticle
from bot.wechat.api.errors import (
    TOKEN_ERRORS,
    ErrCode,
    MediaTooLarge,
    WeChatError,
    WeChatUnavailable,
    WeChatUncertain,
    checked,
)
from bot.wechat.api.token import TokenProvider

log = logging.getLogger(__name__)

QR_IMAGE_BASE = "https://mp.weixin.qq.com/cgi-bin/showqrcode"
SCENE_STR_MAX = 64
QR_EXPIRE_MAX = 2_592_000  # 30 days
MAX_NEWS_ARTICLES = 1  # customer-service news: one article since 2018
MEDIA_KINDS = frozenset({"image", "voice", "video", "thumb"})
ANSWER_TIMEOUT = 10.0  # seconds: WeChat usually answers in well under one
CONNECT_TIMEOUT = 3.0
GATEWAY_ERRORS = frozenset({502, 504})  # a gateway that may have passed the request on
MEDIA_ID_MAX = 256
_JSON_TYPES = frozenset({"application/json", "text/json", "text/plain"})
T = TypeVar("T")
Parse = Callable[[str, bytes], T]  # (the answer's content type, its body) -> what the call returns


@dataclass(frozen=True, slots=True)
class QrCode:
    ticket: str
    url: str  # what the QR code encodes
    expire_seconds: int | None  # None: permanent
    image_url: str  # a picture of the code (showqrcode?ticket=...)


@dataclass(frozen=True, slots=True)
class UploadedMedia:
    media_id: str
    kind: str
    created_at: int


@dataclass(frozen=True, slots=True)
class DownloadedMedia:
    data: bytes
    content_type: str  # as WeChat labelled it ("image/jpeg"): the bytes themselves are what counts


class MediaSource(Protocol):
    """Where what users sent (an image message's MediaId) is fetched from: `WeChatClient`."""

    async def download_media(self, media_id: str, *, max_bytes: int) -> DownloadedMedia: ...


class NoMediaSource:
    """Without WeChat credentials (wechat.appsecret empty: the embedded demo), nothing a user
    sent can be fetched: `WeChatError` NOT_CONFIGURED."""

    async def download_media(self, media_id: str, *, max_bytes: int) -> DownloadedMedia:
        raise WeChatError(ErrCode.NOT_CONFIGURED, "wechat.appsecret is not set")


def validate_scene_str(scene_str: str) -> str:
    """A QR scene: 1 to 64 characters (WeChat's limit), else ValueError."""
    if not isinstance(scene_str, str) or not 1 <= len(scene_str) <= SCENE_STR_MAX:
        raise ValueError(f"scene_str must be 1 to {SCENE_STR_MAX} characters")
    return scene_str


class WeChatClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        tokens: TokenProvider,
        timeout: float = ANSWER_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        retries: int = 3,
        backoff_base: float = 0.2,
        backoff_max: float = 2.0,
        qr_image_base: str = QR_IMAGE_BASE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`timeout`: seconds to wait for an answer once connected; `retries`: extra attempts
        after the first one, for transient failures only (see the module's docstring)."""
        self._http = http
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        # the connect deadline comes first, so a connection that never opened raises
        # ConnectionTimeoutError (certainly not sent), never the total's plain TimeoutError
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + timeout, connect=connect_timeout, sock_read=timeout
        )
        self._retries = max(0, retries)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._qr_image_base = qr_image_base.rstrip("?")
        self._sleep = sleep

    # ---- endpoints ------------------------------------------------------------------------

    async def send_text(self, openid: str, text: str) -> None:
        await self._custom_send({"touser": openid, "msgtype": "text", "text": {"content": text}})

    async def send_news(self, openid: str, articles: Sequence[RenderedArticle]) -> None:
        if not 1 <= len(articles) <= MAX_NEWS_ARTICLES:
            raise ValueError(f"a news message holds 1 to {MAX_NEWS_ARTICLES} article(s)")
        news = [
            {"title": a.title, "description": a.description, "url": a.url, "picurl": a.picurl}
            for a in articles
        ]
        await self._custom_send({"touser": openid, "msgtype": "news", "news": {"articles": news}})

    async def send_image(self, openid: str, media_id: str) -> None:
        await self._custom_send({"touser": openid, "msgtype": "image", "image": {"media_id": media_id}})

    async def send_template(
        self, openid: str, template_id: str, data: Mapping[str, str], url: str | None = None
    ) -> int:
        """A template message; returns WeChat's msgid."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        if url:
            body["url"] = url
        answer = await self._call("POST", "/cgi-bin/message/template/send", json_body=body, idempotent=False)
        return int(answer["msgid"])

    async def create_qr(
        self, scene_str: str, *, permanent: bool, expire_seconds: int = QR_EXPIRE_MAX
    ) -> QrCode:
        validate_scene_str(scene_str)
        body: dict[str, Any] = {
            "action_name": "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene_str}},
        }
        if not permanent:
            if not 60 <= expire_seconds <= QR_EXPIRE_MAX:
                raise ValueError(f"expire_seconds must be between 60 and {QR_EXPIRE_MAX}")
            body["expire_seconds"] = expire_seconds
        answer = await self._call("POST", "/cgi-bin/qrcode/create", json_body=body)
        ticket = str(answer["ticket"])
        expires = answer.get("expire_seconds")
        return QrCode(
            ticket=ticket,
            url=str(answer.get("url", "")),
            expire_seconds=None if permanent or expires is None else int(expires),
            image_url=f"{self._qr_image_base}?ticket={quote(ticket, safe='')}",
        )

    async def create_menu(self, menu: Mapping[str, Any]) -> None:
        await self._call("POST", "/cgi-bin/menu/create", json_body=dict(menu))

    async def user_info(self, openid: str, *, lang: str = "zh_CN") -> dict[str, Any]:
        return await self._call("GET", "/cgi-bin/user/info", params={"openid": openid, "lang": lang})

    async def upload_media(self, kind: str, filename: str, data: bytes) -> UploadedMedia:
        """A temporary media file (3 days); `kind` is image, voice, video or thumb."""
        if kind not in MEDIA_KINDS:
            raise ValueError(f"media kind must be one of {sorted(MEDIA_KINDS)}")

        def form() -> aiohttp.FormData:  # a fresh body for every attempt
            payload = aiohttp.FormData()
            payload.add_field("media", data, filename=filename, content_type="application/octet-stream")
            return payload

        answer = await self._call("POST", "/cgi-bin/media/upload", params={"type": kind}, form=form)
        return UploadedMedia(
            media_id=str(answer["media_id"]),
            kind=str(answer.get("type", kind)),
            created_at=int(answer.get("created_at", 0)),
        )

    async def download_media(self, media_id: str, *, max_bytes: int) -> DownloadedMedia:
        """A temporary media file: what a user sent (an image message's MediaId), kept by
        WeChat for 3 days. `WeChatError` 40007 when the id is unknown or expired (WeChat's
        JSON answer instead of the file); `MediaTooLarge` past `max_bytes`, never read whole."""
        if not media_id or len(media_id) > MEDIA_ID_MAX or not media_id.isprintable():
            raise ValueError("not a media_id")
        return await self._attempts(
            "GET", "/cgi-bin/media/get", _media_answer, params={"media_id": media_id}, max_bytes=max_bytes
        )

    # ---- plumbing ---------------------------------------------------------------------------

    async def _custom_send(self, body: dict[str, Any]) -> None:
        await self._call("POST", "/cgi-bin/message/custom/send", json_body=body, idempotent=False)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        return ceiling * random.uniform(0.5, 1.0)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One call answered with JSON, with its retries (`_attempts`)."""
        return await self._attempts(
            method, path, _json_answer(path), params=params, json_body=json_body, form=form, idempotent=idempotent
        )

    async def _attempts(
        self,
        method: str,
        path: str,
        parse: Parse[T],
        *,
        params: Mapping[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        idempotent: bool = True,
        max_bytes: int | None = None,
    ) -> T:
        """One call with its retries; `idempotent=False` (message sends): an uncertain
        outcome is raised at once, never tried again. `parse` reads the answer."""
        attempt = 0
        token: str | None = None
        rejected: str | None = None  # the token WeChat refused, once
        while True:
            try:
                if token is None:
                    token = await (self._tokens.refresh(rejected) if rejected else self._tokens.token())
                return await self._once(method, path, token, parse, params, json_body, form, max_bytes)
            except WeChatUncertain as exc:
                if not idempotent:
                    log.warning("wechat %s: outcome unknown (%s), not repeated", path, exc.errmsg)
                    raise
                cause = exc.errmsg
                if attempt >= self._retries:
                    log.warning("wechat %s: giving up after %s attempts (%s)", path, attempt + 1, cause)
                    raise
            except WeChatError as exc:
                if exc.errcode in TOKEN_ERRORS and rejected is None and token is not None:
                    log.info("wechat %s: token rejected (%s), refreshing", path, exc.errcode)
                    rejected, token = token, None
                    continue
                if exc.errcode != ErrCode.BUSY:
                    log.warning("wechat %s: errcode %s", path, exc.errcode)
                    raise
                if attempt >= self._retries:
                    log.warning("wechat %s: giving up after %s attempts (busy)", path, attempt + 1)
                    if isinstance(exc, WeChatUnavailable):
                        raise
                    raise WeChatUnavailable(f"{path}: {exc.errmsg}") from None
                cause = exc.errmsg if isinstance(exc, WeChatUnavailable) else f"errcode {exc.errcode}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                cause = type(exc).__name__
                if attempt >= self._retries:
                    log.warning("wechat %s: giving up after %s attempts (%s)", path, attempt + 1, cause)
                    raise WeChatUnavailable(f"{path}: {cause}") from None
            delay = self._backoff(attempt)
            attempt += 1
            log.info("wechat %s: %s, retry %s in %.2fs", path, cause, attempt, delay)
            await self._sleep(delay)

    async def _once(
        self,
        method: str,
        path: str,
        token: str,
        parse: Parse[T],
        params: Mapping[str, str] | None,
        json_body: dict[str, Any] | None,
        form: Callable[[], aiohttp.FormData] | None,
        max_bytes: int | None = None,
    ) -> T:
        query = {"access_token": token, **(params or {})}
        data: Any = None
        headers = {}
        if json_body is not None:  # UTF-8, not \u escapes: WeChat shows escapes literally
            data = json.dumps(json_body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json; charset=utf-8"
        elif form is not None:
            data = form()
        try:
            async with self._http.request(
                method, self._base + path, params=query, data=data, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status in GATEWAY_ERRORS:
                    raise WeChatUncertain(f"{path}: HTTP {resp.status}")
                if resp.status >= 500:
                    raise WeChatUnavailable(f"{path}: HTTP {resp.status}")
                raw = await (resp.read() if max_bytes is None else _read_at_most(resp, max_bytes))
                content_type = resp.content_type
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise WeChatUnavailable(f"{path}: {type(exc).__name__}") from None  # never connected
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WeChatUncertain(f"{path}: {type(exc).__name__}") from None  # sent, maybe; no answer
        return parse(content_type, raw)


def _json_answer(path: str) -> Parse[dict[str, Any]]:
    def parse(content_type: str, raw: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(raw)
        except ValueError:
            raise WeChatError(ErrCode.UNREADABLE, f"{path}: not JSON") from None
        return checked(answer)

    return parse


def _media_answer(content_type: str, raw: bytes) -> DownloadedMedia:
    """The file, or `WeChatError` for WeChat's JSON answer: an errcode (40007: no such
    media), or a video's download URL (not a file this shop asks for)."""
    if content_type in _JSON_TYPES or raw[:1] == b"{":  # errors come as JSON labelled text/plain
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            checked(answer)
            raise WeChatError(ErrCode.UNREADABLE, "/cgi-bin/media/get: a JSON answer, not a file")
    return DownloadedMedia(raw, content_type)


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    if (resp.content_length or 0) > limit:
        raise MediaTooLarge(limit)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise MediaTooLarge(limit)
    return bytes(body)
