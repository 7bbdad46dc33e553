"""Importing this module registers every command group on the shared registry."""

from bot.admin import (  # noqa: F401
    after_sales,
    backup,
    balance,
    broadcast,
    catalog,
    coupons,
    export,
    flash_sales,
    general,
    group_buys,
    levels,
    lexicon,
    live,
    orders,
    referrals,
    reviews,
    service,
    staff_commands,
    stats,
)
