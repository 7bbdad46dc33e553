"""InviteService against the fake WeChat server over HTTP: QR codes, their cache (in
process and in Redis), share links, and the `/s/{scene}` redirect in the real app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from bot.web.invites import (
    InviteService,
    InvitesUnavailable,
    MemoryQrCache,
    NoQrCodes,
    RedisQrCache,
    cache_ttl,
)
from bot.wechat.api import (
    AccessTokenManager,
    MemoryTokenStore,
    StableTokenFetcher,
    WeChatClient,
    WeChatError,
)
from bot.wechat.scenes import GroupInvite, ProductShare, ReferralInvite
from tests.bot.driver import Shop
from tests.fakes.wechat import APPID, APPSECRET, Failure, FakeWeChat


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
def client(http: aiohttp.ClientSession, fake: tuple[FakeWeChat, str]) -> WeChatClient:
    fetch = StableTokenFetcher(http, base_url=fake[1], appid=APPID, appsecret=APPSECRET)
    return WeChatClient(
        http, base_url=fake[1], tokens=AccessTokenManager(fetch, MemoryTokenStore()),
        timeout=2.0, retries=0, backoff_base=0.001, backoff_max=0.01,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def created(fake: tuple[FakeWeChat, str]) -> list[str]:
    """The scene_str of every QR code WeChat was asked for."""
    return [r.json["action_info"]["scene"]["scene_str"] for r in fake[0].api_requests("/qrcode/create") if r.json]


async def test_qr_for_creates_a_temporary_code_once(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    invites = InviteService(client, MemoryQrCache(), base_url="https://shop.example.com/", expire_seconds=3600)
    first = await invites.qr_for(ProductShare(12))
    second = await invites.qr_for(ProductShare(12))
    assert first == second
    assert created(fake) == ["v1.p.12"]  # one request for two calls
    [sent] = fake[0].api_requests("/qrcode/create")
    assert sent.json == {
        "action_name": "QR_STR_SCENE",
        "expire_seconds": 3600,
        "action_info": {"scene": {"scene_str": "v1.p.12"}},
    }
    assert first.expire_seconds == 3600 and first.image_url.startswith("https://mp.weixin.qq.com/")


async def test_scenes_and_permanence_are_cached_apart(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    invites = InviteService(client, MemoryQrCache())
    temporary = await invites.qr_for(ReferralInvite("AB12CD"))
    permanent = await invites.qr_for(ReferralInvite("AB12CD"), permanent=True)
    assert await invites.qr_for(ReferralInvite("AB12CD"), permanent=True) == permanent
    await invites.qr_for(GroupInvite("XYZ789"))
    await invites.qr_for(GroupInvite("XYZ789"))
    assert permanent.expire_seconds is None and temporary.expire_seconds is not None
    assert created(fake) == ["v1.r.AB12CD", "v1.r.AB12CD", "v1.g.XYZ789"]
    actions = [r.json["action_name"] for r in fake[0].api_requests("/qrcode/create") if r.json]
    assert actions == ["QR_STR_SCENE", "QR_LIMIT_STR_SCENE", "QR_STR_SCENE"]


async def test_two_callers_at_once_make_one_request(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    invites = InviteService(client, MemoryQrCache())
    a, b, c = await asyncio.gather(*(invites.qr_for(ProductShare(7)) for _ in range(3)))
    assert a == b == c
    assert created(fake) == ["v1.p.7"]


async def test_a_cached_code_is_renewed_shortly_before_wechat_expires_it(
    client: WeChatClient, fake: tuple[FakeWeChat, str], clock: Clock
) -> None:
    invites = InviteService(client, MemoryQrCache(clock=clock), expire_seconds=3600)
    first = await invites.qr_for(ProductShare(5))
    assert cache_ttl(3600) == 3240  # a tenth of the lifetime, at most an hour, before expiry
    clock.now += 3239
    assert await invites.qr_for(ProductShare(5)) == first
    clock.now += 2
    renewed = await invites.qr_for(ProductShare(5))
    assert renewed.ticket != first.ticket
    assert created(fake) == ["v1.p.5", "v1.p.5"]
    assert cache_ttl(2_592_000) == 2_592_000 - 3600


async def test_a_permanent_code_stays_cached(
    client: WeChatClient, fake: tuple[FakeWeChat, str], clock: Clock
) -> None:
    invites = InviteService(client, MemoryQrCache(clock=clock))
    first = await invites.qr_for(ReferralInvite("ZZ99"), permanent=True)
    clock.now += 10 * 365 * 86400
    assert await invites.qr_for(ReferralInvite("ZZ99"), permanent=True) == first
    assert len(created(fake)) == 1


async def test_a_refusal_is_raised_and_not_cached(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    invites = InviteService(client, MemoryQrCache())
    fake[0].fail_next(Failure(errcode=45009))  # api limit reached
    with pytest.raises(WeChatError):
        await invites.qr_for(ProductShare(3))
    qr = await invites.qr_for(ProductShare(3))
    assert qr.ticket and created(fake) == ["v1.p.3", "v1.p.3"]


async def test_a_picture_for_a_reply_never_waits_long_nor_fails(client: WeChatClient, fake: tuple[FakeWeChat, str]) -> None:
    """`image_url` is what replies and pages use: "" when WeChat refuses, is slow, or is absent."""
    invites = InviteService(client, MemoryQrCache())
    fake[0].fail_next(Failure(errcode=45009))
    assert await invites.image_url(GroupInvite("ABCD12")) == ""
    fake[0].fail_next(Failure(delay=1.0))
    assert await invites.image_url(GroupInvite("ABCD12"), timeout=0.2) == ""
    assert (await invites.image_url(GroupInvite("ABCD12"))).startswith("http")
    assert await InviteService(NoQrCodes()).image_url(GroupInvite("ABCD12")) == ""


async def test_workers_share_codes_through_redis(
    client: WeChatClient, fake: tuple[FakeWeChat, str], redis_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    try:
        worker_a = InviteService(client, RedisQrCache(redis), expire_seconds=7200)
        worker_b = InviteService(client, RedisQrCache(redis), expire_seconds=7200)
        first = await worker_a.qr_for(GroupInvite("GRP42"))
        assert await worker_b.qr_for(GroupInvite("GRP42")) == first
        assert created(fake) == ["v1.g.GRP42"]
        ttl_ms = await redis.pttl("storefront:qr:temp:v1.g.GRP42")
        assert 0 < ttl_ms <= cache_ttl(7200) * 1000
        permanent = await worker_a.qr_for(ReferralInvite("REF1"), permanent=True)
        assert await redis.pttl("storefront:qr:perm:v1.r.REF1") == -1  # no expiry
        assert await worker_b.qr_for(ReferralInvite("REF1"), permanent=True) == permanent
        await redis.set("storefront:qr:temp:v1.p.9", b"not json")  # unreadable: ask again
        assert (await worker_a.qr_for(ProductShare(9))).ticket
        assert created(fake) == ["v1.g.GRP42", "v1.r.REF1", "v1.p.9"]
    finally:
        await redis.aclose()


async def test_without_a_wechat_client_qr_for_says_why() -> None:
    invites = InviteService(NoQrCodes(), MemoryQrCache(), base_url="https://shop.example.com")
    with pytest.raises(InvitesUnavailable, match="WeChat client"):
        await invites.qr_for(ProductShare(1))
    assert invites.share_link(ProductShare(1)) == "https://shop.example.com/s/v1.p.1"  # links still work


def test_share_links() -> None:
    invites = InviteService(NoQrCodes(), base_url="https://shop.example.com/")
    assert invites.share_link(ProductShare(123)) == "https://shop.example.com/s/v1.p.123"
    assert invites.share_link(GroupInvite("XYZ789")) == "https://shop.example.com/s/v1.g.XYZ789"


@pytest.mark.parametrize("seconds", [59, 2_592_001])
def test_expiry_is_checked_up_front(seconds: int) -> None:
    with pytest.raises(ValueError):
        InviteService(NoQrCodes(), expire_seconds=seconds)


# ---- GET /s/{scene} ----------------------------------------------------------------------------


async def test_a_product_share_link_redirects_to_the_product_page(sqlite_shop: Shop) -> None:
    response = await sqlite_shop.client.get("/s/v1.p.3", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/products/3"
    followed = await sqlite_shop.client.get("/s/v1.p.3")
    assert followed.status == 200 and followed.url.path == "/products/3"


@pytest.mark.parametrize("scene", ["garbage", "v1.p.0", "v2.p.3", "x" * 65])
async def test_other_share_links_are_not_found(sqlite_shop: Shop, scene: str) -> None:
    response = await sqlite_shop.client.get(f"/s/{scene}", allow_redirects=False)
    assert response.status == 404


async def test_a_group_share_link_leads_to_the_group_page(sqlite_shop: Shop) -> None:
    """/s/v1.g.CODE -> /g/CODE, which is a "not found" page for a group that does not exist."""
    response = await sqlite_shop.client.get("/s/v1.g.XYZ789", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/g/XYZ789")
    assert (await sqlite_shop.client.get("/s/v1.g.XYZ789")).status == 404


async def test_a_referral_link_leads_to_its_landing_page(sqlite_shop: Shop) -> None:
    """Referrals: /s/v1.r.CODE -> /r/CODE, which says "not valid" for a code nobody has."""
    response = await sqlite_shop.client.get("/s/v1.r.AB12CD", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/r/AB12CD"
    assert (await sqlite_shop.client.get("/r/AB12CD")).status == 404


async def test_the_app_wires_an_invite_service(sqlite_shop) -> None:  # type: ignore[no-untyped-def]
    """The embedded demo has no WeChat client: share links work, QR codes say why they can't."""
    from bot.keys import SERVICES
    from bot.wechat.scenes import ProductShare

    service = sqlite_shop.client.app[SERVICES].invites
    assert service.share_link(ProductShare(3)) == "https://shop.example.com/s/v1.p.3"
    with pytest.raises(InvitesUnavailable):
        await service.qr_for(ProductShare(3))
