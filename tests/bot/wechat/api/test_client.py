"""WeChatClient against the fake WeChat server, over real HTTP: request shapes, retries,
token refresh on 40001/42001, errors with their errcode, and no secrets in the logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.chat.render import RenderedArticle
from bot.wechat.api import (
    AccessTokenManager,
    ErrCode,
    MediaTooLarge,
    MemoryTokenStore,
    StableTokenFetcher,
    WeChatClient,
    WeChatError,
    WeChatUnavailable,
    WeChatUncertain,
)
from tests.fakes.wechat import APPID, APPSECRET, Failure, FakeWeChat

ARTICLE = RenderedArticle(title="新品上架", description="限时九折", picurl="https://x/p.jpg", url="https://x/i/1")


class Sleeps:
    """Records backoff delays and sleeps only a moment."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> tuple[FakeWeChat, str]:
    wechat = FakeWeChat()
    server = await aiohttp_server(wechat.app())
    return wechat, str(server.make_url("")).rstrip("/")


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(
    http: aiohttp.ClientSession, base_url: str, *, sleep: Sleeps | None = None, **kwargs: object
) -> WeChatClient:
    fetch = StableTokenFetcher(http, base_url=base_url, appid=APPID, appsecret=APPSECRET)
    tokens = AccessTokenManager(fetch, MemoryTokenStore())
    options: dict = {"timeout": 2.0, "backoff_base": 0.001, "backoff_max": 0.01, **kwargs}
    if sleep is not None:
        options["sleep"] = sleep
    return WeChatClient(http, base_url=base_url, tokens=tokens, **options)


@pytest.fixture
def client(http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], sleeps: Sleeps) -> WeChatClient:
    return make_client(http, fake[1], sleep=sleeps)


# ---- request shapes ----------------------------------------------------------------------------


