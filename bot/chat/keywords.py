"""Words that work everywhere, in Chinese and English (SPEC section 5).

These are what customers type, not what the bot says, so they live in code. A match
also tells which language the customer is using.
"""

from __future__ import annotations

import re
import unicodedata

KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "help": {"zh": ("帮助", "帮忙", "菜单", "说明", "？"), "en": ("help", "menu", "?", "h")},
    "cancel": {"zh": ("取消", "退出", "算了", "我想取消", "我要取消", "取消吧", "不弄了"), "en": ("cancel", "quit", "exit", "stop")},
    "next": {"zh": ("下一页", "下页", "更多", "下一个"), "en": ("next", "n", "more", "next page")},
    "prev": {"zh": ("上一页", "上页", "前一页"), "en": ("prev", "previous", "p", "previous page")},
    "back": {"zh": ("返回", "列表", "返回列表"), "en": ("back", "list")},
    "hot": {"zh": ("热卖", "热门", "爆款", "热销"), "en": ("hot", "popular", "best sellers", "bestsellers")},
    "categories": {"zh": ("分类", "类目", "全部分类"), "en": ("categories", "category", "browse")},
    "cart": {"zh": ("购物车", "我的购物车", "看购物车"), "en": ("cart", "my cart", "basket")},
    "checkout": {"zh": ("结算", "去结算", "下单", "买单"), "en": ("checkout", "check out", "pay now")},
    "orders": {"zh": ("订单", "我的订单", "查订单"), "en": ("orders", "my orders", "order")},
    "service": {"zh": ("客服", "人工", "人工客服", "转人工"), "en": ("service", "human", "agent", "support")},
    "confirm": {"zh": ("确认", "确定", "好的", "是"), "en": ("confirm", "ok", "yes", "y")},
    "clear": {"zh": ("清空", "清空购物车"), "en": ("clear", "empty", "clear cart")},
    "address": {"zh": ("地址", "换地址", "修改地址", "收货地址"), "en": ("address", "change address")},
    "cancel_order": {"zh": ("取消订单",), "en": ("cancel order",)},
    "received": {"zh": ("确认收货", "已收货", "收到了"), "en": ("received", "confirm receipt")},
    "pay": {"zh": ("支付", "去支付", "付款"), "en": ("pay",)},
    "group": {"zh": ("拼团", "团购", "我的拼团", "开团"), "en": ("group", "group buy", "groups", "my groups")},
    "flash": {"zh": ("秒杀", "限时秒杀", "秒杀活动"), "en": ("flash", "flash sale", "flash sales")},
    "invite": {"zh": ("邀请", "邀请好友", "推荐", "分享"), "en": ("invite", "refer", "share", "invite friends")},
    "me": {"zh": ("我的", "个人中心", "我", "积分", "佣金"), "en": ("me", "my account", "account", "points")},
    "withdraw": {"zh": ("提现", "申请提现"), "en": ("withdraw", "cash out")},
    "member": {"zh": ("会员", "会员中心", "我的会员", "会员等级", "会员卡"), "en": ("member", "membership")},
    "register": {
        "zh": ("注册会员", "会员注册", "成为会员", "加入会员", "开通会员", "绑定手机", "绑定手机号", "手机绑定", "注册"),
        "en": ("register", "sign up", "bind phone", "become a member"),
    },
    "balance": {"zh": ("余额", "我的余额", "储值", "查余额", "储值余额"), "en": ("balance", "my balance")},
    "topup": {"zh": ("充值", "我要充值", "余额充值", "储值充值"), "en": ("top up", "topup", "recharge")},
    "review": {"zh": ("评价", "去评价", "写评价", "评价订单", "买家秀", "晒单"), "en": ("review", "write a review", "rate")},
}

