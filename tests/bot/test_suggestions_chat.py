"""A near miss lists what the customer probably meant without first saying nothing was found."""

from __future__ import annotations

from tests.bot.driver import Shop


async def test_a_suggestion_never_says_nothing_was_found(shop: Shop) -> None:
    user = shop.user()
    reply = (await user.say("strawbery jam")).text  # search finds nothing, suggest finds the strawberries
    assert "丹东草莓" in reply and "您是不是想找" in reply
    assert "没有找到" not in reply

