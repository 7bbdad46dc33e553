"""Staff ask in words what a read-only command answers ("今天卖了多少" is /stats, "有新订单吗"
/orders 待发货, "库存不够的有哪些" /stock alone), role-checked and audited as the command;
a customer saying the same is searched as any other text."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from commerce.staff.models import AuditEntry
from tests.bot.admin.test_orders import CUSTOMER, OWNER, SERVICE, STRANGER, pay, place_order
from tests.bot.driver import Shop, db

pytestmark = pytest.mark.sqlite_only  # the words are checked; the commands they run are tested on both databases


@pytest.mark.parametrize(("words", "shows"), [
    ("今天卖了多少", "【今日】"),
    ("今天的销售额", "【今日】"),
    ("how are sales", "【今日】"),
    ("库存不够的有哪些", "【库存低】"),
    ("看看库存", "【库存低】"),
    ("有退款申请吗", "【待处理售后】"),
])
async def test_an_owner_asks_in_words(staffed: Shop, words: str, shows: str) -> None:
    reply = await staffed.user(OWNER).say(words)
    assert shows in reply.text and "没有找到" not in reply.text, reply.text


async def test_new_orders_in_words_list_those_waiting_to_ship(staffed: Shop) -> None:
    paid = await place_order(staffed, staffed.user(CUSTOMER))
    await pay(staffed, paid)
    unpaid = await place_order(staffed, staffed.user(CUSTOMER))
    reply = await staffed.user(OWNER).say("有新订单吗")
    assert "【已支付订单】共 1 单" in reply.text and paid in reply.text and unpaid not in reply.text, reply.text
    async with db(staffed.client.app)() as session:
        audited = (await session.scalars(select(AuditEntry).where(AuditEntry.command == "orders"))).all()
    assert [(a.actor, a.args) for a in audited] == [(OWNER, ["待发货"])]


async def test_words_keep_the_commands_roles(staffed: Shop) -> None:
    refused = await staffed.user(SERVICE).say("今天卖了多少")  # /stats is for managers
    assert "【今日】" not in refused.text and "/stats" in refused.text, refused.text


@pytest.mark.parametrize("words", ["今天卖了多少", "有新订单吗", "库存不够的有哪些"])
async def test_a_customer_saying_the_same_is_not_answered_as_staff(staffed: Shop, words: str) -> None:
    reply = await staffed.user(STRANGER).say(words)
    assert "【" not in reply.text and "/stock" not in reply.text, reply.text


async def test_stock_alone_lists_what_runs_low_emptiest_first(staffed: Shop) -> None:
    reply = await staffed.user(OWNER).say("/stock")
    assert reply.text.startswith("【库存低】") and "剩 0" in reply.text and "/stock SKU" in reply.text, reply.text
    counts = [int(line.split("剩 ")[1].split("（")[0]) for line in reply.text.splitlines() if "剩 " in line]
    assert counts == sorted(counts) and len(counts) > 1
