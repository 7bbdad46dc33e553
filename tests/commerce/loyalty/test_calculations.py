"""Points arithmetic as pure functions: property tests, no database
(commerce/loyalty/calculations.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.loyalty.calculations import purchase_points, refund_part, refund_share
from commerce.rules import ShopRules

FAST = settings(max_examples=300, deadline=None, database=None)
fen = st.integers(min_value=0, max_value=10_000_000)


@FAST
@given(paid=st.integers(min_value=-1000, max_value=10_000_000), per_yuan=st.integers(min_value=0, max_value=50))
def test_points_are_earned_per_whole_yuan_only(paid: int, per_yuan: int) -> None:
    rules = ShopRules(points_per_yuan=per_yuan)
    earned = purchase_points(paid, rules)
    assert earned >= 0
    assert earned == max(0, paid) // 100 * per_yuan
    assert purchase_points(max(0, paid) // 100 * 100 + 99, rules) == earned  # the fen beyond earn nothing


@FAST
@given(total=st.integers(min_value=0, max_value=1_000_000), paid=st.integers(min_value=1, max_value=10_000_000), data=st.data())
def test_partial_refunds_take_back_exactly_everything_once_all_is_refunded(total: int, paid: int, data: st.DataObject) -> None:
    """However the money comes back in parts, the parts are never negative, never more
    than the total on the way, and add up to exactly the total at the end."""
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=paid), max_size=6))
    refunded, taken = 0, 0
    for cut in cuts:
        after = min(paid, refunded + cut)
        part = refund_part(total, before_fen=refunded, after_fen=after, paid_fen=paid)
        assert part >= 0
        taken += part
        assert taken <= total
        refunded = after
    taken += refund_part(total, before_fen=refunded, after_fen=paid, paid_fen=paid)  # the rest
    assert taken == total


@FAST
@given(total=st.integers(min_value=0, max_value=1_000_000), refunded=fen, paid=fen)
def test_a_share_is_floored_and_all_when_all(total: int, refunded: int, paid: int) -> None:
    share = refund_share(total, refunded, paid)
    assert 0 <= share <= total
    if paid > 0 and refunded < paid:
        assert share * paid <= total * refunded
    else:
        assert share == total
