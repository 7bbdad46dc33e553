"""Every message and event type of SPEC section 4 gets a sensible answer, never a 500."""

from __future__ import annotations

import pytest

from tests.bot.driver import Shop

pytestmark = pytest.mark.sqlite_only  # what the test checks is the conversation, not the database


@pytest.mark.parametrize(
    ("kind", "fields", "expect"),
    [
        ("image", {"pic_url": "https://example.com/a.jpg", "media_id": "m1"}, "图片"),
        ("voice", {"media_id": "m2", "format": "amr"}, "语音"),
        ("voice", {"media_id": "m3", "format": "amr", "recognition": "苹果"}, "烟台红富士苹果"),
        ("location", {"location_x": 31.2, "location_y": 121.5, "scale": 15, "label": "上海市浦东新区"}, "上海市浦东新区"),
        ("link", {"title": "看看", "description": "d", "url": "https://example.com"}, "链接"),
        ("video", {"media_id": "m4", "ThumbMediaId": "t"}, "无法处理"),
        ("shortvideo", {"media_id": "m5", "ThumbMediaId": "t"}, "无法处理"),
    ],
    ids=["image", "voice", "voice-recognised", "location", "link", "video", "shortvideo"],
)
async def test_message_types(shop: Shop, kind: str, fields: dict, expect: str) -> None:
    user = shop.user()
    reply = await user.send(user.xml(kind, **fields))
    assert reply.kind == "text"
    assert expect in reply.text


@pytest.mark.parametrize(
    ("event", "key", "extra", "expect"),
    [
        ("subscribe", None, {}, "欢迎关注"),
        ("subscribe", "qrscene_ref_ABC123", {"Ticket": "t"}, "欢迎关注"),
        ("SCAN", "ref_ABC123", {"Ticket": "t"}, "欢迎回到"),
        ("CLICK", "HOT", {}, "热卖商品"),
        ("CLICK", "HELP", {}, "使用说明"),
        ("VIEW", "https://shop.example.com/x", {}, None),
        ("LOCATION", None, {"Latitude": "31.2", "Longitude": "121.5", "Precision": "30"}, None),
        ("TEMPLATESENDJOBFINISH", None, {"Status": "success", "MsgID": "123"}, None),
        ("unsubscribe", None, {}, None),
        ("user_pay_from_pay_cell", None, {}, None),
    ],
)
async def test_event_types(shop: Shop, event: str, key: str | None, extra: dict, expect: str | None) -> None:
    reply = await shop.user().event(event, key=key, **extra)
    if expect is None:
        assert reply.kind == "none"
    else:
        assert reply.kind == "text" and expect in reply.text


@pytest.mark.parametrize(
    "text",
    ["🍎🍎🍎", "苹" * 3000, "a" * 10_000, "   ", "]]><script>", "\u200b\u202e苹果", "０１", "９９"],
    ids=["emoji", "long-zh", "10kb", "blank", "cdata-break", "control", "fullwidth-1", "fullwidth-99"],
)
async def test_odd_text_gets_a_clear_reply(sqlite_shop: Shop, text: str) -> None:
    reply = await sqlite_shop.user().say(text)
    assert reply.kind == "text"
    assert reply.text
    assert len(reply.text.encode()) <= 2048


async def test_unknown_message_type_is_answered_politely(sqlite_shop: Shop) -> None:
    user = sqlite_shop.user()
    reply = await user.send(user.xml("miniprogrampage", Title="t", AppId="a"))
    assert reply.kind == "text" and "无法处理" in reply.text
