"""Live drops (直播) from the chat: staff go on air, push products, and end with a summary.

    /live start TITLE [https://视频号链接]   (restated with the audience, then confirmed)
    /live push SKU_OR_ID [PRICE] [UNITS]      (restated with the card, then confirmed)
    /live end                                 (restated with the figures so far, then confirmed)
    /live                                     (how the session stands)

Starting and pushing tell every customer who opted in ("订阅直播"), as a broadcast does:
one outbox row each, written in the use case's own transaction, then sent `per_second`
at a time by the `Broadcaster`, whose report the staff member gets. A push is a flash
sale for the session (`commerce.promotions.live`): PRICE (yuan) is the live price, the
regular price when left out; UNITS the variant's stock when left out.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from bot.admin.catalog import parse_yuan
from bot.admin.registry import MANAGERS, REGISTRY, AdminContext, Outcome, UsageError
from bot.chat.replies import Text
from bot.dialogs.common import unit_of_work
from bot.web.live import live_url
from commerce.catalog import admin as catalog_admin
from commerce.errors import ErrorCode, ShopError
from commerce.promotions import live
from commerce.rules import utcnow

ACTIONS = {
    "start": "start", "开始": "start", "开播": "start",
    "push": "push", "推送": "push", "上架": "push",
    "end": "end", "结束": "end", "下播": "end",
    "status": "status", "状态": "status",
}
FIRST_ATTEMPTS_LEASE = timedelta(minutes=2)


@REGISTRY.command("live", "直播", roles=MANAGERS, group="live", confirm=True)
async def live_command(actx: AdminContext) -> Outcome:
    action = ACTIONS.get(actx.args[0].lower(), "") if actx.args else "status"
    if action == "start":
        return await _start(actx)
    if action == "push":
        return await _push(actx)
    if action == "end":
        if len(actx.args) != 1:
            raise UsageError
        async with unit_of_work(actx.ctx) as session:
            if not actx.confirmed:  # ending closes the live prices for everyone watching: restate first
                running = await live.open_session(session)
                if running is None:
                    raise ShopError(ErrorCode.LIVE_NOT_OPEN)
                so_far = await live.summary(session, session_id=running.id)
                return Outcome(Text("admin/live_end_confirm", so_far.data()), confirm_first=True)
            summary = await live.end_session(session, now=utcnow())
        actx.services.live_hub.poke()  # pages say it is over
        return Outcome(Text("admin/live_summary", {**summary.data(), "ended": True}), None, summary.data())
    if action == "status":
        if len(actx.args) > 1:
            raise UsageError
        async with unit_of_work(actx.ctx) as session:
            current = await live.open_session(session)
            if current is None:
                raise ShopError(ErrorCode.LIVE_NOT_OPEN)
            summary = await live.summary(session, session_id=current.id)
        data = {**summary.data(), "ended": False, "url": live_url(actx.services.config, current.id)}
        return Outcome(Text("admin/live_summary", data))
    raise UsageError


def _max_age(actx: AdminContext) -> timedelta:
    """A live notice not sent while the session can still be on air is not sent at all."""
    return min(actx.services.broadcasts.max_age, timedelta(hours=live.LIVE_HOURS))


def _lease(actx: AdminContext, count: int) -> timedelta:
    return FIRST_ATTEMPTS_LEASE + timedelta(seconds=count / actx.services.broadcasts.per_second)


async def _start(actx: AdminContext) -> Outcome:
    words = actx.args[1:]
    video_url = words.pop() if words and words[-1].lower().startswith(("http://", "https://")) else ""
    if not words:
        raise UsageError
    title = live.check_title(" ".join(words))
    video_url = live.check_video_url(video_url)
    config = actx.services.config
    async with unit_of_work(actx.ctx) as session:
        if not actx.confirmed:
            running = await live.open_session(session)
            if running is not None:
                raise ShopError(ErrorCode.LIVE_ALREADY_OPEN, title=running.title, session_id=running.id)
            count = len(await live.audience_openids(session))
            data = {"title": title, "video_url": video_url, "count": count}
            return Outcome(Text("admin/live_start_confirm", data), confirm_first=True)
        count = len(await live.audience_openids(session))
        view, started = await live.start_session(
            session, title=title, video_url=video_url, staff_openid=actx.actor, now=utcnow(),
            page_url=partial(live_url, config), max_age=_max_age(actx), lease=_lease(actx, count),
        )
    if started.message_ids:
        actx.services.broadcasts.follow(started)
    data = {**view.data(), "count": len(started.message_ids), "url": live_url(config, view.id)}
    return Outcome(Text("admin/live_started", data), None, {"session": view.id, "audience": view.audience})


def _push_terms(actx: AdminContext) -> tuple[str, int | None, int | None]:
    if not 2 <= len(actx.args) <= 4:
        raise UsageError
    price = parse_yuan(actx.args[2]) if len(actx.args) >= 3 else None
    units = None
    if len(actx.args) == 4:
        word = actx.args[3]
        if not (word.isascii() and word.isdigit()) or len(word) > 7:
            raise UsageError
        units = int(word)
    return actx.args[1], price, units


async def _push(actx: AdminContext) -> Outcome:
    ref, price, units = _push_terms(actx)
    config = actx.services.config
    now = utcnow()
    try:
        async with unit_of_work(actx.ctx) as session:
            _product, variant = await catalog_admin.resolve_variant(session, ref=ref)
            if not actx.confirmed:
                preview = await live.preview_push(session, variant_id=variant.id, price_fen=price, units=units, now=now)
                count = len(await live.audience_openids(session))
                data: dict[str, Any] = {"sale": preview.data(now), "count": count}
                return Outcome(Text("admin/live_push_confirm", data), confirm_first=True)
            count = len(await live.audience_openids(session))
            product = await actx.services.catalog.product(variant.product_id)
            view, sale, started = await live.push(
                session, variant_id=variant.id, price_fen=price, units=units, staff_openid=actx.actor, now=now,
                page_url=partial(live_url, config), max_age=_max_age(actx),
                lease=_lease(actx, count), image_url=product.image_url if product is not None else "",
            )
    except ShopError as exc:
        variants = exc.details.get("variants")
        if exc.code == ErrorCode.VARIANT_NOT_FOUND and variants:  # a product of several variants: which SKU
            data = {"id": exc.details.get("product_id"), "name": exc.details.get("name", ""), "variants": variants,
                    "command": "live push", "value": " ".join(actx.args[2:])}
            return Outcome(Text("admin/choose_sku", data), outcome="failed", after={"error": str(exc.code)})
        raise
    if started.message_ids:
        actx.services.broadcasts.follow(started)
    actx.services.live_hub.poke()  # the page shows the new product
    data = {"sale": sale.data(now), "title": view.title, "count": len(started.message_ids),
            "url": live_url(config, view.id)}
    after = {"session": view.id, "sale": sale.id, "price_fen": sale.price_fen, "units": sale.units}
    return Outcome(Text("admin/live_pushed", data), None, after)
