"""Pure protocol functions: signatures, parsing, de-duplication keys."""

from __future__ import annotations

import hashlib

import pytest

from bot.wechat import protocol
from bot.wechat.protocol import ProtocolError, SignatureError


def _xml(**fields: str) -> bytes:
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{body}</xml>".encode()


def test_signature_is_sha1_of_sorted_parts() -> None:
    expected = hashlib.sha1("".join(sorted(["tok", "123", "abc"])).encode()).hexdigest()
    assert protocol.signature("tok", "123", "abc") == expected
    protocol.check_signature(expected, "tok", "123", "abc")
    with pytest.raises(SignatureError):
        protocol.check_signature(expected, "tok", "124", "abc")
    with pytest.raises(SignatureError):
        protocol.check_signature(None, "tok", "123", "abc")


def test_subscribe_through_a_qr_code_keeps_the_scene() -> None:
    msg = protocol.parse(
        _xml(ToUserName="gh", FromUserName="o1", CreateTime="1", MsgType="event",
             Event="subscribe", EventKey="qrscene_ref_X1")
    )
    assert (msg.event, msg.scene) == ("subscribe", "ref_X1")
    scan = protocol.parse(
        _xml(ToUserName="gh", FromUserName="o1", CreateTime="1", MsgType="event", Event="SCAN", EventKey="grp_9")
    )
    assert (scan.event, scan.scene) == ("scan", "grp_9")


def test_dedupe_keys() -> None:
    text = protocol.parse(
        _xml(ToUserName="gh", FromUserName="o1", CreateTime="5", MsgType="text", Content="hi", MsgId="77")
    )
    assert text.dedupe_key == "m:77"
    click_a = protocol.parse(
        _xml(ToUserName="gh", FromUserName="o1", CreateTime="5", MsgType="event", Event="CLICK", EventKey="HOT")
    )
    click_b = protocol.parse(
        _xml(ToUserName="gh", FromUserName="o1", CreateTime="5", MsgType="event", Event="CLICK", EventKey="HELP")
    )
    assert click_a.dedupe_key.startswith("e:o1:5:click")
    assert click_a.dedupe_key != click_b.dedupe_key
    job = protocol.parse(
        _xml(ToUserName="gh", FromUserName="o1", CreateTime="5", MsgType="event",
             Event="TEMPLATESENDJOBFINISH", MsgID="900")
    )
    assert job.msg_id is None and job.dedupe_key.startswith("e:o1:5:templatesendjobfinish")


@pytest.mark.parametrize(
    "body",
    [b"<!DOCTYPE x><xml/>", b'<xml><!ENTITY a "b"></xml>', b"<xml>", b"\xff\xfe", _xml(MsgType="text")],
)
def test_parse_refuses_bad_input(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse(body)


def test_safe_mode_round_trip_and_wrong_app() -> None:
    from wechatpy.crypto import PrpCrypto

    key = protocol.aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    encrypt = PrpCrypto(key).encrypt("<xml>hi</xml>", "wx_app").decode()
    assert protocol.decrypt(encrypt, key=key, appid="wx_app") == b"<xml>hi</xml>"
    with pytest.raises(SignatureError):
        protocol.decrypt(encrypt, key=key, appid="wx_other")
    with pytest.raises(SignatureError):
        protocol.decrypt("not base64!", key=key, appid="wx_app")
    assert protocol.extract_encrypt(f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()) == encrypt


def test_freshness_window() -> None:
    protocol.check_freshness("1000", max_skew=0, now=99999)  # off
    protocol.check_freshness("1000", max_skew=300, now=1200)
    with pytest.raises(SignatureError):
        protocol.check_freshness("1000", max_skew=300, now=1400)
    with pytest.raises(SignatureError):
        protocol.check_freshness("soon", max_skew=300, now=1400)
