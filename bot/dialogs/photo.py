"""Staff giving a product its pictures: `/photo ID`, then one image after another.

```mermaid
stateDiagram-v2
    [*] --> WAITING: /photo ID (owner or operator; bot/admin/catalog.py)
    WAITING --> WAITING: an image: fetched from WeChat, checked, sized, attached (or why not)
    WAITING --> [*]: 完成 / done, or the product gone or full
    WAITING --> [*]: 取消 / cancel, another dialog, or the time runs out (then an image is told so)
```

Each image message is fetched through WeChat's media API by its MediaId (the file never
passes through the message itself), checked and sized in a thread and written to the
media store, all before the unit of work that attaches it: no transaction waits on WeChat
or on Pillow. Every picture added (and every one refused) is in the audit log as "photo".
Text the step does not expect is not taken: a search or a command works as usual.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from bot.admin.registry import MANAGERS
from bot.chat.context import Context
from bot.chat.keywords import normalize
from bot.chat.replies import Reply, Text
from bot.dialogs.base import Dialog, Step, on
from bot.dialogs.common import error_reply, unit_of_work
from bot.wechat.api.client import DownloadedMedia
from bot.wechat.api.errors import ErrCode, MediaTooLarge, WeChatError
from commerce.catalog import images as catalog_images
from commerce.errors import ErrorCode, ShopError
from commerce.staff import audit

log = logging.getLogger(__name__)

DONE_WORDS = frozenset({"完成", "好了", "结束", "完毕", "发完了", "done", "finish", "finished", "ok"})
ENDING_ERRORS = frozenset({ErrorCode.PRODUCT_NOT_FOUND, ErrorCode.IMAGE_LIMIT})


class PhotoState(enum.StrEnum):
    WAITING = "waiting"


@dataclass(slots=True)
class PhotoData:
    product_id: int
    name: str = ""
    added: int = 0  # pictures added in this step


class PhotoDialog(Dialog[PhotoState, PhotoData]):
    name = "photo"
    State = PhotoState
    Data = PhotoData
    version = 1
    initial = frozenset({PhotoState.WAITING})
    transitions = {PhotoState.WAITING: frozenset({PhotoState.WAITING})}

    async def begin(self, ctx: Context, *, product_id: int, name: str, count: int, placeholder: bool) -> Reply:
        """Wait for the pictures of `product_id`, which has `count` already (and a drawn
        `placeholder` that the first one sent replaces)."""
        view = {"id": product_id, "name": name, "count": count, "placeholder": placeholder,
                "max_mb": f"{round(ctx.services.config.media.max_bytes / 1048576, 1):g}"}
        reply = Text("admin/photo_waiting", view)
        data = PhotoData(product_id=product_id, name=name)
        return await ctx.services.dialogs.start(ctx, self, Step(reply, PhotoState.WAITING, data))

    def expects(self, ctx: Context) -> bool:
        return ctx.msg.kind == "image"  # after expiry: "that step ran out", not the customers' answer

    @on(PhotoState.WAITING)
    async def waiting(self, ctx: Context, data: PhotoData) -> Step[PhotoState, PhotoData] | None:
        if ctx.staff_role not in MANAGERS:  # no longer staff: answered as anyone else
            return Step(Text("unsupported", {"kind": ctx.msg.kind})) if ctx.msg.kind == "image" else None
        if ctx.msg.kind in ("text", "voice") and normalize(ctx.msg.text).lower() in DONE_WORDS:
            return Step(Text("admin/photo_done", _view(data)))
        if ctx.msg.kind != "image":
            return None
        reply, outcome = await add_sent_picture(ctx, data)
        if outcome == "end":
            return Step(reply)
        if outcome == "added":
            data.added += 1
        return Step(reply, PhotoState.WAITING, data)


def _view(data: PhotoData, **more: Any) -> dict[str, Any]:
    return {"id": data.product_id, "name": data.name, "added": data.added, **more}


Outcome = Literal["added", "kept", "end"]


async def add_sent_picture(ctx: Context, data: PhotoData) -> tuple[Reply, Outcome]:
    """Fetch, store and attach the image of this message: the reply, and "added", "kept"
    (nothing added, the step goes on) or "end" (the product is gone or full)."""
    services = ctx.services
    limit = services.config.media.max_bytes
    media_id = str(ctx.msg.fields.get("MediaId") or "")
    try:
        async with unit_of_work(ctx) as session:  # before any download: the product is there, not full
            await catalog_images.check_room(session, product_id=data.product_id)
        sent = await _download(ctx, media_id, max_bytes=limit)
        picture = await catalog_images.store_picture(services.media, sent.data, max_bytes=limit)
        async with unit_of_work(ctx) as session:
            attached = await catalog_images.attach_picture(session, product_id=data.product_id, picture=picture)
            before, after = attached.change
            await _audit(ctx, session, data, outcome="ok", before=before, after=after)
    except ShopError as exc:
        await _failed(ctx, data, str(exc.code))
        return error_reply(exc), ("end" if exc.code in ENDING_ERRORS else "kept")
    except MediaTooLarge as exc:
        await _failed(ctx, data, "too_large")
        return error_reply(ShopError(ErrorCode.IMAGE_INVALID, reason="too_large", max_bytes=exc.limit)), "kept"
    except WeChatError as exc:
        why = _why_not_fetched(exc)
        log.warning("staff picture not fetched from WeChat: %s", why)
        await _failed(ctx, data, f"fetch_{why}")
        return Text("admin/photo_not_fetched", {"why": why}), "kept"
    view = _view(data, number=attached.number, count=attached.count, width=picture.width, height=picture.height,
                 already=attached.already)
    return Text("admin/photo_added", view), ("kept" if attached.already else "added")


async def _download(ctx: Context, media_id: str, *, max_bytes: int) -> DownloadedMedia:
    try:
        return await ctx.services.wechat_media.download_media(media_id, max_bytes=max_bytes)
    except ValueError:  # the message carries no usable MediaId
        raise WeChatError(ErrCode.UNREADABLE, "no usable MediaId") from None


def _why_not_fetched(exc: WeChatError) -> str:
    if exc.errcode == ErrCode.NOT_CONFIGURED:
        return "not_configured"
    if exc.errcode in (ErrCode.BUSY, ErrCode.UNCERTAIN):  # WeChatUnavailable, WeChatUncertain
        return "busy"
    return "invalid"  # 40007: unknown or expired (WeChat keeps what users send for 3 days); no MediaId


async def _audit(ctx: Context, session: AsyncSession, data: PhotoData, *, outcome: str, before: Any = None,
                 after: Any = None) -> None:
    await audit.record(
        session, actor=ctx.openid, role=str(ctx.staff_role or ""), command="photo",
        args=[str(data.product_id), "image"], outcome=outcome, before=before, after=after,
    )


async def _failed(ctx: Context, data: PhotoData, error: str) -> None:
    async with unit_of_work(ctx) as session:
        await _audit(ctx, session, data, outcome="failed", after={"error": error})
