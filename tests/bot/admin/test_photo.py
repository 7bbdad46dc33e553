"""Product pictures from chat, through the real app and a fake WeChat server over HTTP:
/photo, image messages fetched by their MediaId, the card's picture and /media caching."""

from __future__ import annotations

import dataclasses
import io
import re
import time

import pytest
from PIL import Image
from sqlalchemy import select

from bot.chat.render import news_preview
from bot.keys import SERVICES
from commerce.catalog.models import ImageSource, Product, ProductImage
from commerce.staff.models import AuditEntry
from tests.bot.conftest import (
    OWNER,
    SERVICE,
    STRANGER,
    ShopFactory,
    WorldFactory,
    add_staff_by_chat,
)
from tests.bot.driver import ChatUser, Shop, db
from tests.bot.test_search_chat import numbered
from tests.bot.world import World
from tests.commerce.media.pictures import RED, photo

BASE = "https://shop.example.com"
CUSTOMER = "o_durian_fan"


@pytest.fixture
async def world(make_world: WorldFactory, sqlite_url: str) -> World:
    return await make_world(sqlite_url, staff={"owners": [OWNER]})


async def send_image(world: World, user: ChatUser, data: bytes, **labels: str) -> str:
    """`user` sends `data` as an image message: WeChat keeps the file, the message names it."""
    media_id = world.wechat.add_media(data, **labels)
    return (await user.send(user.xml("image", pic_url=f"http://mmbiz.qpic.cn/{media_id}", media_id=media_id))).text


async def add_product(user: ChatUser, command: str) -> int:
    reply = await user.say(command)
    assert "已上架新品" in reply.text, reply.text
    found = re.search(r"#(\d+)", reply.text)
    assert found is not None
    return int(found.group(1))


async def images_of(shop: Shop, product_id: int) -> list[ProductImage]:
    async with db(shop.client.app)() as session:
        found = await session.scalars(
            select(ProductImage).where(ProductImage.product_id == product_id).order_by(ProductImage.position)
        )
        return list(found.all())


async def audit_of(shop: Shop, command: str) -> list[AuditEntry]:
    async with db(shop.client.app)() as session:
        found = await session.scalars(select(AuditEntry).where(AuditEntry.command == command).order_by(AuditEntry.id))
        return list(found.all())


async def card_of(user: ChatUser, query: str, name: str):  # type: ignore[no-untyped-def]
    listed = (await user.say(query)).text
    number = next((n for n, line in numbered(listed).items() if name in line), None)
    assert number is not None, listed
    card = await user.say(str(number))
    assert card.kind == "news", card.text
    (article,) = card.articles
    return article


# ---- the whole way: add, picture, description; a customer's card; the picture served -----------


async def test_a_product_added_in_chat_gets_a_picture_and_a_description_customers_see(world: World) -> None:
    shop, owner = world.shop, world.shop.user(OWNER)
    product_id = await add_product(owner, "/add 冻干榴莲 39.9 30 零食")
    assert "/photo" in (await owner.say(f"/product {product_id}")).text

    assert "请发送" in (await owner.say(f"/photo {product_id}")).text
    reply = await send_image(world, owner, photo((120, 80), orientation=6, gps=True))
    assert f"已为 #{product_id}「冻干榴莲」添加第 1 张图片（80×120）" in reply
    (fetched,) = world.wechat.api_requests("/cgi-bin/media/get")
    assert fetched.method == "GET" and fetched.query["media_id"] in world.wechat.media
    assert "添加了 1 张图片" in (await owner.say("完成")).text

    edited = await owner.say(f"/edit {product_id} description 泰国金枕榴莲，冻干锁鲜，开袋即食")
    assert "已更新商品" in edited.text and "描述" in edited.text

    article = await card_of(shop.user(CUSTOMER), "榴莲", "冻干榴莲")
    assert "泰国金枕榴莲，冻干锁鲜" in article.description
    assert re.fullmatch(rf"{re.escape(BASE)}/media/[0-9a-f]{{64}}\.jpg", article.picurl), article.picurl
    (image,) = await images_of(shop, product_id)
    assert article.picurl == BASE + image.thumb_url and image.source == ImageSource.UPLOAD

    path = article.picurl.removeprefix(BASE)
    served = await shop.client.get(path)
    assert served.status == 200 and served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = served.headers["ETag"]
    assert etag == f'"{path.removeprefix("/media/").removesuffix(".jpg")}"'
    picture = Image.open(io.BytesIO(await served.read()))
    assert picture.size == (80, 120) and 0x8825 not in picture.getexif()  # upright, no GPS position
    again = await shop.client.get(path, headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag and await again.read() == b""
    assert (await shop.client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})).status == 304

    page = await shop.client.get(article.url.removeprefix(BASE))
    html = await page.text()
    assert image.url in html and "泰国金枕榴莲" in html  # the product page: the larger picture, the description

    long = "泰国金枕榴莲，低温冻干二十小时，保留原有的香气和营养，酥脆化渣，开袋即食，老人小孩都爱吃"
    await owner.say(f"/edit {product_id} description {long}")
    article = await card_of(shop.user(CUSTOMER), "榴莲", "冻干榴莲")
    assert news_preview(article.description) == article.description  # the card still fits whole...
    assert "泰国金枕榴莲" not in article.description  # ...so a long description is left to the page
    assert long in await (await shop.client.get(article.url.removeprefix(BASE))).text()

    (entry,) = [e for e in await audit_of(shop, "photo") if e.args == [str(product_id), "image"]]
    assert (entry.actor, entry.outcome) == (OWNER, "ok") and entry.after["images"] == [image.url]