# Commands with a number: "加入购物车 2", "add 2", "买2个", "来两袋", "改 1 3", "删 2", "售后 坏了".
# A quantity is digits or a Chinese numeral ("两", "十二"); its unit is a count ("袋", "份"),
# never a weight: "要5斤" names a variant (5斤装), it is not five of something.
_QTY = r"(\d{1,4}|[零一二两俩三四五六七八九十百]{1,5})"
_COUNT_UNIT = r"(?:个|件|份|袋|包|盒|箱|瓶|条|双|只|支|套|罐|听|块|张|本|台|把|顶|杯|根|颗|串|桶|提|卷|副|对|pcs|x)"
ADD_TO_CART = re.compile(
    rf"(?:加入购物车|加购物车|加到购物车|放进购物车|放购物车|加购|加入|买)\s*{_QTY}?\s*{_COUNT_UNIT}?"
    rf"|(?:我?(?:要|想要)|来|拿|给我来|给我拿|给我|帮我拿|再来|再要)\s*{_QTY}\s*{_COUNT_UNIT}?[吧的]?"
    rf"|{_QTY}\s*{_COUNT_UNIT}[吧]?"
    r"|add(?: to (?:my )?cart)?\s*(\d{1,4})?(?:\s*(?:to (?:my )?cart|pcs|x|of (?:it|these|them)))?"
    r"|(?:i'?ll take|i want|give me)\s*(\d{1,4})"
    # taking the one on the card, no count said: "买了", "就要这个", "就它了", "拍了", "I'll take it"
    r"|(?:那就|那|就)?(?:要|买|拿|拍|来)(?:这个|这款|这件|它)[吧啦了]?|(?:那就|就|我)?(?:要|买|拍)了[吧啦]?|(?:那)?就(?:它|这个|这款|这件)(?:了|吧)"
    r"|买它|(?:i'?ll )?take (?:it|this one|that one)|i'?ll have (?:it|this one)",
    re.IGNORECASE,
)
# "白色的来一个", "5斤的两份": a count said inside other words (the variant's) on a card.
COUNT_SAID = re.compile(rf"(?:来|要|买|拿|加)?\s*{_QTY}\s*{_COUNT_UNIT}(?!装)")
BUY_NOW = re.compile(
    rf"(?:立即购买|马上买|直接买|现在就?买|buy now|buy)\s*{_QTY}?\s*{_COUNT_UNIT}?",
    re.IGNORECASE,
)
_LINE = r"(?:个|件|项|行|条)?"
CHANGE_QUANTITY = re.compile(
    r"(?:改|修改|change|set)\s*(\d{1,3})\s*(?:为|to|[\s×x*])\s*(\d{1,4})"
    rf"|第\s*{_QTY}\s*{_LINE}\s*(?:改成|改为|改到|换成|要|变成)\s*{_QTY}\s*{_COUNT_UNIT}?",
    re.IGNORECASE,
)
REMOVE_LINE = re.compile(
    rf"(?:删|删除|删掉|去掉|移除|拿掉|remove|delete|del)\s*(?:第)?\s*{_QTY}\s*{_LINE}"
    rf"|(?:把)?第\s*{_QTY}\s*{_LINE}\s*(?:删了|删掉|删除|去掉|拿掉|不要了|不要)",
    re.IGNORECASE,
)
# At checkout: "用余额" (all it can), "用余额 50" (50 yuan), "余额支付", "不用余额"; "use balance 20", "no balance";
# as said: "用余额付", "我用余额付吧", "直接余额付款", "pay with balance".
USE_BALANCE = re.compile(
    r"^\s*(?:我|就|直接|那)*(?:(不用|不|用|使用)\s*余额(?:来)?(?:支付|付款|付|扣|抵扣)?|余额(?:来)?(?:支付|付款|付|扣)"
    r"|(use|no|don't use|pay (?:with|by|from))\s+(?:my |the )?balance)"
    r"\s*(\d{1,6}(?:\.\d{1,2})?)?\s*(?:元|块|yuan)?\s*(?:吧|呀|啊|哈|了|就行|可以吗|行吗)?\s*$",
    re.IGNORECASE,
)
USE_COUPON = re.compile(r"(?:券|用券|coupon)\s*(\d{1,3}|不用|none|no)", re.IGNORECASE)
# At checkout: "用积分" / "不用积分" / "use points" / "no points" (a bare "积分"/"points" is "me").
USE_POINTS = re.compile(r"(不用|不|用|使用|use|no|don't use)\s*(?:积分|points)", re.IGNORECASE)
AFTER_SALES = re.compile(r"(退款|退货|售后|refund|return)\s*[:：]?\s*(.*)", re.IGNORECASE | re.DOTALL)

_TRAILING = re.compile(r"[\s!！。.,，~～]+$")
_INDEX: dict[str, tuple[str, str]] = {
    word: (name, locale)
    for name, by_locale in KEYWORDS.items()
    for locale, words in by_locale.items()
    for word in words
}


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower case, trimmed of trailing punctuation."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    stripped = _TRAILING.sub("", text)
    return stripped or text


def match_keyword(text: str) -> tuple[str, str] | None:
    """(keyword, locale) when the whole message is one of the words above."""
    if len(text) > 40:
        return None
    return _INDEX.get(normalize(text))


def match_command(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """A whole message matching one of the commands above (after normalisation)."""
    if len(text) > 400:
        return None
    return pattern.fullmatch(normalize(text))


def parse_number(text: str) -> int | None:
    """A number picked from a list: "2", "２", "#2", "第2个", "第二个", "三"; None otherwise.

    A Chinese numeral with a count word needs 第: "两个" is a quantity, not the second."""
    found = _PICK.fullmatch(normalize(text))
    if not found:
        return None
    return quantity(next(group for group in found.groups() if group))


_CN = "一二两俩三四五六七八九十"
_PICK = re.compile(
    rf"#?\s*(?:第\s*(\d{{1,4}}|[{_CN}]{{1,3}})\s*(?:个|号|项|款|件|种|条)?|(\d{{1,4}})\s*(?:个|号|项)?|([{_CN}]{{1,3}})号?)"
)
_CN_VALUES = {"一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def quantity(word: str) -> int:
    """Digits or a Chinese numeral up to 9999 ("2", "两", "十二", "三百") as a number."""
    if word.isdigit():
        return int(word)
    total, current = 0, 0
    for char in word:
        if char in _CN_VALUES:
            current = _CN_VALUES[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
    return total + current


def numbers(found: re.Match[str]) -> list[int]:
    """The numbers a matched command names, in order ("第一个改成3个" → [1, 3])."""
    return [quantity(group) for group in found.groups() if group]


def command_quantity(found: re.Match[str]) -> int:
    """The quantity a matched ADD_TO_CART / BUY_NOW command asks for (1 when it names none)."""
    word = next((group for group in found.groups() if group), None)
    return quantity(word) if word else 1
