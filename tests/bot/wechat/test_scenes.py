"""QR scenes: pack/parse round trips, every malformed scene, and scanning them in chat."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from bot.wechat import scenes
from bot.wechat.scenes import GroupInvite, ProductShare, ReferralInvite
from commerce.catalog.models import Product
from tests.bot.driver import Shop, db

pytestmark = pytest.mark.sqlite_only  # what the test checks is the conversation, not the database

# ---- pack / parse ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scene", "packed"),
    [
        (ProductShare(123), "v1.p.123"),
        (ProductShare(1), "v1.p.1"),
        (ProductShare(2**31 - 1), "v1.p.2147483647"),
        (ReferralInvite("AB12CD"), "v1.r.AB12CD"),
        (GroupInvite("XYZ789"), "v1.g.XYZ789"),
        (GroupInvite("A" * 16), "v1.g." + "A" * 16),
        (ReferralInvite("ABCD"), "v1.r.ABCD"),
    ],
)
def test_pack_and_parse_round_trip(scene: scenes.Scene, packed: str) -> None:
    assert scene.pack() == packed == scenes.pack(scene)
    assert scenes.parse(packed) == scene
    assert len(packed) <= scenes.SCENE_STR_MAX


@pytest.mark.parametrize(
    "scene_str",
    [
        "",
        "v1",
        "v1.p",
        "v1.p.",
        "v1..123",
        ".p.123",
        "v2.p.123",  # another version
        "V1.p.123",
        "v1.x.123",  # unknown kind
        "v1.P.123",
        "v1.p.0",
        "v1.p.-1",
        "v1.p.007",  # leading zeros: not how we pack
        "v1.p.12a",
        "v1.p.1.5",
        "v1.p.2147483648",  # past products.id
        "v1.p." + "9" * 30,
        "v1.p.１２３",  # full-width digits
        "v1.p. 123",
        "v1.p.123 ",
        "v1.p.123\n",
        "v1.r.ab12cd",  # lower case
        "v1.r.ABC",  # too short
        "v1.r." + "A" * 17,  # too long
        "v1.r.AB-12",
        "v1.r.AB_12",
        "v1.r.ÀB12CD",
        "v1.g.XYZ789.extra",
        "v1.g.",
        "ref_ABC123",  # a scene from before this format
        "qrscene_v1.p.123",  # the prefix is the protocol's job
        "v1.p.123" + "." * 60,
        "x" * 65,  # over WeChat's limit
        "v1.r." + "A" * 60,
    ],
)
def test_malformed_scenes_parse_to_none(scene_str: str) -> None:
    assert scenes.parse(scene_str) is None


@pytest.mark.parametrize("value", [None, 123, b"v1.p.123", ["v1.p.123"]])
def test_parse_of_a_non_string_is_none(value: object) -> None:
    assert scenes.parse(value) is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: ProductShare(0),
        lambda: ProductShare(-5),
        lambda: ProductShare(2**31),
        lambda: ProductShare(True),
        lambda: ProductShare("12"),  # type: ignore[arg-type]
        lambda: ReferralInvite("ab12"),
        lambda: ReferralInvite("AB"),
        lambda: ReferralInvite("A" * 17),
        lambda: ReferralInvite("AB.12"),
        lambda: GroupInvite(""),
        lambda: GroupInvite(12345),  # type: ignore[arg-type]
    ],
)
def test_invalid_values_cannot_be_built(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        build()


# ---- scanning in chat --------------------------------------------------------------------------


async def _product_id(shop: Shop, name: str) -> int:
    async with db(shop.client.app)() as session:
        return int(await session.scalar(select(Product.id).where(Product.name == name)))


@pytest.mark.parametrize("how", ["scan", "follow"])
async def test_a_product_share_opens_the_card_and_add_to_cart_works(shop: Shop, how: str) -> None:
    banana = await _product_id(shop, "香蕉")
    user = shop.user()
    scene = ProductShare(banana).pack()
    if how == "scan":
        card = await user.event("SCAN", key=scene, Ticket="t")
    else:
        card = await user.event("subscribe", key=f"qrscene_{scene}", Ticket="t")
    assert card.kind == "news"
    (article,) = card.articles
    assert article.title.startswith("香蕉")
    assert article.url.endswith(f"/products/{banana}")
    assert article.description.startswith("欢迎！") is (how == "follow")  # the welcome, short: the card fits
    added = await user.say("加入购物车 2")
    assert added.kind == "text" and "已加入购物车：香蕉" in added.text and "×2" in added.text


async def test_a_shared_product_with_variants_asks_for_one_then_adds(shop: Shop) -> None:
    apple = await _product_id(shop, "烟台红富士苹果")
    user = shop.user()
    card = await user.event("SCAN", key=ProductShare(apple).pack(), Ticket="t")
    assert "1.3斤装" in card.articles[0].description
    assert "2. 5斤装" in (await user.say("加入购物车")).text
    assert "已加入购物车：烟台红富士苹果（5斤装） ×1" in (await user.say("2")).text
    back = await user.say("返回")
    assert "1. 烟台红富士苹果" in back.text


@pytest.mark.parametrize("event", ["SCAN", "subscribe"])
async def test_an_off_sale_product_share_is_answered_politely(shop: Shop, event: str) -> None:
    banana = await _product_id(shop, "香蕉")
    async with db(shop.client.app)() as session, session.begin():
        await session.execute(update(Product).where(Product.id == banana).values(status="off_sale"))
    key = ProductShare(banana).pack()
    reply = await shop.user().event(event, key=key if event == "SCAN" else f"qrscene_{key}", Ticket="t")
    assert reply.kind == "text"
    assert "已下架或不存在" in reply.text
    assert ("欢迎关注" if event == "subscribe" else "欢迎回到") in reply.text


async def test_a_missing_product_share_is_answered_politely(shop: Shop) -> None:
    reply = await shop.user().event("SCAN", key=ProductShare(999_999).pack(), Ticket="t")
    assert reply.kind == "text" and "已下架或不存在" in reply.text


@pytest.mark.parametrize(
    "scene",
    ["garbage", "v1.p.0", "v9.p.1", "v1.p.99999999999", "v1.z.ABCD", "<xml>", ProductShare(1).pack() + ".x"],
)
async def test_a_garbage_scene_gets_the_welcome(sqlite_shop: Shop, scene: str) -> None:
    follow = await sqlite_shop.user("o_new").event("subscribe", key=f"qrscene_{scene}", Ticket="t")
    assert follow.kind == "text" and "欢迎关注测试小店" in follow.text
    scan = await sqlite_shop.user("o_old").event("SCAN", key=scene, Ticket="t")
    assert scan.kind == "text" and "欢迎回到测试小店" in scan.text


@pytest.mark.parametrize("scene", [ReferralInvite("AB12CD"), GroupInvite("XYZ789")])
async def test_referral_and_group_invites_get_the_welcome_for_now(sqlite_shop: Shop, scene: scenes.Scene) -> None:
    follow = await sqlite_shop.user().event("subscribe", key=f"qrscene_{scene.pack()}", Ticket="t")
    assert follow.kind == "text" and "欢迎关注测试小店" in follow.text


async def test_the_welcome_line_is_english_for_english_speakers(sqlite_shop: Shop) -> None:
    banana = await _product_id(sqlite_shop, "香蕉")
    user = sqlite_shop.user()
    await user.say("help")  # an English keyword switches the customer to English
    card = await user.event("subscribe", key=f"qrscene_{ProductShare(banana).pack()}", Ticket="t")
    assert card.kind == "news"
    assert card.articles[0].description.startswith("Hi! ")
