"""Terminal chat simulator: a stand-in for WeChat's servers, driven by a human.

It speaks to a running shop server through the real webhook exactly as WeChat
would: the inbound XML, the query-string signature, safe (AES) mode with
`msg_signature`, and the reply decoding (``success``, plain XML or an encrypted
envelope whose signature is checked before it is decrypted).

Simulator commands start with ``!`` because ``/`` starts staff admin commands in
the chat itself; ``/quit`` (or end of input) leaves the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
import re
import secrets
import sys
import threading
import time
import unicodedata
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp
from wechatpy.crypto import PrpCrypto

from bot.chat.render import news_preview

WECHAT_TIMEOUT_SECONDS = 5.0
"""WeChat gives up on a webhook answer after five seconds."""

_FIELD_TAGS: dict[str, str] = {
    "content": "Content",
    "event": "Event",
    "event_key": "EventKey",
    "ticket": "Ticket",
    "location_x": "Location_X",
    "location_y": "Location_Y",
    "scale": "Scale",
    "label": "Label",
    "pic_url": "PicUrl",
    "media_id": "MediaId",
    "format": "Format",
    "recognition": "Recognition",
    "title": "Title",
    "description": "Description",
    "url": "Url",
    "latitude": "Latitude",
    "longitude": "Longitude",
    "precision": "Precision",
}
_XML_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]*$")
_UNSAFE_XML = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


class SimulatorError(Exception):
    """The server answered in a way WeChat would not accept (or not at all)."""


# --------------------------------------------------------------------------- signing


def sign(token: str, *parts: str) -> str:
    """WeChat's signature: sha1 of the sorted, concatenated token, timestamp, nonce[, encrypt]."""
    return hashlib.sha1("".join(sorted((token, *parts))).encode("utf-8")).hexdigest()