async def test_several_pictures_in_a_row_keep_their_order_and_the_first_is_the_cards(world: World) -> None:
    owner = world.shop.user(OWNER)
    product_id = await add_product(owner, "/add 手工麻花 12 50 零食")
    await owner.say(f"/photo {product_id}")
    first, second = photo((60, 40)), photo((40, 60))
    assert "第 1 张" in await send_image(world, owner, first)
    assert "第 2 张" in await send_image(world, owner, second)
    assert "没有重复添加" in await send_image(world, owner, first)  # the same picture again
    images = await images_of(world.shop, product_id)
    assert len(images) == 2 and images[0].position < images[1].position
    article = await card_of(world.shop.user(CUSTOMER), "麻花", "手工麻花")
    assert article.picurl == BASE + images[0].thumb_url


async def test_a_real_photo_replaces_a_demo_products_drawing(world: World) -> None:
    async with db(world.shop.client.app)() as session:
        banana = await session.scalar(select(Product).where(Product.name == "香蕉"))
        assert banana is not None
    (drawn,) = await images_of(world.shop, banana.id)
    assert drawn.source == ImageSource.GENERATED
    owner = world.shop.user(OWNER)
    assert "替换示例图" in (await owner.say(f"/photo {banana.id}")).text
    assert "第 1 张" in await send_image(world, owner, photo())
    (image,) = await images_of(world.shop, banana.id)
    assert image.source == ImageSource.UPLOAD
    assert (await card_of(world.shop.user(CUSTOMER), "香蕉", "香蕉")).picurl == BASE + image.thumb_url


async def test_photo_clear_removes_the_pictures(world: World) -> None:
    owner = world.shop.user(OWNER)
    product_id = await add_product(owner, "/add 桂花糕 18 20 零食")
    await owner.say(f"/photo {product_id}")
    await send_image(world, owner, photo())
    assert "已删除" in (await owner.say(f"/photo {product_id} clear")).text
    assert await images_of(world.shop, product_id) == []
    assert (await card_of(world.shop.user(CUSTOMER), "桂花糕", "桂花糕")).picurl == ""


# ---- who may, and what a picture outside the step gets ------------------------------------------


async def test_photo_from_a_stranger_is_refused_and_their_picture_gets_the_customer_reply(world: World) -> None:
    stranger = world.shop.user(STRANGER)
    reply = await stranger.say("/photo 3")
    assert "的图片" not in reply.text and "没有找到" in reply.text  # just a search, as any text
    answer = await send_image(world, stranger, photo())
    assert "收到您的图片啦" in answer
    assert world.wechat.api_requests("/cgi-bin/media/get") == []  # nothing fetched for a customer
    (entry,) = await audit_of(world.shop, "photo")
    assert (entry.actor, entry.outcome) == (STRANGER, "refused")


async def test_service_staff_may_not_add_pictures(world: World) -> None:
    await add_staff_by_chat(world.shop)
    service = world.shop.user(SERVICE)
    assert "您的角色不能使用" in (await service.say("/photo 3")).text
    assert "/photo 商品ID" in await send_image(world, service, photo())  # staff get the hint


async def test_a_picture_staff_send_outside_the_step_gets_a_hint_not_the_customer_reply(world: World) -> None:
    answer = await send_image(world, world.shop.user(OWNER), photo())
    assert "/photo 商品ID" in answer and "收到您的图片啦" not in answer
    assert world.wechat.api_requests("/cgi-bin/media/get") == []


async def test_done_ends_the_step_and_the_next_picture_gets_the_hint(world: World) -> None:
    owner = world.shop.user(OWNER)
    await owner.say("/photo 3")
    await owner.say("done")
    assert "/photo 商品ID" in await send_image(world, owner, photo())


async def test_other_commands_work_during_the_step_and_it_goes_on(world: World) -> None:
    owner = world.shop.user(OWNER)
    product_id = await add_product(owner, "/add 牛轧糖 25 30 零食")
    await owner.say(f"/photo {product_id}")
    assert "图片 0 张" in (await owner.say(f"/product {product_id}")).text
    assert "第 1 张" in await send_image(world, owner, photo())
    assert "图片 1 张" in (await owner.say(f"/product {product_id}")).text


