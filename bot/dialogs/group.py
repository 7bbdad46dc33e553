"""Group buys (拼团): the open campaigns, a group's card, starting and joining.

```mermaid
stateDiagram-v2
    [*] --> LIST: "拼团" / "group" (no campaign: ends at once)
    [*] --> CARD: "参团 CODE", the bare code, a GroupInvite scan or follow
    LIST --> [*]: a number starts a group (pay card)
    CARD --> [*]: "参团" / "join" (pay card)
    LIST --> ADDRESS: a number, no delivery address yet
    CARD --> ADDRESS: "参团", no delivery address yet
    ADDRESS --> ADDRESS_CONFIRM: a typed "name phone address", parsed
    ADDRESS_CONFIRM --> [*]: "确认" saves it as the default, then starts or joins (pay card)
    ADDRESS --> PARKED: text that is no address and finds products, another screen
    ADDRESS_CONFIRM --> PARKED: the same
    PARKED --> ADDRESS: "拼团" goes on where it was left (the typed address kept)
    LIST --> [*]: cancel, other text
    CARD --> [*]: cancel, other text
    [*] --> [*]: "取消拼团" / "cancel group" (a leader alone withdraws the group)
    [*] --> [*]: "拼团码是多少", "怎么分享给朋友": the customer's open group as a card to forward
```
The leader pays first; the invite (code and the group's page) reaches the leader as a
message once the payment lands (`commerce.groupbuys.groups`, template group_opened). The
orders are placed with the default address; a friend who just followed through the
invite has none, so it is asked for in the dialog and saved as their default (ADDRESS and
ADDRESS_CONFIRM are the address step, `bot.dialogs.address_step`, shared with checkout).
As in checkout, a stray message never loses the seat being taken: in the address step,
text that does not look like an address is left to the rest of the conversation; a
search or another screen parks the dialog there, and "拼团" takes it back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from bot.chat.context import Context
from bot.chat.keywords import match_keyword, parse_number
from bot.chat.replies import Card, News, Notice, Reply, Text, with_notice
from bot.dialogs.address_step import AddressStep, looks_like_address
from bot.dialogs.base import Active, Dialog, Step, on
from bot.dialogs.common import error_reply, pay_card, unit_of_work
from commerce.customers import addresses
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import campaigns as group_campaigns
from commerce.groupbuys import deadlines as group_deadlines
from commerce.groupbuys import groups as group_buys
from commerce.groupbuys.groups import GroupView
from commerce.groupbuys.models import GroupMemberStatus, GroupStatus
from commerce.orders import placement as orders
from commerce.rules import utcnow

JOIN_WORDS = frozenset({"参团", "加入", "我要参团", "join", "join group"})


class GroupState(enum.StrEnum):
    LIST = "list"
    CARD = "card"
    ADDRESS = "address"  # no delivery address yet: asked for before the seat is taken
    ADDRESS_CONFIRM = "address_confirm"


@dataclass(slots=True)
class GroupData:
    campaign_ids: list[int] = field(default_factory=list)
    code: str = ""
    campaign_id: int | None = None  # what the address step is for: start this campaign...
    pending_address: dict[str, str] | None = None  # ...or join `code`; the typed address


ADDRESS_STEP: AddressStep[GroupState, GroupData] = AddressStep(
    ask=GroupState.ADDRESS, confirm=GroupState.ADDRESS_CONFIRM
)


def group_card_data(group: GroupView, *, customer_id: int, base_url: str = "") -> dict[str, Any]:
    member = group.member(customer_id)
    return {
        **group.data(utcnow()),
        "is_leader": group.leader_id == customer_id,
        "member": str(member.status) if member is not None else "",
    }


class GroupDialog(Dialog[GroupState, GroupData]):
    name = "group"
    address_states = ADDRESS_STEP.states
    State = GroupState
    Data = GroupData
    version = 2
    resumable = True  # in the address step only: the seat being taken is not lost to a search
    parked_in = frozenset({GroupState.ADDRESS, GroupState.ADDRESS_CONFIRM})
    initial = frozenset({GroupState.LIST, GroupState.CARD, GroupState.ADDRESS})
    transitions = {
        GroupState.LIST: frozenset({GroupState.LIST, GroupState.ADDRESS}),
        GroupState.CARD: frozenset({GroupState.ADDRESS}),
        GroupState.ADDRESS: frozenset({GroupState.ADDRESS, GroupState.ADDRESS_CONFIRM}),
        GroupState.ADDRESS_CONFIRM: frozenset({GroupState.ADDRESS_CONFIRM}),
    }

    async def show(self, ctx: Context, *, product_id: int | None = None) -> Reply:
        """The campaigns that start groups now, and the customer's own groups.

        From a product's card (`product_id`), that product's campaigns when it has any. A
        group left in its address step (parked) goes on instead, where it was left."""
        parked = await ctx.services.dialogs.take_parked(ctx.openid, self)
        if parked is not None:
            return await self._resume(ctx, parked)
        now = utcnow()
        async with unit_of_work(ctx) as session:
            campaigns = []
            if product_id is not None:
                campaigns = await group_campaigns.list_campaigns(
                    session, now=now, active_only=True, product_id=product_id
                )
            if not campaigns:
                campaigns = await group_campaigns.list_campaigns(session, now=now, active_only=True)
            mine = await group_buys.groups_of(session, customer_id=ctx.customer_id)
        data = {
            "campaigns": [
                {
                    "number": n,
                    "product": c.product_name,
                    "spec": c.spec_label,
                    "price": c.group_price_fen,
                    "regular_price": c.regular_price_fen,
                    "size": c.group_size,
                    "hours": c.time_limit_minutes // 60,
                }
                for n, c in enumerate(campaigns, 1)
            ],
            "mine": [group_card_data(g, customer_id=ctx.customer_id) for g in mine],
        }
        if not campaigns:
            await ctx.services.dialogs.end(ctx.openid)
            return Text("group_list", data)
        step = Step(Text("group_list", data), GroupState.LIST, GroupData([c.id for c in campaigns]))
        return await ctx.services.dialogs.start(ctx, self, step)

    async def _resume(self, ctx: Context, parked: Active) -> Reply:
        step = ADDRESS_STEP.again(parked.data, parked.state)
        reply = with_notice(step.reply, Notice("group_resumed"))
        return await ctx.services.dialogs.resume(ctx, self, Step(reply, step.state, step.data))

    async def reprompt(self, ctx: Context, state: GroupState, data: GroupData) -> Reply | None:
        """In the address step: what it needs and how to leave; the group stays."""
        if state not in self.parked_in:
            return None
        return Text("step_hint", {"step": f"group_{state}"})

    async def open_card(self, ctx: Context, code: str) -> Reply:
        """A group's card (product, price, members, time left); "参团" then joins it."""
        try:
            async with unit_of_work(ctx) as session:
                group = await group_buys.get_group(session, code=code)
        except ShopError as exc:
            return error_reply(exc)
        step = Step(
            Text("group_card", group_card_data(group, customer_id=ctx.customer_id)),
            GroupState.CARD,
            GroupData(code=group.code),
        )
        return await ctx.services.dialogs.start(ctx, self, step)

    async def join(self, ctx: Context, code: str) -> Reply:
        step = await self._place(ctx, code=code)
        if step.state is None:
            await ctx.services.dialogs.end(ctx.openid)
            return step.reply
        return await ctx.services.dialogs.start(ctx, self, step)

    async def _place(
        self, ctx: Context, *, code: str = "", campaign_id: int | None = None
    ) -> Step[GroupState, GroupData]:
        """Start the campaign's group or join `code`: the pay card. Without a delivery
        address (a friend who just followed), the address is asked for first, then this
        runs again."""
        key = f"{ctx.openid}:{ctx.msg.dedupe_key}"
        try:
            async with unit_of_work(ctx) as session:
                address = await addresses.default_address(session, customer_id=ctx.customer_id)
                if address is None:
                    return ADDRESS_STEP.start(GroupData(code=code, campaign_id=campaign_id))
                customer_id, rules, now = ctx.customer_id, ctx.services.rules, utcnow()
                if campaign_id is not None:
                    _group, order_id = await group_buys.start_group(
                        session, campaign_id=campaign_id, customer_id=customer_id, address_id=address.id,
                        idempotency_key=key, rules=rules, now=now,
                    )
                else:
                    _group, order_id = await group_buys.join_group(
                        session, code=code, customer_id=customer_id, address_id=address.id,
                        idempotency_key=key, rules=rules, now=now,
                    )
                order = await orders.get_order(session, order_id=order_id)
        except ShopError as exc:
            return Step(error_reply(exc))
        return Step(pay_card(ctx, order))

    async def share(self, ctx: Context) -> Reply | None:
        """"拼团码是多少", "我的团码呢", "怎么分享给朋友": the customer's open group (the one they
        lead first) as a card to forward, with its code and the group's page, as the invite
        the leader got when it opened. A group they lead not paid yet: pay first. None: no
        such group (the caller says how to start one, or answers with something else)."""
        async with unit_of_work(ctx) as session:
            mine = await group_buys.groups_of(session, customer_id=ctx.customer_id)
        seated = [
            g for g in mine
            if g.status == GroupStatus.OPEN
            and (member := g.member(ctx.customer_id)) is not None and member.status == GroupMemberStatus.PAID
        ]
        seated.sort(key=lambda g: g.leader_id != ctx.customer_id)  # the one they lead first, else newest
        if seated:
            group = seated[0]
            data = group_card_data(group, customer_id=ctx.customer_id)
            return News((Card("group_share", data, picurl=group.image_url, url=f"/g/{group.code}"),))
        if any(g.status == GroupStatus.FORMING and g.leader_id == ctx.customer_id for g in mine):
            return Text("group_share_none", {"forming": True})
        return None

    async def withdraw(self, ctx: Context, code: str = "") -> Reply:
        """A leader whose group nobody joined withdraws it ("取消拼团" / "cancel group").

        Paid: the group closes and the leader's payment goes back through the payment
        service at once (the same state-found refund the expiry job makes, so never
        twice). Not paid yet: the leader's order is cancelled, which closes the group.
        Once a friend has a seat the group stays: friends were promised it.
        """
        await ctx.services.dialogs.end(ctx.openid)
        try:
            async with unit_of_work(ctx) as session:
                if not code:
                    led = [
                        g
                        for g in await group_buys.groups_of(session, customer_id=ctx.customer_id)
                        if g.leader_id == ctx.customer_id
                        and g.status in (GroupStatus.FORMING, GroupStatus.OPEN)
                    ]
                    if not led:
                        return Text("group_withdraw_none")
                    code = led[0].code
                before = await group_buys.get_group(session, code=code)
                group = await group_deadlines.leader_cancel_group(
                    session, code=code, customer_id=ctx.customer_id, now=utcnow()
                )
        except ShopError as exc:
            if exc.code == ErrorCode.GROUP_CLOSED and exc.details.get("reason") == "members":
                return Text(
                    "group_withdraw_refused", group_card_data(before, customer_id=ctx.customer_id)
                )
            if exc.code == ErrorCode.GROUP_CLOSED or exc.code == ErrorCode.GROUP_NOT_FOUND:
                return Text("group_withdraw_none")
            return error_reply(exc)
        payments = ctx.services.payments
        refunded = 0
        if before.status == GroupStatus.FORMING:
            leader = next(m for m in before.members if m.is_leader)
            async with unit_of_work(ctx) as session:
                order = await orders.get_order(session, order_id=leader.order_id)
            await payments.close(order_no=order.order_no)
        else:
            refunded = await group_deadlines.refund_ended_groups(
                ctx.uow,
                refund=payments.refund,
                now=utcnow(),
                group_id=group.id,
                actor="customer",
                tell=False,  # this reply tells the leader
            )
        data = {
            **group.data(utcnow()),
            "paid": before.status == GroupStatus.OPEN,
            "refunded": refunded,
        }
        return Text("group_withdrawn", data)

    @on(GroupState.LIST)
    async def on_list(self, ctx: Context, data: GroupData) -> Step[GroupState, GroupData] | None:
        number = parse_number(ctx.msg.text)
        if number is None:
            return None
        if not 1 <= number <= len(data.campaign_ids):
            return Step(
                Text("pick_out_of_range", {"number": number, "count": len(data.campaign_ids)}),
                GroupState.LIST,
                data,
            )
        return await self._place(ctx, campaign_id=data.campaign_ids[number - 1])

    @on(GroupState.CARD)
    async def on_card(self, ctx: Context, data: GroupData) -> Step[GroupState, GroupData] | None:
        if ctx.msg.text.strip().lower() not in JOIN_WORDS:
            return None
        return await self._place(ctx, code=data.code)

    @on(GroupState.ADDRESS)
    async def on_address(self, ctx: Context, data: GroupData) -> Step[GroupState, GroupData] | None:
        if not looks_like_address(ctx.msg.text):
            return None  # a search, a question…: understood elsewhere, else `reprompt`
        return ADDRESS_STEP.on_typed(ctx, data)

    @on(GroupState.ADDRESS_CONFIRM)
    async def on_address_confirm(self, ctx: Context, data: GroupData) -> Step[GroupState, GroupData] | None:
        keyword = match_keyword(ctx.msg.text)
        if (keyword is None or keyword[0] != "confirm") and not looks_like_address(ctx.msg.text):
            return None
        saved = await ADDRESS_STEP.on_confirm(ctx, data)
        if isinstance(saved, Step):
            return saved
        step = await self._place(ctx, code=data.code, campaign_id=data.campaign_id)
        return step if step.state is None else Step(step.reply, GroupState.ADDRESS_CONFIRM, data)
