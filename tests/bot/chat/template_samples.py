"""Sample values for rendering every message template, by variable name.

A template asks for `order_no`, `lines`, `l.price`...; the sampler answers by name, the
same for every template, so a new template needs no new samples unless it uses a new
name (the test says which). Names that mean something else in one template are
overridden per template in `TEMPLATE_SAMPLES`. Enumerations (statuses, codes, kinds) are
not listed here: the test reads the values a template compares against from the
template itself and renders each one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from commerce.orders.models import OrderStatus

ORDER_STATUSES = tuple(s.value for s in OrderStatus)
GROUP_STATUSES = ("forming", "open", "filled", "failed", "closed")

# values that macros translate with a dict lookup: the macro file and the names it maps
MACRO_ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("_macros.j2", "status"): ORDER_STATUSES,
    ("admin/_group_status.j2", "status"): GROUP_STATUSES,
}

WHEN = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)

TIMES = {
    "created_at", "expires_at", "ends_at", "when", "deadline", "until", "now", "frozen_until", "paid_at", "at",
    "opened_at", "last_activity_at", "starts_at", "started_at", "dashboard_expires_at",
}

MONEY = {
    "price", "total", "goods", "delivery", "payable", "paid", "subtotal", "discount", "refunded",
    "refundable", "refund", "amount", "left", "saving", "offer_saving", "gmv", "revenue",
    "average", "regular_price", "price_min", "price_max", "refund_total", "off", "over", "cap",
    "max", "min", "delivery_fee", "free_threshold",
}  # names ending in _fen are money too

COUNTS = {
    "count", "quantity", "stock", "joined", "size", "hours_left", "minutes_left", "page",
    "referrals", "balance", "points", "used", "offer_used", "seats", "hours", "minutes",
    "limit", "quota", "qty", "issued", "held", "sent", "created", "updated", "unchanged",
    "errors", "more_errors", "more", "owed", "refunds", "sales", "threshold",
    "paid_orders", "paying", "carts", "conversion", "line", "item_count", "line_count",
    "group_joined", "group_size", "binding_days", "badge_at", "share_points", "pct",
    "per_user_limit", "total_quantity", "max_days", "max_hours", "max_size", "max_limit",
    "max_rows", "max_length", "min_length", "points_used", "current", "product_id",
    "withdrawal_id", "delta", "dispatch_hours", "return_days", "cart_items", "in_cart", "offer_quantity", "shipped_count",
    "ticket", "ticket_id", "waiting", "failed_count", "paid_count", "line_no",
    "rating_max", "review_id", "photo_count", "photos_max", "length",
    "units", "sold", "pay_minutes", "days", "max_units", "max_pay_minutes", "running", "coming",
    "viewers", "clicks", "pushes", "audience",
    "images", "added", "width", "height", "max_bytes", "max_pixels", "max_count",
}

LISTS = {
    "lines", "items", "variants", "hot", "categories", "orders", "problems", "offers",
    "campaigns", "mine", "moves", "badges", "requests", "entries", "coupons", "members",
    "groups", "error_lines", "events", "top", "pending", "low_stock", "top_referrers",
    "cart", "recent", "tickets", "before", "said", "after_sales",
}

# free text: the test removes these from a reply before looking for stray words
TEXT: dict[str, Any] = {
    "name": "巨峰葡萄",
    "product": "巨峰葡萄",
    "first_item": "巨峰葡萄",
    "label": "5斤装",
    "spec": "5斤装",
    "subtitle": "新鲜现摘",
    "question": "保修吗",
    "description": "烟台栖霞红富士，脆甜多汁",
    "category": "水果",
    "title": "新人立减",
    "coupon_title": "新人立减",
    "query": "葡萄干",
    "service_hours": "每天 09:00-21:00",
    "order_no": "202612040001",
    "customer": "a1b2",
    "who": "c3d4",
    "leader": "e5f6",
    "actor": "c3d4",
    "openid": "oAbc123",
    "phone": "13800138000",
    "address": "上海市浦东新区世纪大道100号",
    "address_text": "上海市浦东新区世纪大道100号",
    "region": "浙江省杭州市西湖区",
    "address_name": "张三",
    "address_phone": "13800138000",
    "address_name_full": "张三",
    "carrier": "顺丰",
    "tracking_no": "1234567890",
    "carrier_zh": "顺丰速运",
    "carrier_en": "SF Express",
    "tracking_url": "https://www.kuaidi100.com/chaxun?com=shunfeng&nu=1234567890",
    "ref": "202612040001",
    "reason": "商品破损",
    "resolution": "已超过售后期",
    "note": "请尽快",
    "message": "东西坏了",
    "text": "今晚八点上新",
    "code": "G7K2",
    "group_code": "G7K2",
    "coupon_code": "NEW20",
    "sku_code": "FRU-GRAPE-5J",
    "sku": "FRU-GRAPE-5J",
    "refund_no": "R2026120401",
    "transfer_ref": "WX20261204",
    "confirm_code": "4821",
    "link": "https://shop.example/r/ABC",
    "qr_url": "https://shop.example/qr/ABC.png",
    "url": "https://shop.example/x/1",
    "pay_url": "https://shop.example/pay/1",
    "dashboard_url": "https://shop.example/dashboard/x",
    "image": "https://shop.example/p/1.jpg",
    "word": "shp",
    "command": "price",
    "value": "39.9",
    "args": "FRU-GRAPE-5J 39.9",
    "error": "45015",
    "alias": "改价",
    "column": "price_yuan",
    "name_en": "Grapes",
    "keyword": "发票",
    "answer": "可以开电子发票",
    "means": "巨峰葡萄",
    "last_text": "东西坏了",
    "hours": "每天 09:00-21:00",
    "speaker": "customer",
    "similar": "红富士苹果",
    "video_url": "https://channels.weixin.qq.com/live/1",
    "new_name": "巨峰葡萄",
    "max_mb": "10",
    "body": "新鲜现摘",
}

OTHER: dict[str, Any] = {
    "outcome": "ok",
    "event": "order_shipped",
    "role": "operator",
    "in_stock": True,
    "low": True,
    "active": True,
    "expired": False,
    "is_leader": True,
    "member": True,
    "on_sale": True,
    "unchanged": False,
    "told": True,
    "uncertain": True,
    "full": True,
    "failed": False,
    "muted": True,
    "from_config": True,
    "group_orders": False,
    "frozen_waiting": True,
    "referred": True,
    "provider_refused": False,
    "wrong": True,
    "group_wait": False,
    "rate_bp": 500,
    "start": date(2026, 11, 1),
    "end": date(2026, 11, 30),
    "delta": -5,
    "number": 1,
    "id": 12,
    "pages": 3,
    "d": "@map",
    "badges": ["first_order", "five_referrals"],
    "commands": ["price", "coupon", "import", "withdrawal", "campaign", "referrals"],
    "weekend_dispatch": True,
    "pay_alipay": True,
    "ack": False,
    "found": True,
    "final": True,
    "first": True,
    "closed": False,
    "already": False,
    "removed": True,
    "ended": True,
    "placeholder": True,
    "coupon": "@map",
    "shop": {"name": "果园小铺", "base_url": "https://shop.example"},
    "s": "@map",  # a flash sale (the line `_flash_line.j2` shows of it)
    "sale": "@map",
    "next_sale": "@map",
    "to_start": "@map",
    "new": True,
    "changed": True,
    "reviewed": False,
    "hidden": False,
    "rating": 5,
}

# fields of an error's details (`d`) that mean something else for each error code:
# a tuple lists the values the code sends (the first is the sample), anything else is fixed
D_BY_CODE: dict[str, dict[str, Any]] = {
    "out_of_stock": {"command": ("add", "buy", "change")},
    "after_sales_not_allowed": {"reason": ("open_request", "window_closed", "status"), "status": ORDER_STATUSES},
    "csv_invalid": {
        "reason": (
            "url", "private", "fetch", "http", "redirects", "too_large", "encoding", "empty",
            "missing_columns", "duplicate_column", "too_many_rows", "unreadable", "other",
        ),
        "status": 404,
        "missing": ["price_yuan"],
    },
    "withdrawal_not_pending": {"status": ("paid", "rejected")},
    "illegal_transition": {"from": ORDER_STATUSES},
    "price_invalid": {"field": ("price", "percent_off", "amount_off_fen", "cap_fen", "threshold_fen")},
    "stock_invalid": {"field": ("stock", "threshold")},
    "name_invalid": {"field": ("name", "code", "subtitle", "title", "description", "tags")},
    "campaign_invalid": {
        "field": ("group_price", "group_size", "time_limit", "hours", "window", "per_user_limit", "stock_quota")
    },
    "address_invalid": {"missing": ("name", "phone", "address")},
    "flash_invalid": {"field": ("price", "units", "limit", "pay_minutes", "window")},
    "live_invalid": {"field": ("title", "video_url")},
}

# a name that means something else in one template
TEMPLATE_SAMPLES: dict[str, dict[str, Any]] = {
    "admin/live_summary": {"orders": 3, "paid": 2},
    "admin/live_end_confirm": {"orders": 3, "paid": 2},
    "buy_again": {"added": 2, "missing": ["巨峰葡萄"]},
    "admin/shipped_batch": {"shipped": "@list", "refused": "@list"},
    "alert_order_paid": {"group_ready": ["202612040002", "202612040003"]},
    "checkout_review": {"address": "@map", "points": "@map", "coupon": "@map"},
    "added_to_cart": {"cart": "@map"},
    "admin/help": {"role": "operator"},
    "admin/joined": {"role": "operator"},
    "admin/staff_added": {"role": "operator"},
    "admin/staff_invite": {"role": "operator"},
    "admin/staff_role_changed": {"role": "operator"},
    "admin/product_edited": {"field": "name", "before": {"name": "葡萄"}, "after": {"name": "巨峰葡萄"}},
    "step_hint": {"variants": 3},
    "product_question": {"variants": 3},
    "admin/synonym_set": {"before": "@map"},
    "admin/import_done": {"unchanged": 3},
    "admin/group_close_confirm": {"paid": 2},
    "order_paid": {"points_earned": "@map"},
    "welcome": {"welcome": "@map"},
    "product_card": {"group_offer": "@map", "welcome": True, "rating": "@map"},
    "review_ask_rating": {"items": ["巨峰葡萄", "新鲜现摘"]},
    "review_rating_invalid": {"said": "6"},
    "admin/reviews": {"reviews": "@list"},
    "admin/price_set": {"after": "@map", "before": "@map"},
    "admin/stock_set": {"after": "@map", "before": "@map"},
    "admin/stats": {"today": "@map", "week": "@map"},
    "admin/approved": {"refund_error": "@map"},
    "alert_handoff": {"last_order": "@map"},
    "admin/campaign_closed": {"campaign": "@map"},
    "admin/campaign_created": {"campaign": "@map"},
    "admin/coupon_created": {"coupon": "@map"},
    "admin/coupon_issued": {"coupon": "@map"},
    "admin/photo_cleared": {"removed": 3},
    "alert_broadcast_report": {"uncertain": 2},
    "flash_list": {"sales": "@list"},
    "flash_pay_card": {"address": "@map"},
    "admin/flash_list": {"sales": "@list"},
}

# attributes of a list element or a map that differ from the top-level name
NESTED: dict[str, Any] = {
    "groups.group": "catalog",
    "groups.commands": "@list",
    "refund_error.code": "out_of_stock",
    "refund_error.d": "@map",
    "refused.error": "@map",
    "error.code": "group_not_filled",
    "error.d": "@map",
    "address.address": "上海市浦东新区世纪大道100号",
    "address.name": "张三",
    "d.known": ["水果", "茶叶"],
    "d.ticket_id": 3,
    "d.missing": "phone",
    "d.others": "@list",
    "d.spec_label": "5斤装",
    "events.to": "paid",
    "members.leader": True,
    "d.available": 0,
    "to_start.days": 1,
    "to_start.hours": 2,
    "to_start.minutes": 15,
    "today.orders": 5,
    "week.orders": 21,
    "rating.average": "4.8",
    "rating.count": 12,
    "reviews.products": ["巨峰葡萄", "新鲜现摘"],
    "reviews.rating": 4,
}
