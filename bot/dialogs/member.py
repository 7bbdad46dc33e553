"""Becoming a member: a phone number, then the one-time code sent to it.

```mermaid
stateDiagram-v2
    [*] --> PHONE: "会员" / "注册会员" / "绑定手机" from a customer who is no member
    PHONE --> PHONE: a number that is no mainland mobile (told so), a refused one (taken, too soon), SMS failed
    PHONE --> CODE: a mainland mobile: a code is stored (hashed) and sent
    CODE --> CODE: a wrong code (tries left told), "重发" after 60 s, another phone number
    CODE --> PHONE: the code expired or took too many wrong tries ("重发" or a number again)
    CODE --> [*]: the right code: a member, at the level their spending reached
    PHONE --> PHONE: "会员有什么好处" (the levels and their discounts), "会员" again
    CODE --> CODE: "会员有什么好处" (the levels, then the code asked for), "会员" again
    PHONE --> [*]: "取消"
    CODE --> [*]: "取消"
```
The dialog is exclusive (a 6-digit code or an 11-digit phone must not be read as a product
number or a search) but takes only digits, "重发" and questions about membership (answered
with the step kept: the code awaited is not lost to "会员有什么好处"): anything else,
"取消" included, goes on to the rest of the chat. The use cases are `commerce.membership.codes`; the SMS is sent
by `Services.sms` after the code's transaction committed. With the sandbox provider the
reply shows the code (the simulators' way of receiving it); with a real one it never does.
Nothing here logs the code.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bot.chat.context import Context
from bot.chat.replies import Reply, Text
from bot.chat.understanding import Intent, understand
from bot.dialogs.base import Active, Dialog, Step, on
from bot.dialogs.common import error_reply
from commerce.errors import ErrorCode, ShopError
from commerce.membership import codes, levels
from commerce.membership.sms import SmsError

# what a customer types as a phone number or a code: digits with the usual separators
NUMBERISH = re.compile(r"^[+＋]?[\d０-９\s\-－—()（）]{4,24}$")
CODE_TYPED = re.compile(r"^\s*([0-9０-９]{6})\s*$")
RESEND = re.compile(r"^\s*(?:重发|重新发送|再发一次|重新获取|没收到|resend|send again)\s*[。.!！]?\s*$", re.IGNORECASE)


class MemberState(enum.StrEnum):
    PHONE = "phone"
    CODE = "code"


@dataclass(slots=True)
class MemberData:
    phone: str = ""  # the number the last code went to (kept for "重发")


class MemberDialog(Dialog[MemberState, MemberData]):
    name = "member"
    State = MemberState
    Data = MemberData
    version = 1
    exclusive = True
    ttl_seconds = 15 * 60
    initial = frozenset({MemberState.PHONE})
    transitions = {
        MemberState.PHONE: frozenset({MemberState.PHONE, MemberState.CODE}),
        MemberState.CODE: frozenset({MemberState.CODE, MemberState.PHONE}),
    }

    async def begin(self, ctx: Context) -> Reply:
        """Ask for the phone number (a member is told they are one already); with a code
        already sent and awaited, that code is asked for again (a new phone number still
        sends a new one)."""
        loaded = await ctx.services.dialogs.load(ctx.openid)
        if isinstance(loaded, Active) and loaded.dialog is self and loaded.state == MemberState.CODE:
            return Text("member_ask_code", {"phone_tail": loaded.data.phone[-4:]})
        step = Step(Text("member_ask_phone"), MemberState.PHONE, MemberData())
        return await ctx.services.dialogs.start(ctx, self, step)

    async def _benefits(self, ctx: Context, state: MemberState, data: MemberData) -> Step[MemberState, MemberData]:
        """"会员有什么好处" in the middle of registering: the levels and what each takes off,
        then what the step needs; the step is kept."""
        async with ctx.uow() as uow:
            in_force = await levels.current_levels(uow.session, uow.rules)
        shown = [{"name": lv.name, "threshold_fen": lv.threshold_fen, "discount_bp": lv.discount_bp} for lv in in_force]
        return Step(Text("member_benefits", {"levels": shown, "step": str(state), "phone_tail": data.phone[-4:]}), state, data)

    async def reprompt(self, ctx: Context, state: MemberState, data: MemberData) -> Reply | None:
        return Text("member_ask_phone" if state == MemberState.PHONE else "member_ask_code", {"phone_tail": data.phone[-4:]})

    @on(MemberState.PHONE)
    async def on_phone(self, ctx: Context, data: MemberData) -> Step[MemberState, MemberData] | None:
        text = ctx.msg.text if ctx.msg.kind == "text" else ""
        if RESEND.match(text) and data.phone:
            return await self._send(ctx, data.phone, data, on_refusal=MemberState.PHONE)
        if understand(text).intent is Intent.MEMBER:
            return await self._benefits(ctx, MemberState.PHONE, data)
        if not NUMBERISH.match(text):
            return None  # a search, "取消", a question: the rest of the chat answers
        phone = codes.normalize_phone(text)
        if phone is None:
            return Step(Text("member_phone_invalid", {"typed": text.strip()[:24]}), MemberState.PHONE, data)
        return await self._send(ctx, phone, data, on_refusal=MemberState.PHONE)

    @on(MemberState.CODE)
    async def on_code(self, ctx: Context, data: MemberData) -> Step[MemberState, MemberData] | None:
        text = ctx.msg.text if ctx.msg.kind == "text" else ""
        if RESEND.match(text):
            return await self._send(ctx, data.phone, data, on_refusal=MemberState.CODE)
        typed = CODE_TYPED.match(text)
        if typed is None and understand(text).intent is Intent.MEMBER:
            return await self._benefits(ctx, MemberState.CODE, data)
        if typed is None:
            if NUMBERISH.match(text):  # another phone number, or a code of the wrong length
                phone = codes.normalize_phone(text)
                if phone is not None:
                    return await self._send(ctx, phone, data, on_refusal=MemberState.CODE)
                return Step(Text("member_code_invalid", {"phone_tail": data.phone[-4:]}), MemberState.CODE, data)
            return None
        async with ctx.uow() as uow:
            checked = await codes.confirm_code(
                uow.session, customer_id=ctx.customer_id, typed=typed.group(1), now=uow.now,
                key=ctx.services.config.signing_key, rules=uow.rules,
            )
        if checked.outcome == "joined":
            level = checked.level
            return Step(Text("member_joined", {
                "phone_tail": checked.phone_tail,
                "level_name": level.name if level else "",
                "discount_bp": level.discount_bp if level else 0,
                "total_spent_fen": checked.total_spent_fen,
            }))
        if checked.outcome == "wrong":
            return Step(Text("member_code_wrong", {"tries_left": checked.tries_left}), MemberState.CODE, data)
        if checked.outcome == "already":
            return Step(error_reply(ShopError(ErrorCode.ALREADY_MEMBER, phone_tail=checked.phone_tail)))
        if checked.outcome == "taken":
            return Step(error_reply(ShopError(ErrorCode.PHONE_TAKEN)), MemberState.PHONE, data)
        # expired, too many wrong tries, or no code: a new one is needed
        return Step(Text("member_code_spent", {"why": checked.outcome}), MemberState.PHONE, data)

    async def _send(
        self, ctx: Context, phone: str, data: MemberData, *, on_refusal: MemberState
    ) -> Step[MemberState, MemberData]:
        """A new code to `phone`: stored (committed), then sent; a failed send forgets it."""
        try:
            async with ctx.uow() as uow:
                issued = await codes.request_code(
                    uow.session, customer_id=ctx.customer_id, phone=phone, now=uow.now,
                    key=ctx.services.config.signing_key,
                )
        except ShopError as exc:
            if exc.code == ErrorCode.ALREADY_MEMBER:
                return Step(error_reply(exc))
            return Step(error_reply(exc), on_refusal, data)
        sms = ctx.services.sms
        try:
            await sms.send_code(phone=issued.phone, code=issued.code, minutes=issued.minutes)
        except SmsError:
            async with ctx.uow() as uow:
                await codes.withdraw_code(uow.session, code_id=issued.code_id)
            return Step(error_reply(ShopError(ErrorCode.SMS_FAILED)), MemberState.PHONE, data)
        data.phone = issued.phone
        shown = {"phone_tail": issued.phone[-4:], "minutes": issued.minutes}
        if sms.shows_code:
            shown["sandbox_code"] = issued.code  # the sandbox: the simulators receive it here
        return Step(Text("member_code_sent", shown), MemberState.CODE, data)