async def test_send_text_is_a_customer_service_message(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    wechat, _ = fake
    await client.send_text("o_user", "您好，订单已发货")
    [sent] = wechat.api_requests()
    assert sent.method == "POST" and sent.path == "/cgi-bin/message/custom/send"
    assert wechat.current is not None and sent.query["access_token"] == wechat.current.value
    assert sent.json == {"touser": "o_user", "msgtype": "text", "text": {"content": "您好，订单已发货"}}


async def test_send_news_sends_one_article(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    wechat, _ = fake
    await client.send_news("o_user", [ARTICLE])
    [sent] = wechat.api_requests("/message/custom/send")
    assert sent.json == {
        "touser": "o_user",
        "msgtype": "news",
        "news": {
            "articles": [
                {"title": "新品上架", "description": "限时九折", "url": "https://x/i/1", "picurl": "https://x/p.jpg"}
            ]
        },
    }


@pytest.mark.parametrize("count", [0, 2])
async def test_send_news_wants_exactly_one_article(
    client: WeChatClient, fake: tuple[FakeWeChat, str], count: int
) -> None:
    with pytest.raises(ValueError):
        await client.send_news("o_user", [ARTICLE] * count)
    assert fake[0].received == []


async def test_send_image(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    await client.send_image("o_user", "MEDIA_1")
    [sent] = fake[0].api_requests()
    assert sent.json == {"touser": "o_user", "msgtype": "image", "image": {"media_id": "MEDIA_1"}}


async def test_send_template_wraps_values_and_returns_msgid(
    client: WeChatClient, fake: tuple[FakeWeChat, str]
) -> None:
    msgid = await client.send_template(
        "o_user", "TPL_PAID", {"thing1": "咖啡豆", "amount2": "¥39.90"}, url="https://shop/o/1"
    )
    assert isinstance(msgid, int) and msgid > 0
    msgid_without_url = await client.send_template("o_user", "TPL_PAID", {"thing1": "x"})
    assert msgid_without_url != msgid
    first, second = fake[0].api_requests("/message/template/send")
    assert first.json == {
        "touser": "o_user",
        "template_id": "TPL_PAID",
        "url": "https://shop/o/1",
        "data": {"thing1": {"value": "咖啡豆"}, "amount2": {"value": "¥39.90"}},
    }
    assert second.json is not None and "url" not in second.json


async def test_create_temporary_qr(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    qr = await client.create_qr("invite:42", permanent=False, expire_seconds=3600)
    [sent] = fake[0].api_requests("/qrcode/create")
    assert sent.json == {
        "action_name": "QR_STR_SCENE",
        "expire_seconds": 3600,
        "action_info": {"scene": {"scene_str": "invite:42"}},
    }
    assert qr.expire_seconds == 3600 and qr.url.startswith("http://weixin.qq.com/q/")
    assert qr.image_url.startswith("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH")
    assert "==" not in qr.image_url  # the ticket is URL-encoded


async def test_create_permanent_qr_with_configured_image_base(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]
) -> None:
    client = make_client(http, fake[1], qr_image_base="https://img.example/showqrcode")
    qr = await client.create_qr("ref:o_abc", permanent=True)
    [sent] = fake[0].api_requests("/qrcode/create")
    assert sent.json == {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "ref:o_abc"}}}
    assert qr.expire_seconds is None
    assert qr.image_url.startswith("https://img.example/showqrcode?ticket=")


@pytest.mark.parametrize("scene", ["", "x" * 65])
async def test_scene_str_is_validated_before_calling(
    client: WeChatClient, fake: tuple[FakeWeChat, str], scene: str
) -> None:
    with pytest.raises(ValueError, match="scene_str"):
        await client.create_qr(scene, permanent=True)
    assert fake[0].received == []


async def test_scene_str_of_64_characters_is_fine(client: WeChatClient) -> None:
    assert (await client.create_qr("界" * 64, permanent=False)).expire_seconds == 2_592_000


async def test_qr_expiry_is_validated(client: WeChatClient) -> None:
    with pytest.raises(ValueError, match="expire_seconds"):
        await client.create_qr("s", permanent=False, expire_seconds=2_592_001)


async def test_create_menu(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    menu = {"button": [{"type": "click", "name": "今日特价", "key": "V1001_TODAY"}]}
    await client.create_menu(menu)
    [sent] = fake[0].api_requests("/menu/create")
    assert sent.json == menu


@pytest.mark.parametrize(
    ("menu", "errcode"),
    [
        ({"button": []}, 40016),
        ({"button": [{"type": "click", "name": "热卖", "key": "HOT"}] * 4}, 40016),
        ({"button": [{"type": "scancode_push", "name": "扫码", "key": "S"}]}, 40017),
        ({"button": [{"type": "click", "name": "五个汉字名", "key": "HOT"}, {"type": "click", "name": "x" * 17, "key": "K"}]}, 40018),
        ({"button": [{"type": "click", "name": "热卖"}]}, 40019),
        ({"button": [{"name": "我的", "sub_button": [{"type": "click", "name": "订单", "key": "O"}] * 6}]}, 40023),
        ({"button": [{"name": "我的", "sub_button": [{"type": "click", "name": "长" * 21, "key": "O"}]}]}, 40025),
        ({"button": [{"name": "我的", "sub_button": [{"type": "view", "name": "官网", "url": "ftp://x"}]}]}, 40027),
    ],
)
async def test_create_menu_error_is_raised(
    client: WeChatClient, fake: tuple[FakeWeChat, str], menu: dict[str, object], errcode: int
) -> None:
    """The fake refuses what WeChat's published rules refuse, with WeChat's errcode."""
    with pytest.raises(WeChatError) as caught:
        await client.create_menu(menu)
    assert caught.value.errcode == errcode
    assert fake[0].menu is None


async def test_user_info(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    fake[0].users["o_user"] = {"unionid": "u_1"}
    info = await client.user_info("o_user")
    assert info["subscribe"] == 1 and info["openid"] == "o_user" and info["unionid"] == "u_1"
    [sent] = fake[0].api_requests("/user/info")
    assert sent.method == "GET" and sent.query["openid"] == "o_user" and sent.query["lang"] == "zh_CN"


async def test_upload_media_is_multipart(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    media = await client.upload_media("image", "poster.png", b"\x89PNG...")
    assert media.media_id.startswith("MEDIA_") and media.kind == "image" and media.created_at > 0
    [sent] = fake[0].api_requests("/media/upload")
    assert sent.query["type"] == "image"
    assert sent.form["media"] == ("poster.png", b"\x89PNG...")


async def test_upload_media_kind_is_validated(client: WeChatClient) -> None:
    with pytest.raises(ValueError):
        await client.upload_media("pdf", "a.pdf", b"x")


async def test_upload_is_resent_whole_after_a_failure(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    fake[0].fail_next(Failure(status=500))
    await client.upload_media("thumb", "t.jpg", b"jpeg-bytes")
    first, second = fake[0].api_requests("/media/upload")
    assert first.form["media"] == second.form["media"] == ("t.jpg", b"jpeg-bytes")


# ---- tokens ----------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    for _ in range(3):
        await client.send_text("o_user", "hi")
    await client.user_info("o_user")
    assert fake[0].token_fetches == 1
    assert len({r.query["access_token"] for r in fake[0].api_requests()}) == 1


@pytest.mark.parametrize(
    ("spoil", "errcode"), [("revoke_token", 40001), ("expire_token", 42001)], ids=["40001", "42001"]
)
async def test_rejected_token_is_refreshed_once_and_the_call_retried(
    client: WeChatClient, fake: tuple[FakeWeChat, str], spoil: str, errcode: int
) -> None:
    wechat, _ = fake
    await client.send_text("o_user", "first")
    old = wechat.current
    getattr(wechat, spoil)()
    await client.send_text("o_user", "second")
    assert wechat.token_fetches == 2
    assert [r.path for r in wechat.requests("/stable_token")][-1] == "/cgi-bin/stable_token"
    assert wechat.requests("/stable_token")[-1].json["force_refresh"] is True  # type: ignore[index]
    _, rejected, retried = wechat.api_requests()
    assert old is not None and rejected.query["access_token"] == old.value
    assert retried.query["access_token"] != old.value and retried.json == rejected.json


async def test_a_token_rejected_twice_is_an_error_not_a_loop(
    client: WeChatClient, fake: tuple[FakeWeChat, str]
) -> None:
    wechat, _ = fake
    wechat.fail_next(Failure(errcode=40001), times=5)
    with pytest.raises(WeChatError) as caught:
        await client.send_text("o_user", "hi")
    assert caught.value.code == ErrCode.INVALID_CREDENTIAL
    assert wechat.token_fetches == 2 and len(wechat.api_requests()) == 2


# ---- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [Failure(errcode=-1), Failure(status=500)], ids=["busy", "http500"])
async def test_transient_failures_are_retried_with_backoff(
    client: WeChatClient, fake: tuple[FakeWeChat, str], sleeps: Sleeps, failure: Failure
) -> None:
    fake[0].fail_next(failure, times=2)
    await client.send_text("o_user", "hi")
    assert len(fake[0].api_requests()) == 3
    assert len(sleeps.delays) == 2


async def test_a_slow_answer_to_a_read_times_out_and_is_retried(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]
) -> None:
    wechat, base_url = fake
    client = make_client(http, base_url, timeout=0.2)
    wechat.fail_next(Failure(delay=1.0))
    await asyncio.wait_for(client.user_info("o_user"), timeout=1.0)
    assert len(wechat.api_requests()) == 2


async def test_a_send_whose_answer_is_too_slow_is_uncertain_and_never_repeated(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]
) -> None:
    """Issue 13 (a slow WeChat API doubled notices): WeChat took the message, its answer
    came after the client's timeout; the old client sent it again up to three times."""
    wechat, base_url = fake
    client = make_client(http, base_url, timeout=0.2)
    wechat.answer_delay = 0.5
    with pytest.raises(WeChatUncertain):
        await client.send_text("o_user", "hi")
    with pytest.raises(WeChatUncertain):
        await client.send_template("o_user", "TPL", {"first": "hi"})
    assert len(wechat.api_requests()) == 2 and len(wechat.delivered) == 2


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_on_a_send_is_uncertain(
    client: WeChatClient, fake: tuple[FakeWeChat, str], status: int
) -> None:
    fake[0].fail_next(Failure(status=status), times=5)
    with pytest.raises(WeChatUncertain):
        await client.send_text("o_user", "hi")
    assert len(fake[0].api_requests()) == 1


async def test_a_connection_that_never_opened_is_certainly_not_sent(
    http: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    client = make_client(http, "http://127.0.0.1:9", sleep=sleeps, retries=1)
    with pytest.raises(WeChatUnavailable):
        await client.send_text("o_user", "hi")
    assert len(sleeps.delays) == 1  # a send that certainly did not happen is retried


async def test_retries_are_bounded_and_backoff_grows_within_its_cap(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], sleeps: Sleeps
) -> None:
    wechat, base_url = fake
    client = make_client(http, base_url, sleep=sleeps, retries=4, backoff_base=0.1, backoff_max=0.5)
    wechat.fail_next(Failure(errcode=-1), times=10)
    with pytest.raises(WeChatUnavailable) as caught:
        await client.send_text("o_user", "hi")
    assert caught.value.errcode == -1
    assert len(wechat.api_requests()) == 5  # 1 + 4 retries
    ceilings = [0.1, 0.2, 0.4, 0.5]
    assert len(sleeps.delays) == 4
    for delay, ceiling in zip(sleeps.delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


async def test_network_errors_give_up_as_unavailable(http: aiohttp.ClientSession, sleeps: Sleeps) -> None:
    client = make_client(http, "http://127.0.0.1:9", sleep=sleeps, retries=2)
    with pytest.raises(WeChatUnavailable):
        await client.send_text("o_user", "hi")
    assert len(sleeps.delays) == 2


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("errcode", [ErrCode.WINDOW_CLOSED, ErrCode.OVER_QUOTA, ErrCode.UNSUBSCRIBED])
async def test_refusals_raise_with_their_errcode_and_are_not_retried(
    client: WeChatClient, fake: tuple[FakeWeChat, str], errcode: ErrCode
) -> None:
    fake[0].refuse("o_gone", errcode)
    with pytest.raises(WeChatError) as caught:
        await client.send_text("o_gone", "hi")
    assert caught.value.errcode == errcode and caught.value.code is errcode
    assert caught.value.errmsg
    assert len(fake[0].api_requests()) == 1
    await client.send_text("o_other", "hi")  # others still get messages


async def test_logs_and_errors_never_contain_the_token_or_secret(
    client: WeChatClient, fake: tuple[FakeWeChat, str], caplog: pytest.LogCaptureFixture
) -> None:
    wechat, _ = fake
    caplog.set_level(logging.DEBUG)
    await client.send_text("o_user", "hi")
    tokens = [wechat.current.value] if wechat.current else []
    wechat.revoke_token()
    wechat.fail_next(Failure(errcode=-1))
    await client.send_text("o_user", "hi")
    wechat.fail_next(Failure(status=500), times=10)
    with pytest.raises(WeChatError) as caught:
        await client.send_text("o_user", "hi")
    tokens += [t for t in wechat.tokens]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]  # not the fake's access log
    text = "\n".join(ours) + str(caught.value) + repr(caught.value)
    assert len(ours) >= 4
    for secret in [APPSECRET, *tokens]:
        assert secret not in text


async def test_a_failed_token_fetch_is_retried_like_any_call(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], sleeps: Sleeps
) -> None:
    wechat, base_url = fake
    real = StableTokenFetcher(http, base_url=base_url, appid=APPID, appsecret=APPSECRET)
    failures = [WeChatUnavailable("stable_token: HTTP 502")]

    async def flaky(*, force: bool):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        return await real(force=force)

    tokens = AccessTokenManager(flaky, MemoryTokenStore())
    client = WeChatClient(http, base_url=base_url, tokens=tokens, backoff_base=0.001, sleep=sleeps)
    await client.send_text("o_user", "hi")
    assert wechat.token_fetches == 1 and len(sleeps.delays) == 1 and len(wechat.api_requests()) == 1


# ---- media: what users sent, fetched by its MediaId ---------------------------------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_download_media_returns_the_file_a_user_sent(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    wechat, _ = fake
    media_id = wechat.add_media(PNG_BYTES)
    got = await client.download_media(media_id, max_bytes=1024)
    assert (got.data, got.content_type) == (PNG_BYTES, "image/png")
    (request,) = wechat.api_requests("/cgi-bin/media/get")
    assert request.method == "GET" and request.query["media_id"] == media_id


async def test_what_was_uploaded_can_be_downloaded_again(client: WeChatClient) -> None:
    uploaded = await client.upload_media("image", "p.png", PNG_BYTES)
    assert (await client.download_media(uploaded.media_id, max_bytes=1024)).data == PNG_BYTES


@pytest.mark.parametrize("media_id", ["no-such-media", "expired"])
async def test_an_unknown_or_expired_media_id_is_errcode_40007(
    client: WeChatClient, fake: tuple[FakeWeChat, str], sleeps: Sleeps, media_id: str
) -> None:
    wechat, _ = fake
    if media_id == "expired":  # temporary media live 3 days
        media_id = wechat.add_media(PNG_BYTES)
        wechat.media[media_id].created_at -= 3 * 24 * 3600 + 1
    with pytest.raises(WeChatError) as caught:
        await client.download_media(media_id, max_bytes=1024)
    assert caught.value.errcode == 40007 and "invalid media_id" in caught.value.errmsg
    assert len(wechat.api_requests("/cgi-bin/media/get")) == 1 and sleeps.delays == []  # not retried


async def test_the_fake_labels_its_media_errors_text_plain_as_wechat_does(
    http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str], client: WeChatClient
) -> None:
    wechat, base_url = fake
    await client.user_info("o_user")  # a token to ask with
    assert wechat.current is not None
    async with http.get(f"{base_url}/cgi-bin/media/get",
                        params={"access_token": wechat.current.value, "media_id": "nope"}) as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        assert await resp.json(content_type=None) == {"errcode": 40007, "errmsg": "invalid media_id"}
    media_id = wechat.add_media(PNG_BYTES)
    async with http.get(f"{base_url}/cgi-bin/media/get",
                        params={"access_token": wechat.current.value, "media_id": media_id}) as resp:
        assert resp.headers["Content-disposition"] == f'attachment; filename="{media_id}.png"'


async def test_a_file_larger_than_asked_for_is_not_read_whole(
    client: WeChatClient, fake: tuple[FakeWeChat, str], sleeps: Sleeps
) -> None:
    wechat, _ = fake
    media_id = wechat.add_media(PNG_BYTES + b"\x00" * 5000)
    with pytest.raises(MediaTooLarge) as caught:
        await client.download_media(media_id, max_bytes=1000)
    assert caught.value.limit == 1000
    assert len(wechat.api_requests("/cgi-bin/media/get")) == 1 and sleeps.delays == []


async def test_a_rejected_token_is_refreshed_for_a_download_too(
    client: WeChatClient, fake: tuple[FakeWeChat, str]
) -> None:
    wechat, _ = fake
    media_id = wechat.add_media(PNG_BYTES)
    await client.download_media(media_id, max_bytes=1024)
    wechat.revoke_token()
    assert (await client.download_media(media_id, max_bytes=1024)).data == PNG_BYTES
    assert wechat.token_fetches == 2


async def test_a_download_is_retried_when_wechat_is_busy(
    client: WeChatClient, fake: tuple[FakeWeChat, str], sleeps: Sleeps
) -> None:
    wechat, _ = fake
    media_id = wechat.add_media(PNG_BYTES)
    wechat.fail_next(Failure(errcode=-1))
    wechat.fail_next(Failure(status=500))
    assert (await client.download_media(media_id, max_bytes=1024)).data == PNG_BYTES
    assert len(sleeps.delays) == 2


async def test_a_video_answers_its_url_not_a_file(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    wechat, _ = fake
    media_id = wechat.add_media(b"\x00\x00\x00\x18ftypmp42", kind="video")
    with pytest.raises(WeChatError) as caught:
        await client.download_media(media_id, max_bytes=1024)
    assert caught.value.errcode == ErrCode.UNREADABLE


@pytest.mark.parametrize("media_id", ["", "x" * 300, "bad\nid"])
async def test_a_media_id_no_message_could_carry_is_refused_before_asking(client: WeChatClient, media_id: str) -> None:
    with pytest.raises(ValueError):
        await client.download_media(media_id, max_bytes=1024)
