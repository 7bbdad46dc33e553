"""Fuzzing the WeChat edge's pure functions: hostile bytes may only be refused as the webhook
expects (`ProtocolError`: 400, `SignatureError`: 403); anything else escapes as a 500.

`parse` gets the body of a plaintext request (whose signature covers the query string, not
the body) or a decrypted safe-mode body; `extract_encrypt` gets any request body of a
safe-mode request before its signature is checked; `decrypt` gets whatever Encrypt held.
Inputs start from valid messages (made with the chat simulator's `build_message_xml` and
wechatpy's `PrpCrypto`) and are damaged the ways an attacker or a broken proxy would.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Callable
from xml.sax.saxutils import escape

from hypothesis import example, given, settings
from hypothesis import strategies as st
from wechatpy.crypto import PrpCrypto
from wechatpy.crypto.base import WeChatCipher

from bot.devtools.simulator import build_message_xml, sign
from bot.wechat.protocol import (
    Inbound,
    ProtocolError,
    SignatureError,
    aes_key,
    decrypt,
    extract_encrypt,
    parse,
)

# pure functions: examples are cheap; no example database is written into the checkout
FUZZ = settings(max_examples=300, deadline=None, database=None)

ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
KEY = aes_key(ENCODING_AES_KEY)
APPID = "wx_test_app"
TOKEN = "fuzz-token"
# Nesting past any recursion limit (Python's default 1,000 levels take 7 KB; hypothesis
# raises the limit while it runs) yet under the webhook's 64 KB body limit
DEEP = 5000
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


_RUN = re.compile(rb"(.{1,8}?)\1{9,}", re.DOTALL)


class Body(bytes):
    """A request body whose repr folds long runs (b"<a>" * 5000): failures stay readable, and
    the repr is still the Python expression of the body."""

    def __repr__(self) -> str:
        parts, pos = [], 0
        for m in _RUN.finditer(self):
            parts.append(repr(bytes(self[pos : m.start()])))
            parts.append(f"{bytes(m.group(1))!r} * {len(m.group()) // len(m.group(1))}")
            pos = m.end()
        parts.append(repr(bytes(self[pos:])))
        return " + ".join(p for p in parts if p != "b''") or "b''"


# ---- what a verdict may be ------------------------------------------------------------------


def parsed_or_refused(body: bytes) -> Inbound | None:
    """`parse`'s contract: a usable Inbound, or ProtocolError (anything else fails the test)."""
    try:
        msg = parse(body)
    except ProtocolError:
        return None
    assert isinstance(msg, Inbound)
    assert isinstance(msg.openid, str) and 0 < len(msg.openid) <= 64
    assert isinstance(msg.kind, str) and msg.kind
    assert isinstance(msg.create_time, int)
    assert isinstance(msg.dedupe_key, str)
    return msg


def decrypted_or_refused(encrypt: str) -> bytes | None:
    try:
        plain = decrypt(encrypt, key=KEY, appid=APPID)
    except SignatureError:
        return None
    assert isinstance(plain, bytes)
    return plain


# ---- valid messages ---------------------------------------------------------------------------