async def test_a_picture_after_the_step_timed_out_is_told_so(world: World) -> None:
    owner = world.shop.user(OWNER)
    await owner.say("/photo 3")
    store = world.shop.client.app[SERVICES].dialogs.store
    stored = await store.get(OWNER)
    assert stored is not None and stored.dialog == "photo"
    await store.put(OWNER, dataclasses.replace(stored, expires_at=time.time() - 1))
    assert "上传商品图片的步骤已超时" in await send_image(world, owner, photo())
    assert world.wechat.api_requests("/cgi-bin/media/get") == []


# ---- what goes wrong --------------------------------------------------------------------------


async def test_bytes_that_are_no_picture_get_a_clear_reply_and_change_nothing(world: World) -> None:
    owner = world.shop.user(OWNER)
    product_id = await add_product(owner, "/add 冻干草莓 29 10 零食")
    await owner.say(f"/photo {product_id}")
    answer = await send_image(world, owner, b"GIF89a but not really a picture", content_type="image/jpeg")
    assert "这不是一张能用的图片" in answer and "JPG" in answer
    assert await images_of(world.shop, product_id) == []
    assert "第 1 张" in await send_image(world, owner, photo())  # the step goes on
    failed = [e for e in await audit_of(world.shop, "photo") if e.outcome == "failed"]
    assert failed and failed[0].after == {"error": "image_invalid"}


async def test_an_expired_media_id_asks_for_the_picture_again(world: World) -> None:
    owner = world.shop.user(OWNER)
    await owner.say("/photo 3")
    reply = await owner.send(owner.xml("image", pic_url="http://mmbiz.qpic.cn/x", media_id="gone-after-3-days"))
    assert "没能从微信取到这张图片" in reply.text


async def test_wechat_not_answering_says_so(world: World) -> None:
    owner = world.shop.user(OWNER)
    await owner.say("/photo 3")
    world.wechat.fail_next(times=10)  # errcode -1 every time: retried, then given up
    assert "微信暂时没有响应" in await send_image(world, owner, photo())


async def test_a_picture_over_the_limit_is_refused(make_world: WorldFactory, sqlite_url: str) -> None:
    world = await make_world(sqlite_url, staff={"owners": [OWNER]}, media={"max_bytes": 2048})
    owner = world.shop.user(OWNER)
    await owner.say("/photo 3")
    answer = await send_image(world, owner, photo((800, 800)))
    assert "图片太大了，每张最多 2 KB" in answer


async def test_without_an_appsecret_the_shop_says_it_cannot_fetch_pictures(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await make_shop(sqlite_url, staff={"owners": [OWNER]})
    owner = shop.user(OWNER)
    await owner.say("/photo 3")
    reply = await owner.send(owner.xml("image", pic_url="http://mmbiz.qpic.cn/x", media_id="MEDIA_1"))
    assert "wechat.appsecret" in reply.text


async def test_photo_of_a_product_that_does_not_exist(world: World) -> None:
    owner = world.shop.user(OWNER)
    assert "没有找到商品 #99999" in (await owner.say("/photo 99999")).text
    assert "参数不对" in (await owner.say("/photo")).text and "/photo 商品ID" in (await owner.say("/photo x")).text


async def test_media_names_that_are_not_pictures_are_not_found(world: World) -> None:
    client = world.shop.client
    for path in ("/media/../config.toml", "/media/" + "a" * 64 + ".svg", "/media/notahash.jpg", "/media/" + "b" * 64 + ".jpg"):
        assert (await client.get(path)).status == 404, path


def test_the_test_photo_is_red_on_the_left() -> None:  # what the orientation checks rely on
    image = Image.open(io.BytesIO(photo((120, 80))))
    assert all(abs(a - b) < 40 for a, b in zip(image.getpixel((10, 40))[:3], RED, strict=True))  # type: ignore[index]


async def test_an_import_with_picture_links_and_a_description_shows_them_on_the_card(
    make_shop: ShopFactory, sqlite_url: str
) -> None:
    shop = await make_shop(sqlite_url, staff={"owners": [OWNER]})
    text = (
        "sku_code,name,category,price_yuan,stock,description,images\n"
        "SNK-MAHUA,天津麻花,零食,15,40,酥脆香甜，手工现做,https://img.example.com/mahua.jpg|https://img.example.com/2.jpg\n"
    )
    assert "新增 1 个规格" in (await shop.user(OWNER).say("/import\n" + text)).text
    article = await card_of(shop.user(CUSTOMER), "麻花", "天津麻花")
    assert article.picurl == "https://img.example.com/mahua.jpg"  # recorded as given, never fetched
    assert "酥脆香甜，手工现做" in article.description
