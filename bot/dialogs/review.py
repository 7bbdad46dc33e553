"""Reviews (买家秀): a rating, then words, then photos, for one received order.

```mermaid
stateDiagram-v2
    [*] --> RATING: "评价" / "review" (the order on screen, else the latest received one not reviewed)
    [*] --> RATING: "确认收货" on an order (quietly: the invitation comes through the outbox)
    RATING --> RATING: "6", "abc": what a rating is (words it does not know leave it when it started quietly)
    RATING --> BODY: 1-5, "5分", "五星", "★★★★", "好评" (5), "中评" (3), "差评" (1)
    BODY --> PHOTOS: any words, or "跳过" / "skip"
    BODY --> PHOTOS: a photo (no words)
    PHOTOS --> PHOTOS: a photo (up to 3)
    BODY --> [*]: "完成" / "done": posted without photos
    PHOTOS --> [*]: "完成" / "跳过" / "done", or the third photo: posted
    RATING --> [*]: "取消" (nothing kept), "返回" (the orders list)
```
One review per order: it rates every product of the order (`commerce.reviews.actions`).
Nothing is stored before it is posted but the photos' files: each is fetched from WeChat
when it arrives and kept in the media store (as product pictures are), or, when WeChat
cannot give it, remembered as WeChat's link (PicUrl). The dialog sees messages first (`exclusive`), so
that the review's words are never read as thanks, a complaint or a search; it lets
staff commands and the words that work everywhere (取消, 帮助, 订单…) through.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bot.admin.registry import PREFIXES
from bot.chat.context import Context
from bot.chat.keywords import match_keyword, normalize, quantity
from bot.chat.replies import Reply, Text
from bot.dialogs.base import Dialog, Step, on
from bot.dialogs.common import error_reply, unit_of_work
from bot.wechat.api.errors import MediaTooLarge, WeChatError
from commerce.catalog import images as catalog_images
from commerce.errors import ShopError
from commerce.reviews import actions as reviews
from commerce.reviews.models import BODY_MAX, PHOTOS_MAX, RATING_MAX, RATING_MIN
from commerce.rules import utcnow

log = logging.getLogger(__name__)
BAD = -1  # a number that is no rating ("4.5")

_NUMBER = re.compile(
    r"(?:打|给|评)?\s*(\d{1,3}(?:\.\d+)?|[零一二两三四五六七八九十])\s*(?:分|星|颗星|颗|个星|stars?|points?|/\s*5)?\s*(?:好评)?"
)
_STARS = re.compile(r"[★⭐☆]+")
_WORDS = {
    "好评": 5, "五星好评": 5, "满分": 5, "非常满意": 5, "很满意": 5, "超赞": 5, "满意": 4, "还行": 3, "一般": 3,
    "中评": 3, "不满意": 2, "差评": 1, "很差": 1, "excellent": 5, "great": 5, "good": 4, "okay": 3, "bad": 1,
    "terrible": 1,
}
SKIP = frozenset({"跳过", "不写了", "不写", "没有", "无", "不用", "skip", "no", "none", "nothing"})
DONE = frozenset({"完成", "好了", "发布", "提交", "就这样", "没了", "done", "finish", "post", "submit"})


def read_rating(text: str) -> int | None:
    """The rating a customer typed: 1-5 as typed, another number as it is (out of range),
    BAD for a fraction, None when the words are no rating at all."""
    said = normalize(text)
    if said in _WORDS:
        return _WORDS[said]
    if _STARS.fullmatch(said):
        return said.count("★") + said.count("⭐")
    found = _NUMBER.fullmatch(said)
    if found is None:
        return None
    word = found.group(1)
    if "." in word:
        return BAD
    return quantity(word) if not word.isdigit() else int(word)


async def _keep_photo(ctx: Context, data: ReviewData) -> None:
    """The picture of this message, kept for the review: the shop's own copy in the media
    store (fetched from WeChat by its MediaId, checked and sized as product pictures are),
    else, when WeChat cannot give it (no appsecret, busy, expired), WeChat's PicUrl.
    IMAGE_INVALID when what was sent is no picture."""
    fields = ctx.msg.fields
    pic_url, media_id = str(fields.get("PicUrl") or "")[:1024], str(fields.get("MediaId") or "")[:128]
    if len(data.photos) >= PHOTOS_MAX or not (pic_url or media_id):
        return
    limit = ctx.services.config.media.max_bytes
    try:
        sent = await ctx.services.wechat_media.download_media(media_id, max_bytes=limit)
    except (ValueError, WeChatError, MediaTooLarge) as exc:
        log.info("review picture kept as WeChat's link: %s", type(exc).__name__)
    else:
        stored = await catalog_images.store_picture(ctx.services.media, sent.data, max_bytes=limit)
        pic_url = stored.url
    data.photos.append([pic_url, media_id])


class ReviewState(enum.StrEnum):
    RATING = "rating"
    BODY = "body"
    PHOTOS = "photos"


@dataclass(slots=True)
class ReviewData:
    order_id: int = 0
    order_no: str = ""
    rating: int = 0
    body: str = ""
    photos: list[list[str]] = field(default_factory=list)  # [pic_url, media_id] as sent
    asked: bool = True  # False: started quietly after a receipt; words that are no rating leave it


def _passes(ctx: Context) -> bool:
    """Staff commands and the words that work everywhere go on to their routes."""
    text = ctx.msg.text.strip()
    return ctx.msg.kind in ("text", "voice") and (text.startswith(PREFIXES) or match_keyword(text) is not None)


def _back(ctx: Context) -> bool:
    """"返回" / "back": to the orders list, where a receipt is confirmed."""
    keyword = match_keyword(ctx.msg.text) if ctx.msg.kind in ("text", "voice") else None
    return keyword is not None and keyword[0] == "back"


class ReviewDialog(Dialog[ReviewState, ReviewData]):
    name = "review"
    State = ReviewState
    Data = ReviewData
    version = 1
    exclusive = True
    initial = frozenset({ReviewState.RATING})
    transitions = {
        ReviewState.RATING: frozenset({ReviewState.RATING, ReviewState.BODY}),
        ReviewState.BODY: frozenset({ReviewState.BODY, ReviewState.PHOTOS}),
        ReviewState.PHOTOS: frozenset({ReviewState.PHOTOS}),
    }

    async def begin(self, ctx: Context, *, order_id: int | None = None) -> Reply:
        """"评价": the order `order_id` (the one on screen), else the latest received one
        without a review; its rating is asked."""
        try:
            async with unit_of_work(ctx) as session:
                order = await reviews.reviewable_order(session, customer_id=ctx.customer_id, order_id=order_id)
        except ShopError as exc:
            return error_reply(exc)
        if order is None:
            return Text("review_nothing")
        data = ReviewData(order_id=order.id, order_no=order.order_no)
        ask = Text("review_ask_rating", {"order_no": order.order_no, "items": [line.name for line in order.lines]})
        return await ctx.services.dialogs.start(ctx, self, Step(ask, ReviewState.RATING, data))

    async def invited(self, ctx: Context, *, order_id: int, order_no: str, reply: Reply) -> Reply:
        """Right after the customer confirmed receipt (`reply`): a rating may come next (the
        invitation itself goes through the outbox, in the receipt's transaction)."""
        data = ReviewData(order_id=order_id, order_no=order_no, asked=False)
        return await ctx.services.dialogs.start(ctx, self, Step(reply, ReviewState.RATING, data))

    def _prompt(self, state: ReviewState, data: ReviewData) -> Text:
        return Text("review_prompt", {
            "step": str(state), "order_no": data.order_no, "rating_max": RATING_MAX, "photos_max": PHOTOS_MAX,
            "photo_count": len(data.photos),
        })

    async def reprompt(self, ctx: Context, state: ReviewState, data: ReviewData) -> Reply | None:
        return self._prompt(state, data)

    @on(ReviewState.RATING)
    async def on_rating(self, ctx: Context, data: ReviewData) -> Step[ReviewState, ReviewData] | None:
        if _back(ctx):
            return Step(await ctx.services.dialogs.orders.show(ctx), handed_over=True)
        if _passes(ctx):
            return None
        rating = read_rating(ctx.msg.text) if ctx.msg.kind in ("text", "voice") else None
        if rating is None and not data.asked:
            return None  # quietly open after a receipt: a search, a question… go their way
        if rating is None or not RATING_MIN <= rating <= RATING_MAX:
            said = ctx.msg.text.strip()[:10] if ctx.msg.kind == "text" else ""
            return Step(Text("review_rating_invalid", {"said": said, "rating_max": RATING_MAX}), ReviewState.RATING, data)
        data.rating, data.asked = rating, True
        return Step(Text("review_ask_body", {"rating": rating, "order_no": data.order_no}), ReviewState.BODY, data)

    @on(ReviewState.BODY)
    async def on_body(self, ctx: Context, data: ReviewData) -> Step[ReviewState, ReviewData] | None:
        if _back(ctx):
            return Step(await ctx.services.dialogs.orders.show(ctx), handed_over=True)
        if _passes(ctx):
            return None
        if ctx.msg.kind == "image":
            return await self._photo(ctx, data)
        if ctx.msg.kind not in ("text", "voice"):
            return Step(self._prompt(ReviewState.BODY, data), ReviewState.BODY, data)
        said = normalize(ctx.msg.text)
        if said in DONE:
            return await self._post(ctx, data)
        if said not in SKIP:
            body = ctx.msg.text.strip()
            if len(body) > BODY_MAX:
                return Step(Text("review_body_too_long", {"max_length": BODY_MAX, "length": len(body)}), ReviewState.BODY, data)
            data.body = body
        return Step(Text("review_ask_photos", {"photos_max": PHOTOS_MAX, "body": bool(data.body)}), ReviewState.PHOTOS, data)

    @on(ReviewState.PHOTOS)
    async def on_photos(self, ctx: Context, data: ReviewData) -> Step[ReviewState, ReviewData] | None:
        if _back(ctx):
            return Step(await ctx.services.dialogs.orders.show(ctx), handed_over=True)
        if _passes(ctx):
            return None
        if ctx.msg.kind == "image":
            return await self._photo(ctx, data) if len(data.photos) + 1 < PHOTOS_MAX else await self._post(ctx, data, photo=True)
        if ctx.msg.kind in ("text", "voice") and normalize(ctx.msg.text) in DONE | SKIP:
            return await self._post(ctx, data)
        return Step(self._prompt(ReviewState.PHOTOS, data), ReviewState.PHOTOS, data)

    async def _photo(self, ctx: Context, data: ReviewData) -> Step[ReviewState, ReviewData]:
        try:
            await _keep_photo(ctx, data)
        except ShopError as exc:  # not a picture: said, and the step goes on
            return Step(error_reply(exc), ReviewState.PHOTOS, data)
        reply = Text("review_photo_kept", {"photo_count": len(data.photos), "photos_max": PHOTOS_MAX})
        return Step(reply, ReviewState.PHOTOS, data)

    async def _post(self, ctx: Context, data: ReviewData, *, photo: bool = False) -> Step[ReviewState, ReviewData]:
        if photo:
            try:
                await _keep_photo(ctx, data)
            except ShopError as exc:
                return Step(error_reply(exc), ReviewState.PHOTOS, data)
        try:
            async with unit_of_work(ctx) as session:
                posted = await reviews.post_review(
                    session, customer_id=ctx.customer_id, order_id=data.order_id, rating=data.rating,
                    body=data.body, photos=[reviews.Photo(url, media) for url, media in data.photos], now=utcnow(),
                )
        except ShopError as exc:
            return Step(error_reply(exc))
        done: dict[str, Any] = {**reviews.review_data(posted.review), "points": posted.points}
        return Step(Text("review_posted", done))