openids = st.from_regex(r"o[A-Za-z0-9_-]{27}", fullmatch=True)
# what XML 1.0 can carry (WeChat sends nothing else): no control characters but new lines
texts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from("\n\t"),
    max_size=60,
)
times = st.integers(0, 2**31 - 1)
msg_ids = st.integers(1, 2**63 - 1)


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[str, str, str]:
    """(XML, openid, kind) of a message or event as WeChat posts it."""
    openid = draw(openids)
    common = {"to_user": "gh_shop", "from_user": openid, "create_time": draw(times)}
    kind = draw(st.sampled_from(["text", "image", "voice", "location", "link", "event"]))
    fields: dict[str, str | int | float]
    if kind == "text":
        fields = {"content": draw(texts)}
    elif kind == "image":
        fields = {"pic_url": "http://mmbiz.qpic.cn/x.jpg", "media_id": draw(texts)}
    elif kind == "voice":
        fields = {"media_id": "m1", "format": "amr", "recognition": draw(texts)}
    elif kind == "location":
        lat, lng = draw(st.floats(-90, 90)), draw(st.floats(-180, 180))
        fields = {"location_x": lat, "location_y": lng, "scale": 15, "label": draw(texts)}
    elif kind == "link":
        fields = {"Title": draw(texts), "Description": draw(texts), "Url": "https://example.com/"}
    else:
        event = draw(
            st.sampled_from(
                [
                    "subscribe",
                    "unsubscribe",
                    "SCAN",
                    "CLICK",
                    "VIEW",
                    "LOCATION",
                    "TEMPLATESENDJOBFINISH",
                ]
            )  # fmt: skip
        )
        fields = {"event": event}
        if event == "subscribe" and draw(st.booleans()):
            fields["event_key"] = "qrscene_" + draw(texts)
        elif event in ("SCAN", "CLICK", "VIEW"):
            fields["event_key"] = draw(texts)
        elif event == "LOCATION":
            fields.update({"Latitude": 31.2, "Longitude": 121.5, "Precision": 65.0})
    msg_id = None if kind == "event" else draw(msg_ids)
    xml = build_message_xml(kind=kind, msg_id=msg_id, **common, **fields)
    return xml, openid, kind


@FUZZ
@given(valid_messages())
def test_valid_messages_parse_to_their_sender_and_kind(case: tuple[str, str, str]) -> None:
    """The starting point of the mutations below is valid: what they refuse is the damage."""
    xml, openid, kind = case
    msg = parse(xml.encode())
    assert (msg.openid, msg.kind) == (openid, kind)


# ---- damage -------------------------------------------------------------------------------

ELEMENT_RE = re.compile(rb"<([A-Za-z_]+)>(.*?)</\1>", re.DOTALL)
Mutation = Callable[[st.DrawFn, bytes], bytes]


def _element(draw: st.DrawFn, body: bytes) -> re.Match[bytes] | None:
    found = list(ELEMENT_RE.finditer(body, 5))  # past "<xml>": the message's fields
    return draw(st.sampled_from(found)) if found else None


def _replace_value(draw: st.DrawFn, body: bytes, value: bytes) -> bytes:
    m = _element(draw, body)
    return body if m is None else body[: m.start(2)] + value + body[m.end(2) :]


def drop(draw: st.DrawFn, body: bytes) -> bytes:
    m = _element(draw, body)
    return body if m is None else body[: m.start()] + body[m.end() :]


def duplicate(draw: st.DrawFn, body: bytes) -> bytes:
    m = _element(draw, body)
    if m is None:
        return body
    tag = m.group(1)
    other = b"<%s>%s</%s>" % (tag, draw(texts).encode(), tag) if draw(st.booleans()) else m.group()
    return body[: m.end()] + other + body[m.end() :]


def garble(draw: st.DrawFn, body: bytes) -> bytes:
    text = draw(st.text(max_size=40))
    how = draw(st.sampled_from(["raw", "escaped", "cdata"]))
    value = {"raw": text, "escaped": escape(text), "cdata": f"<![CDATA[{text}]]>"}[how]
    return _replace_value(draw, body, value.encode())