def _aes_key(encoding_aes_key: str) -> bytes:
    """Decode the 43-character EncodingAESKey into the 32-byte AES key."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SimulatorError("wechat.encoding_aes_key is not valid base64") from exc
    if len(key) != 32:
        raise SimulatorError("wechat.encoding_aes_key must be 43 characters (32 bytes)")
    return key


# --------------------------------------------------------------------------- inbound XML


def _cdata(value: str) -> str:
    """Wrap text in CDATA, splitting any "]]>" so it cannot end the section early."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _node(tag: str, value: str | int | float) -> str:
    """One XML element: strings as CDATA, numbers as bare text (as WeChat sends them)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"{tag}: expected str, int or float, got {type(value).__name__}")
    body = _cdata(value) if isinstance(value, str) else str(value)
    return f"<{tag}>{body}</{tag}>"


def _field_tag(name: str) -> str:
    """Map a keyword (``event_key``) or a literal WeChat tag (``EventKey``) to its tag."""
    if name in _FIELD_TAGS:
        return _FIELD_TAGS[name]
    if _XML_NAME.match(name):
        return name
    raise TypeError(f"unknown message field {name!r}")


def build_message_xml(
    *,
    to_user: str,
    from_user: str,
    kind: str,
    create_time: int,
    msg_id: int | None,
    **fields: str | int | float,
) -> str:
    """Build the inbound XML WeChat posts for a message or event.

    `kind` is the MsgType (text, image, voice, location, link, event, ...).
    Fields are given as snake_case keywords (``content``, ``event_key``,
    ``location_x``, ``pic_url``, ``recognition``, ...) or as literal WeChat tags
    (``ThumbMediaId``); they are emitted in the order given. `msg_id` is None
    for events, which carry no MsgId.
    """
    nodes = [
        _node("ToUserName", to_user),
        _node("FromUserName", from_user),
        _node("CreateTime", create_time),
        _node("MsgType", kind),
    ]
    nodes += [_node(_field_tag(name), value) for name, value in fields.items()]
    if msg_id is not None:
        nodes.append(_node("MsgId", msg_id))
    return "<xml>" + "".join(nodes) + "</xml>"


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Article:
    """One card of a news reply."""

    title: str
    description: str = ""
    picurl: str = ""
    url: str = ""


@dataclass
class Reply:
    """A decoded webhook answer; kind "none" when the server answered "success" or nothing."""

    kind: str
    text: str = ""
    articles: list[Article] = field(default_factory=list)
    media_id: str = ""


def _parse_xml(text: str) -> ET.Element:
    """Parse trusted reply XML, refusing DTDs and entities all the same."""
    if _UNSAFE_XML.search(text):
        raise SimulatorError("the reply contains a DTD/entity declaration")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise SimulatorError(f"the reply is not well-formed XML: {exc}") from exc


def _parse_reply(root: ET.Element) -> Reply:
    """Turn a (decrypted) reply document into a `Reply`."""
    kind = (root.findtext("MsgType") or "").strip()
    if not kind:
        raise SimulatorError("the reply has no MsgType")
    if kind == "news":
        items = root.findall("Articles/item")
        articles = [
            Article(
                title=item.findtext("Title") or "",
                description=item.findtext("Description") or "",
                picurl=item.findtext("PicUrl") or "",
                url=item.findtext("Url") or "",
            )
            for item in items
        ]
        return Reply(kind=kind, articles=articles)
    media_id = root.findtext("*/MediaId") or root.findtext("MediaId") or ""
    return Reply(kind=kind, text=root.findtext("Content") or "", media_id=media_id)


# --------------------------------------------------------------------------- the client


class WebhookClient:
    """Posts inbound messages to the shop's webhook, signed and encrypted like WeChat."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        appid: str,
        encoding_aes_key: str,
        aes: bool,
        session: aiohttp.ClientSession,
        timeout: float = WECHAT_TIMEOUT_SECONDS,
        lean: bool = False,
    ) -> None:
        """`lean`: one bare HTTP/1.1 request on a connection of its own, written and read with
        asyncio streams instead of the aiohttp client (about a third of its CPU): a load
        generator sharing the server's cores takes less from what it measures."""
        self.url = url
        self.token = token
        self.appid = appid
        self.aes = aes
        self.session = session
        self.timeout = timeout
        self.lean = lean
        self._crypto = PrpCrypto(_aes_key(encoding_aes_key)) if aes else None

    async def send(self, xml: str) -> Reply:
        """Post one message XML and return the decoded reply."""
        root = _parse_xml(xml)
        timestamp, nonce = str(int(time.time())), _nonce()
        params = {
            "signature": sign(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": root.findtext("FromUserName") or "",
        }
        body = xml
        if self._crypto is not None:
            encrypt = self._crypto.encrypt(xml, self.appid).decode("ascii")
            params["encrypt_type"] = "aes"
            params["msg_signature"] = sign(self.token, timestamp, nonce, encrypt)
            to_user = _node("ToUserName", root.findtext("ToUserName") or "")
            body = f"<xml>{to_user}{_node('Encrypt', encrypt)}</xml>"
        status, answer = await self._post(params, body)
        if status != 200:
            raise SimulatorError(_status_message(status, answer))
        return self._decode(answer)

    async def _post(self, params: dict[str, str], body: str) -> tuple[int, str]:
        """POST the body; a timeout becomes a SimulatorError naming WeChat's limit."""
        try:
            if self.lean:
                async with asyncio.timeout(self.timeout):
                    return await self._post_lean(params, body.encode("utf-8"))
            async with self.session.post(
                self.url,
                params=params,
                data=body.encode("utf-8"),
                headers={"Content-Type": "text/xml; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                return response.status, await response.text(encoding="utf-8")
        except TimeoutError as exc:
            raise SimulatorError(
                f"no answer within {self.timeout:g} s (WeChat would give up and retry)"
            ) from exc

    async def _post_lean(self, params: dict[str, str], body: bytes) -> tuple[int, str]:
        url = urllib.parse.urlsplit(self.url)
        target = f"{url.path or '/'}?{urllib.parse.urlencode(params)}"
        head = (f"POST {target} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: text/xml; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        reader, writer = await asyncio.open_connection(url.hostname, url.port or 80)
        try:
            writer.write(head.encode("ascii") + body)
            response = await reader.read()  # to the end: the server closes after its answer
        finally:
            writer.close()
        status_line, _, rest = response.partition(b"\r\n")
        headers, _, payload = rest.partition(b"\r\n\r\n")
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise aiohttp.ClientError(f"not an HTTP answer: {status_line[:80]!r}")
        if b"transfer-encoding: chunked" in headers.lower():
            raise aiohttp.ClientError("a chunked answer: the lean client reads only whole bodies")
        return int(parts[1]), payload.decode("utf-8", errors="replace")

    def _decode(self, answer: str) -> Reply:
        """Decode the response body: "success"/empty, plain XML or an encrypted envelope."""
        text = answer.strip()
        if text in ("", "success"):
            return Reply(kind="none")
        root = _parse_xml(text)
        encrypt = root.findtext("Encrypt")
        if encrypt is None:
            if self.aes:
                raise SimulatorError("plain-text reply to an encrypted (safe mode) request")
            return _parse_reply(root)
        if self._crypto is None:
            raise SimulatorError("encrypted reply to a plain-mode request")
        return _parse_reply(_parse_xml(self._open_envelope(root, encrypt)))

    def _open_envelope(self, root: ET.Element, encrypt: str) -> str:
        """Verify the reply's MsgSignature, then decrypt it and check the appid."""
        expected = sign(
            self.token, root.findtext("TimeStamp") or "", root.findtext("Nonce") or "", encrypt
        )
        if not hmac.compare_digest(expected, root.findtext("MsgSignature") or ""):
            raise SimulatorError("the encrypted reply's MsgSignature does not match")
        assert self._crypto is not None
        try:
            return self._crypto.decrypt(encrypt, self.appid)
        except Exception as exc:  # wechatpy raises assorted errors on bad input
            raise SimulatorError("cannot decrypt the reply (wrong key or appid?)") from exc


def _nonce() -> str:
    """A random numeric nonce, as WeChat sends."""
    return str(secrets.randbelow(10**10)).zfill(10)


def _status_message(status: int, answer: str) -> str:
    """Explain a non-200 answer; 403 is almost always a token/key mismatch."""
    hint = " (signature rejected: do token/AES key match the server?)" if status == 403 else ""
    snippet = answer.strip()[:200]
    return f"server answered HTTP {status}{hint}" + (f": {snippet}" if snippet else "")


# --------------------------------------------------------------------------- formatting

_CARD_WIDTH = 60
_WIDE = frozenset({"W", "F"})


def _display_width(text: str) -> int:
    """Terminal columns of `text`: CJK wide characters take two, combining marks none."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in _WIDE else 1
        for ch in text
    )


def _wrap(text: str, width: int) -> list[str]:
    """Wrap to `width` columns, preferring spaces, breaking long words and CJK anywhere."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for ch in paragraph:
            if _display_width(current + ch) > width:
                cut = current.rfind(" ")
                if cut > 0:
                    lines.append(current[:cut])
                    current = current[cut + 1 :]
                else:
                    lines.append(current)
                    current = ""
            current += ch
        lines.append(current)
    return lines


def _card(article: Article, label: str, *, alone: bool = False) -> str:
    """One article as a box: title, description, image URL and link URL. `alone` (a one-article
    card): the description as far as WeChat shows it on a phone (`news_preview`), the cut said."""
    content = _wrap(article.title or "(untitled)", _CARD_WIDTH)
    if article.description:
        shown = news_preview(article.description) if alone else article.description
        content += _wrap(shown, _CARD_WIDTH)
        if shown != article.description.strip():
            content.append("(WeChat cuts the description here)")
    if article.picurl:
        content += _wrap(f"image: {article.picurl}", _CARD_WIDTH)
    if article.url:
        content += _wrap(f"link:  {article.url}", _CARD_WIDTH)
    header = f"─ {label} " if label else ""
    inner = max([_display_width(line) for line in content] + [len(header)])
    top = "┌" + header + "─" * (inner + 2 - len(header)) + "┐"
    rows = ["│ " + line + " " * (inner - _display_width(line)) + " │" for line in content]
    bottom = "└" + "─" * (inner + 2) + "┘"
    return "\n".join([top, *rows, bottom])


def format_reply(reply: Reply) -> str:
    """Readable terminal rendering of a reply."""
    if reply.kind == "text":
        return reply.text
    if reply.kind == "news":
        count = len(reply.articles)
        if count == 0:
            return "(news reply with no articles)"
        return "\n".join(
            _card(article, f"{number}/{count}" if count > 1 else "", alone=count == 1)
            for number, article in enumerate(reply.articles, start=1)
        )
    if reply.kind == "transfer_customer_service":
        return "(the chat was handed over to customer service: a human agent answers from here)"
    if reply.kind == "none":
        return "(no reply)"
    detail = f" media_id={reply.media_id}" if reply.media_id else ""
    return f"[{reply.kind} reply{detail}]"


# --------------------------------------------------------------------------- the REPL

COMMANDS: tuple[tuple[str, str], ...] = (
    ("!click KEY", "menu click (CLICK event with EventKey=KEY)"),
    ("!scan SCENE", "scan a parametric QR code while following (SCAN event)"),
    ("!subscribe [SCENE]", "follow the account (EventKey qrscene_SCENE when given)"),
    ("!unsubscribe", "unfollow the account"),
    ("!location LAT LNG", "send a location message"),
    ("!image", "send an image message"),
    ("!voice TEXT", "send a voice message whose Recognition is TEXT"),
    ("!link URL [TITLE]", "send a link message"),
    ("!!text", 'send the text "!text" literally'),
    ("!help", "show this help"),
    ("/quit", "leave (end of input works too)"),
)
"""Simulator commands: usage and what they do."""

HELP = "Simulator commands (anything else is sent as a text message):\n" + "\n".join(
    f"  {usage:<20} {what}" for usage, what in COMMANDS
)


class CommandError(ValueError):
    """A simulator command was unknown or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class Outgoing:
    """A message to send: its MsgType and fields for `build_message_xml`."""

    kind: str
    fields: Mapping[str, str | int | float]

    @property
    def is_event(self) -> bool:
        """Events carry no MsgId."""
        return self.kind == "event"


def _event(name: str, key: str | None = None, *, ticket: bool = False) -> Outgoing:
    """An event, with EventKey (and a QR Ticket) when given."""
    fields: dict[str, str | int | float] = {"event": name}
    if key is not None:
        fields["event_key"] = key
    if ticket:
        fields["ticket"] = "simulator-ticket-" + secrets.token_hex(8)
    return Outgoing("event", fields)


def _location(args: list[str]) -> Outgoing:
    """A location message from "LAT LNG"."""
    try:
        lat, lng = (float(arg) for arg in args)
    except ValueError:
        raise CommandError("usage: !location LAT LNG (e.g. !location 31.23 121.47)") from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise CommandError("latitude must be within ±90 and longitude within ±180")
    fields: dict[str, str | int | float] = {"location_x": lat, "location_y": lng, "scale": 15, "label": "simulator location"}
    return Outgoing("location", fields)


def _media_id() -> str:
    """A fake media id for image and voice messages."""
    return "sim-" + secrets.token_hex(12)


def parse_input(line: str) -> Outgoing:
    """Turn one input line into the message to send; raises CommandError on a bad command."""
    if not line.startswith("!") or line.startswith("!!"):
        return Outgoing("text", {"content": line[1:] if line.startswith("!!") else line})
    command, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    args = rest.split()
    if command == "click" and len(args) == 1:
        return _event("CLICK", args[0])
    if command == "scan" and len(args) == 1:
        return _event("SCAN", args[0], ticket=True)
    if command == "subscribe" and len(args) <= 1:
        scene = f"qrscene_{args[0]}" if args else None
        return _event("subscribe", scene, ticket=scene is not None)
    if command == "unsubscribe" and not args:
        return _event("unsubscribe")
    if command == "location":
        return _location(args)
    if command == "image" and not args:
        fields = {"pic_url": "http://127.0.0.1/simulator.jpg", "media_id": _media_id()}
        return Outgoing("image", fields)
    if command == "voice":
        return Outgoing("voice", {"media_id": _media_id(), "format": "amr", "recognition": rest})
    if command == "link" and args:
        url, title = args[0], " ".join(args[1:]) or args[0]
        return Outgoing("link", {"title": title, "description": "", "url": url})
    raise CommandError(_usage(command))


def _usage(command: str) -> str:
    """The usage line of a known command used wrongly, or a hint for an unknown one."""
    for usage, _ in COMMANDS:
        if usage.split()[0] == f"!{command}":
            return f"usage: {usage}"
    return f"unknown command !{command}; type !help for the list"


class _Conversation:
    """One simulated user talking to the account: builds, sends and prints messages."""

    def __init__(self, *, client: WebhookClient, openid: str, account: str, out: TextIO) -> None:
        self.client = client
        self.openid = openid
        self.account = account
        self.out = out
        self._msg_ids = itertools.count(time.time_ns() // 1000 + secrets.randbelow(1000))

    async def exchange(self, outgoing: Outgoing) -> None:
        """Send one message and print the reply, or a clear line if that failed."""
        xml = build_message_xml(
            to_user=self.account,
            from_user=self.openid,
            kind=outgoing.kind,
            create_time=int(time.time()),
            msg_id=None if outgoing.is_event else next(self._msg_ids),
            **outgoing.fields,
        )
        try:
            reply = await self.client.send(xml)
        except (SimulatorError, aiohttp.ClientError) as exc:
            self.print(f"!! {_describe_error(exc)}")
            return
        self.print(format_reply(reply))

    def print(self, text: str) -> None:
        """Write a line to the output and flush it."""
        self.out.write(text + "\n")
        self.out.flush()


def _describe_error(exc: Exception) -> str:
    """A one-line description of a failed exchange."""
    if isinstance(exc, aiohttp.ClientConnectionError):
        return (
            f"cannot reach the server: {exc or type(exc).__name__} (is `storefront serve` running?)"
        )
    if isinstance(exc, aiohttp.ClientError):
        return f"network error: {exc or type(exc).__name__}"
    return str(exc)


async def _read_stdin_line() -> str:
    """Read one stdin line in a daemon thread, so Ctrl-C never waits for Enter."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            result = sys.stdin.readline()
        except Exception as exc:  # closed or broken stdin ends the chat
            loop.call_soon_threadsafe(_settle, future, "", exc)
            return
        loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=read, name="simulator-stdin", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[str], result: str, exc: BaseException | None) -> None:
    """Resolve the future from the loop thread unless it was cancelled meanwhile."""
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


async def _input_lines(
    lines: AsyncIterator[str] | Iterable[str] | None, out: TextIO
) -> AsyncIterator[str]:
    """Yield input lines (without newlines) from a script, an async source or stdin.

    A terminal gets a "you> " prompt; scripted or piped lines are echoed after it
    so the transcript reads like a chat.
    """
    if lines is None:
        source, interactive = _stdin_lines(), sys.stdin.isatty()
    elif isinstance(lines, AsyncIterator):
        source, interactive = lines, False
    else:
        source, interactive = _aiter(lines), False
    while True:
        if interactive:
            out.write("you> ")
            out.flush()
        raw = await anext(source, None)
        if raw is None:
            return
        line = raw.rstrip("\r\n")
        if not interactive:
            out.write(f"you> {line}\n")
        yield line


async def _stdin_lines() -> AsyncIterator[str]:
    """Stdin lines, read without blocking the event loop, until end of input."""
    while raw := await _read_stdin_line():
        yield raw


async def _aiter(lines: Iterable[str]) -> AsyncIterator[str]:
    """Adapt a plain iterable to an async iterator."""
    for line in lines:
        yield line


async def run_chat(
    *,
    url: str,
    token: str,
    appid: str,
    encoding_aes_key: str,
    openid: str,
    aes: bool,
    lines: AsyncIterator[str] | Iterable[str] | None = None,
    out: TextIO = sys.stdout,
) -> None:
    """Chat with the bot from a terminal: follow the account, then send each input line.

    "/quit" or end of input ends the chat; lines starting with "!" are simulator
    commands (see `HELP`). Network errors are reported and the chat goes on.
    """
    async with aiohttp.ClientSession() as session:
        client = WebhookClient(
            url=url,
            token=token,
            appid=appid,
            encoding_aes_key=encoding_aes_key,
            aes=aes,
            session=session,
        )
        chat = _Conversation(client=client, openid=openid, account=appid, out=out)
        mode = "safe mode (AES)" if aes else "plain mode"
        chat.print(f"WeChat simulator → {url}\nopenid {openid}, {mode}")
        chat.print("Type a message; !help lists simulator commands; /quit leaves.")
        await chat.exchange(_event("subscribe"))
        async for line in _input_lines(lines, out):
            if await _handle_line(chat, line.strip()) is False:
                break


async def _handle_line(chat: _Conversation, line: str) -> bool:
    """Act on one input line; False when the chat should end."""
    if line == "/quit":
        return False
    if not line:
        return True
    if line == "!help":
        chat.print(HELP)
        return True
    try:
        outgoing = parse_input(line)
    except CommandError as exc:
        chat.print(f"!! {exc}")
        return True
    await chat.exchange(outgoing)
    return True
