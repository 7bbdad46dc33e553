"""The member level's discount at checkout, as pure functions (no database).

Rounding: the level takes `discount_bp` basis points of the goods left after the coupon,
floored to the fen; it is never negative, never more than the goods after the coupon, and
a cart with goods in it still costs at least one fen. Coupon first, then the level, then
the points (counted on what the level left)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from commerce.cart.calculations import (
    Terms,
    cart_totals,
    coupon_discount,
    level_discount,
    points_saving,
)
from commerce.membership.codes import normalize_phone
from commerce.membership.levels import level_for, next_level
from commerce.rules import DEFAULT_MEMBER_LEVELS, MemberLevel, ShopRules
from tests.commerce.cart.test_calculations import FAST, rules_st

bp_st = st.integers(min_value=-100, max_value=12_000)


@FAST
@given(base=st.integers(min_value=-1000, max_value=10**9), bp=bp_st)
@example(base=1234, bp=200)  # 2% of ¥12.34 is 24.68 fen: 24 off
def test_a_level_takes_its_share_floored_and_never_more_than_the_base(base: int, bp: int) -> None:
    off = level_discount(base, bp)
    assert 0 <= off <= max(0, base)
    if base > 0 and 0 < bp <= 10_000:
        assert off == base * bp // 10_000  # floored: the customer never gets a fraction of a fen
        assert off * 10_000 <= base * bp < (off + 1) * 10_000


@FAST
@given(
    goods=st.integers(min_value=-1000, max_value=10_000_000),
    coupon=st.builds(
        Terms,
        kind=st.sampled_from(["amount_off", "percent_off"]),
        threshold_fen=st.integers(min_value=0, max_value=100_000),
        amount_off_fen=st.integers(min_value=0, max_value=20_000_000),
        percent_off=st.integers(min_value=0, max_value=100),
        cap_fen=st.integers(min_value=0, max_value=100_000),
    ),
    bp=bp_st,
    balance=st.integers(min_value=0, max_value=10_000_000),
    use_points=st.booleans(),
    rules=rules_st,
)
@example(goods=1, coupon=Terms("amount_off", amount_off_fen=0), bp=10_000, balance=0, use_points=False,
         rules=ShopRules(free_delivery_threshold_fen=0))  # 100% of one fen, shipped free: one fen is left to pay
def test_coupon_then_level_then_points_add_up(
    goods: int, coupon: Terms, bp: int, balance: int, use_points: bool, rules: ShopRules
) -> None:
    discount = coupon_discount(coupon, goods)
    t = cart_totals(
        goods_fen=goods, discount_fen=discount, points_balance=balance, use_points=use_points, rules=rules,
        level_discount_bp=bp,
    )
    assert t.payable_fen == t.goods_fen - t.discount_fen - t.level_discount_fen + t.delivery_fen - t.points_fen
    assert 0 <= t.level_discount_fen <= t.goods_fen - t.discount_fen  # never more than the subtotal after the coupon
    assert t.payable_fen >= (1 if t.goods_fen > 0 else 0)
    # the level is figured on what the coupon left (unless only the last fen stops it)
    assert t.level_discount_fen == min(
        level_discount(t.goods_fen - t.discount_fen, bp), max(0, t.goods_fen - t.discount_fen + t.delivery_fen - 1)
    )
    # and the points on what the level left
    base = t.goods_fen - t.discount_fen - t.level_discount_fen
    offer = points_saving(balance=balance, base_fen=base, max_fen=base + t.delivery_fen - 1, rules=rules)
    assert (t.points_offer_fen, t.points_offer_used) == offer
    # a level never makes an order dearer
    without = cart_totals(goods_fen=goods, discount_fen=discount, points_balance=balance, use_points=use_points, rules=rules)
    assert t.payable_fen <= without.payable_fen


@FAST
@given(total=st.integers(min_value=0, max_value=10**9))
def test_a_total_reaches_one_level_and_the_next_is_what_it_lacks(total: int) -> None:
    reached = level_for(total, DEFAULT_MEMBER_LEVELS)
    assert reached.threshold_fen <= total
    assert all(lv.threshold_fen <= reached.threshold_fen for lv in DEFAULT_MEMBER_LEVELS if lv.threshold_fen <= total)
    ahead = next_level(total, DEFAULT_MEMBER_LEVELS)
    if ahead is None:
        assert reached == max(DEFAULT_MEMBER_LEVELS, key=lambda lv: lv.threshold_fen)
    else:
        assert ahead[1] > 0 and level_for(total + ahead[1], DEFAULT_MEMBER_LEVELS) == ahead[0]


def test_below_every_threshold_there_is_no_level() -> None:
    levels = (MemberLevel("银卡", 50_000, 200),)
    assert level_for(49_999, levels).name == "" and level_for(50_000, levels).name == "银卡"
    assert next_level(49_999, levels) == (levels[0], 1)


@FAST
@given(st.text(max_size=30))
def test_a_phone_read_is_always_eleven_mainland_digits(text: str) -> None:
    phone = normalize_phone(text)
    assert phone is None or (len(phone) == 11 and phone.isdigit() and phone[0] == "1" and phone[1] in "3456789")


def test_phones_as_people_type_them() -> None:
    assert normalize_phone("138 1234 5678") == normalize_phone("+86-138-1234-5678") == "13812345678"
    assert normalize_phone("０１３８") is None and normalize_phone("１３８１２３４５６７８") == "13812345678"
    assert normalize_phone("8613812345678") == "13812345678"
    for bad in ("1381234567", "11012345678", "023-12345678", "138123456789", ""):
        assert normalize_phone(bad) is None
