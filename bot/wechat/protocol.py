"""WeChat's message protocol as pure functions: signatures, safe-mode crypto, parsing.

Order matters for safety: the signature is checked on the raw request before any XML
parser sees the body; only then is the body decrypted (safe mode) and parsed, and
anything with a DTD or entity declaration is refused outright.
wechatpy supplies the AES envelope and the message parser; the signature comparison
is ours so that it runs in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto

_ENCRYPT_RE = re.compile(rb"<Encrypt>\s*(?:<!\[CDATA\[([A-Za-z0-9+/=]+)\]\]>|([A-Za-z0-9+/=]+))\s*</Encrypt>")
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")


class ProtocolError(Exception):
    """A request that is not a well-formed WeChat message (answered with 400)."""


class SignatureError(Exception):
    """A request that is not provably from WeChat (answered with 403)."""


class StaleTimestamp(SignatureError):
    """A signed request whose timestamp is outside the accepted window (or not a timestamp)."""


def signature(token: str, *parts: str) -> str:
    """WeChat's signature: sha1 over the sorted token, timestamp, nonce (and Encrypt)."""
    return hashlib.sha1("".join(sorted((token, *parts))).encode()).hexdigest()


def check_signature(expected: str | None, token: str, *parts: str) -> None:
    if not expected or not hmac.compare_digest(expected.encode(), signature(token, *parts).encode()):
        raise SignatureError("bad signature")


_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def check_freshness(timestamp: str, *, max_skew: int, now: float | None = None) -> None:
    """Refuse a timestamp that is not plain digits, or (max_skew > 0) too far from our clock."""
    if not _TIMESTAMP.match(timestamp):  # int() alone would take " 12", "1_2" and "１２"
        raise StaleTimestamp("bad timestamp")
    if max_skew <= 0:
        return
    if abs((time.time() if now is None else now) - int(timestamp)) > max_skew:
        raise StaleTimestamp("stale timestamp")


@lru_cache(maxsize=8)
def aes_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


@lru_cache(maxsize=8)
def _prp_crypto(key: bytes) -> PrpCrypto:
    """One per key: it holds only the AES cipher, and makes a fresh encryptor per call."""
    return PrpCrypto(key)


def extract_encrypt(body: bytes) -> str:
    """The Encrypt element of a safe-mode body, found without an XML parser."""
    found = _ENCRYPT_RE.search(body)
    if not found:
        raise SignatureError("safe-mode request without Encrypt")
    return (found.group(1) or found.group(2)).decode()


def decrypt(encrypt: str, *, key: bytes, appid: str) -> bytes:
    try:
        return _prp_crypto(key).decrypt(encrypt, appid).encode()
    except Exception as exc:  # wechatpy raises a mix of types for bad input
        raise SignatureError("cannot decrypt for this app") from exc


def encrypt_reply(xml: str, *, token: str, key: bytes, appid: str) -> str:
    """The safe-mode envelope of a reply, signed with a fresh nonce and timestamp."""
    encrypted = _prp_crypto(key).encrypt(xml, appid)
    encrypted = encrypted.decode() if isinstance(encrypted, bytes) else encrypted
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(8)
    msg_signature = signature(token, timestamp, nonce, encrypted)
    return (
        f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{msg_signature}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message or event from a user, reduced to what the bot needs."""

    openid: str
    account: str
    kind: str
    create_time: int
    msg_id: str | None = None
    text: str = ""
    event: str | None = None
    event_key: str = ""
    scene: str = ""  # the QR scene of a subscribe-by-scan or SCAN event, without "qrscene_"
    fields: dict[str, Any] = field(default_factory=dict)
    # A plaintext request to a shop in compatible mode: no signature covers its body, so
    # it may come from anyone who saw one query string. It is answered as a customer,
    # never as staff (bot.chat.conversation).
    downgraded: bool = False
    # the flash sale whose unit this message won at the webhook's edge (bot.flash_edge):
    # counted by the gate there, so the turn does not ask it again
    flash_sale: int | None = None

    @property
    def dedupe_key(self) -> str:
        """MsgId for messages; FromUserName + CreateTime + Event (+ EventKey) for events.

        EventKey is part of the key so that two different menu clicks within one
        second are not mistaken for a retry.
        """
        if self.msg_id:
            return f"m:{self.msg_id}"
        return f"e:{self.openid}:{self.create_time}:{self.event or self.kind}:{self.event_key}"


def _text(data: dict[str, Any], key: str) -> str:
    """A field's text; an element nested where WeChat sends text is refused, not str()-ed
    (a deeply nested one would blow the interpreter's recursion limit)."""
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"{key} is not text")
    return value


def parse(xml: bytes) -> Inbound:
    """Parse a (verified, decrypted) message. Raises ProtocolError on anything odd."""
    if any(marker in xml for marker in _FORBIDDEN):
        raise ProtocolError("DTDs and entities are not accepted")
    try:
        message = parse_message(xml.decode("utf-8"))
        data: dict[str, Any] = dict(message._data)  # the raw fields, as wechatpy parsed them
    except Exception as exc:  # RecursionError included: deep nesting is not a message
        raise ProtocolError("malformed message XML") from exc
    openid = _text(data, "FromUserName")
    kind = _text(data, "MsgType").lower()
    if not openid or not kind or len(openid) > 64:
        raise ProtocolError("message without sender or type")
    created = _text(data, "CreateTime") or "0"
    if not _TIMESTAMP.match(created):
        raise ProtocolError("bad CreateTime")
    create_time = int(created)
    event = _text(data, "Event").lower() if kind == "event" else ""
    event_key = _text(data, "EventKey")
    scene = ""
    if event == "subscribe_scan":  # wechatpy's name for a follow through a QR code
        event, scene = "subscribe", event_key.removeprefix("qrscene_")
    elif event == "scan":
        scene = event_key
    text = ""
    if kind == "text":
        text = _text(data, "Content")
    elif kind == "voice":
        text = _text(data, "Recognition")
    msg_id = _text(data, "MsgId") or _text(data, "MsgID")
    return Inbound(
        openid=openid,
        account=_text(data, "ToUserName"),
        kind=kind,
        create_time=create_time,
        msg_id=msg_id if msg_id and kind != "event" else None,
        text=text,
        event=event or None,
        event_key=event_key,
        scene=scene[:64],
        fields={k: v for k, v in data.items() if isinstance(v, str)},
    )