def huge(draw: st.DrawFn, body: bytes) -> bytes:
    size = draw(st.sampled_from([65, 300, 5_000, 60_000]))
    unit = draw(st.sampled_from([b"x", b"9", b"\xe4\xb8\xad", b"&amp;", b" "]))
    return _replace_value(draw, body, unit * (size // len(unit)))


def nest(draw: st.DrawFn, body: bytes) -> bytes:
    depth = draw(st.sampled_from([1, 2, 30, DEEP]))
    m = _element(draw, body)
    if m is None:
        return body
    value = b"<a>" * depth + m.group(2) + b"</a>" * depth
    return body[: m.start(2)] + value + body[m.end(2) :]


def attributes(draw: st.DrawFn, body: bytes) -> bytes:
    m = _element(draw, body)
    if m is None:
        return body
    attr = draw(st.sampled_from([b' a="1"', b' xmlns="urn:x"', b' xml:lang="zh"', b" a='&amp;'"]))
    at = m.start() + 1 + len(m.group(1))
    return body[:at] + attr + body[at:]


def not_utf8(draw: st.DrawFn, body: bytes) -> bytes:
    junk = draw(
        st.sampled_from([b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80"])
    )
    at = draw(st.integers(0, len(body)))
    return body[:at] + junk + body[at:]


DECLARATIONS = [
    b'<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">]>',
    b'<!DOCTYPE xml [<!ENTITY a "a"><!ENTITY b "&a;&a;&a;&a;">]>',
    b'<!DOCTYPE xml SYSTEM "file:///etc/passwd">',
    b'<!doctype xml [<!entity a "a">]>',
    b"<!DocType xml>",
    b"<! DOCTYPE xml>",
    b'<!ENTITY a "a">',
    b"<!DOCTYPE\nxml>",
]


def declaration(draw: st.DrawFn, body: bytes) -> bytes:
    dtd = draw(st.sampled_from(DECLARATIONS))
    if draw(st.booleans()):
        return dtd + body
    at = draw(st.integers(0, len(body)))
    return body[:at] + dtd + body[at:]


def entity(draw: st.DrawFn, body: bytes) -> bytes:
    ref = draw(
        st.sampled_from(
            [
                b"&a;",
                b"&amp;",
                b"&lt;xml&gt;",
                b"&#0;",
                b"&#xD800;",
                b"&#x10FFFF;",
                b"&#x110000;",
                b"&#99999999999;",
                b"&",
                b"&#;",
                b"&unknown;",
            ]
        )  # fmt: skip
    )
    return _replace_value(draw, body, ref)


def cdata(draw: st.DrawFn, body: bytes) -> bytes:
    trick = draw(
        st.sampled_from(
            [
                b"<![CDATA[a]]>b]]>",  # "]]>" ends it early
                b"<![CDATA[<![CDATA[nested]]>]]>",
                b"<![CDATA[unterminated",
                b"<![CDATA[</FromUserName><FromUserName>o_evil]]>",
                b"<![CDATA[]]>",
                b"<![CDATA[o1]]><![CDATA[o2]]>",
                b"<![cdata[lower]]>",
                b"]]>",
            ]
        )  # fmt: skip
    )
    return _replace_value(draw, body, trick)


def flip(draw: st.DrawFn, body: bytes) -> bytes:
    if not body:
        return body
    at = draw(st.integers(0, len(body) - 1))
    return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1 :]


def truncate(draw: st.DrawFn, body: bytes) -> bytes:
    return body[: draw(st.integers(0, len(body)))]


def prolog(draw: st.DrawFn, body: bytes) -> bytes:
    head = draw(
        st.sampled_from(
            [
                b'<?xml version="1.0" encoding="UTF-8"?>',
                b'<?xml version="1.0" encoding="UTF-16"?>',
                b'<?xml version="1.0" encoding="latin-1"?>',
                b'<?xml version="1.0" encoding="bogus"?>',
                b'<?xml version="2.0"?>',
                b"\xef\xbb\xbf",  # UTF-8 byte order mark
                b"<!-- comment -->",
                b"<?pi data?>",
                b"   \n",
            ]
        )  # fmt: skip
    )
    return head + body


def reencode(draw: st.DrawFn, body: bytes) -> bytes:
    encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "gb18030", "latin-1"]))
    try:
        return body.decode("utf-8").encode(encoding)
    except (UnicodeDecodeError, UnicodeEncodeError):
        return body


def root(draw: st.DrawFn, body: bytes) -> bytes:
    name = draw(st.sampled_from([b"XML", b"root", b"xml:x", b"x"]))
    return body.replace(b"<xml>", b"<" + name + b">", 1).replace(b"</xml>", b"</" + name + b">", 1)


def splice(draw: st.DrawFn, body: bytes) -> bytes:
    at = draw(st.integers(0, len(body)))
    return body[:at] + draw(st.binary(max_size=20)) + body[at:]


MUTATIONS: list[Mutation] = [
    drop, duplicate, garble, huge, nest, attributes, not_utf8, declaration, entity, cdata,
    flip, truncate, prolog, reencode, root, splice,
]  # fmt: skip


@st.composite
def damaged_messages(draw: st.DrawFn) -> bytes:
    body = draw(valid_messages())[0].encode()
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.sampled_from(MUTATIONS))(draw, body)
    return Body(body)


def _message(sender: str) -> bytes:
    return (
        f"<xml><ToUserName>gh_shop</ToUserName><FromUserName>{sender}</FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hi</Content>"
        "<MsgId>1</MsgId></xml>"
    ).encode()


NESTED_SENDER = Body(_message("<a>" * DEEP + "o1" + "</a>" * DEEP))


# ---- parse ----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048))
def test_parse_takes_random_bytes_or_refuses_them(body: bytes) -> None:
    parsed_or_refused(body)


@FUZZ
@given(damaged_messages())
@example(NESTED_SENDER)
def test_parse_takes_a_damaged_message_or_refuses_it(body: bytes) -> None:
    parsed_or_refused(body)


def test_bug_a_deeply_nested_field_escapes_parse_as_recursion_error() -> None:
    """A FromUserName nested 5,000 deep (35 KB) raises RecursionError out of `parse` (so a
    500 from the webhook), not ProtocolError: `str()` of wechatpy's nested dict recurses.
    At Python's default recursion limit 1,000 levels (7 KB) are enough."""
    assert parsed_or_refused(NESTED_SENDER) is None


TAGS = ["xml", "ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId",
        "Event", "EventKey", "Location_X", "a", "b"]  # fmt: skip


def _element_xml(tag: str, children: list[str] | str, cdata: bool) -> str:
    if isinstance(children, str):
        inner = f"<![CDATA[{children}]]>" if cdata else escape(children)
    else:
        inner = "".join(children)
    return f"<{tag}>{inner}</{tag}>"


xml_trees = st.recursive(
    st.builds(_element_xml, st.sampled_from(TAGS), st.text(max_size=20), st.booleans()),
    lambda inner: st.builds(
        _element_xml, st.sampled_from(TAGS), st.lists(inner, max_size=6), st.booleans()
    ),
    max_leaves=20,
)


@settings(FUZZ, max_examples=200)  # the slowest to generate
@given(st.lists(xml_trees, max_size=8), st.booleans())
def test_parse_takes_random_xml_or_refuses_it(children: list[str], wrap: bool) -> None:
    body = ("<xml>" + "".join(children) + "</xml>") if wrap else "".join(children)
    parsed_or_refused(body.encode())


# ---- decrypt ---------------------------------------------------------------------------------


class _Prp(PrpCrypto):
    """wechatpy's envelope with the 16 random bytes given (hypothesis draws them, not `random`)."""

    def __init__(self, key: bytes, prefix: str) -> None:
        super().__init__(key)
        self._prefix = prefix

    def get_random_string(self) -> str:
        return self._prefix


prefixes = st.text(alphabet=B64[:62], min_size=16, max_size=16)


def encrypted(draw: st.DrawFn, xml: str, appid: str = APPID) -> str:
    return _Prp(KEY, draw(prefixes)).encrypt(xml, appid).decode()


@st.composite
def ciphertexts(draw: st.DrawFn) -> str:
    xml = draw(valid_messages())[0]
    appid = draw(st.sampled_from([APPID, APPID, "wx_other", "", APPID + "x"]))
    return encrypted(draw, xml, appid)


def _crafted(plain: bytes) -> str:
    """Any plaintext, encrypted with the app's key: whatever decrypt then finds inside."""
    plain += b"\0" * (-len(plain) % 16)
    return base64.b64encode(WeChatCipher(KEY).encrypt(plain)).decode()


@st.composite
def crafted_plaintexts(draw: st.DrawFn) -> str:
    xml = draw(st.one_of(st.binary(max_size=64), valid_messages().map(lambda c: c[0].encode())))
    declared = draw(st.one_of(st.just(len(xml)), st.integers(0, 2**32 - 1)))
    tail = draw(st.sampled_from([APPID.encode(), b"", b"\xff\xfe", b"wx_other"]))
    pad = draw(st.integers(0, 255))
    plain = draw(st.binary(min_size=16, max_size=16)) + struct.pack(">I", declared) + xml + tail
    plain += bytes([pad]) * draw(st.integers(1, 32))
    return _crafted(plain)


@st.composite
def damaged_ciphertexts(draw: st.DrawFn) -> str:
    text = draw(ciphertexts())
    for _ in range(draw(st.integers(1, 3))):
        how = draw(
            st.sampled_from(["flip", "truncate", "insert", "delete", "pad", "unpad", "junk"])
        )
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        if how == "flip" and text:
            text = text[:at] + draw(st.sampled_from(B64)) + text[at + 1 :]
        elif how == "truncate":
            text = text[:at]
        elif how == "insert":
            text = text[:at] + draw(st.text(max_size=4)) + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 16)) :]
        elif how == "pad":
            text += "=" * draw(st.integers(1, 3))
        elif how == "unpad":
            text = text.rstrip("=")
        else:
            text = draw(st.text(alphabet=B64, max_size=200))
    return text


@FUZZ
@given(st.one_of(damaged_ciphertexts(), crafted_plaintexts(), st.text(max_size=200)))
@example("")
@example("not base64!")
@example(base64.b64encode(b"\0" * 32).decode())  # a zero padding byte: nothing left to read
def test_decrypt_refuses_damaged_ciphertexts_with_signature_error(encrypt: str) -> None:
    plain = decrypted_or_refused(encrypt)
    if plain is not None:  # CBC has no MAC: damage before the appid can decrypt to garbage
        parsed_or_refused(plain)


@FUZZ
@given(
    valid_messages(),
    st.sampled_from(["wx_other", "", "wx_test_ap", "wx_test_app ", "WX_TEST_APP"]),
    st.data(),
)
def test_a_message_for_another_app_never_decrypts(
    case: tuple[str, str, str], appid: str, data: st.DataObject
) -> None:
    assert decrypted_or_refused(encrypted(data.draw, case[0], appid)) is None
    assert decrypted_or_refused(encrypted(data.draw, case[0])) == case[0].encode()


# ---- extract_encrypt -------------------------------------------------------------------------


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A safe-mode request body (as WeChat posts it), maybe damaged."""
    xml = draw(valid_messages())[0]
    encrypt = encrypted(draw, xml)
    body = (
        f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    ).encode()
    if draw(st.booleans()):  # as the simulator (and wechatpy) wrap it, signed
        timestamp, nonce = "1700000000", draw(prefixes)
        body = (
            f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{sign(TOKEN, timestamp, nonce, encrypt)}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        ).encode()
    for _ in range(draw(st.integers(0, 3))):
        body = draw(st.sampled_from(ENVELOPE_MUTATIONS))(draw, body)
    return Body(body)


def bare(draw: st.DrawFn, body: bytes) -> bytes:
    return body.replace(b"<![CDATA[", b"", 1).replace(b"]]>", b"", 1)


def spaces(draw: st.DrawFn, body: bytes) -> bytes:
    ws = draw(st.sampled_from([b" ", b"\n", b"\t\r\n", b" " * 5000]))
    return body.replace(b"<Encrypt>", b"<Encrypt>" + ws, 1).replace(
        b"</Encrypt>", ws + b"</Encrypt>", 1
    )


def many(draw: st.DrawFn, body: bytes) -> bytes:
    return b"<Encrypt>" * draw(st.integers(1, 5000)) + body


ENVELOPE_MUTATIONS: list[Mutation] = [
    flip, truncate, splice, not_utf8, bare, spaces, many, declaration, nest, huge, cdata,
]  # fmt: skip


def extracted_or_refused(body: bytes) -> str | None:
    try:
        encrypt = extract_encrypt(body)
    except SignatureError:
        return None
    assert isinstance(encrypt, str) and encrypt
    assert set(encrypt) <= set(B64) and encrypt.encode() in body
    return encrypt


@FUZZ
@given(st.one_of(envelopes(), st.binary(max_size=2048)))
@example(Body(b"<Encrypt>" + b"A" * 60_000))
@example(Body(b"<Encrypt>" + b" " * 60_000 + b"A"))
@example(Body(b"<Encrypt><![CDATA[" + b"A" * 60_000 + b"]]"))
def test_extract_encrypt_finds_base64_or_refuses_with_signature_error(body: bytes) -> None:
    encrypt = extracted_or_refused(body)
    if encrypt is not None:  # and then what it found is refused (or read) the same way
        plain = decrypted_or_refused(encrypt)
        if plain is not None:
            parsed_or_refused(plain)
