"""Understanding: a customer's words → an intent with slots, before anything searches.

Deterministic and fast (regular expressions over the normalised text, a few
microseconds; cached per text): no model, no segmentation dictionary loaded per message.
Search is the last resort: a greeting, thanks, a shop question or a call for a person is
answered as such, and the words that are searched are cleaned of price and quantity
("50块以内的零食" searches 零食 under ¥50, "来两袋大米" searches 大米 with 2 bags).

`understand(text)` is pure; the routes that act on it are in `bot/handlers/understood.py`.
Chinese numerals ("两袋", "五十块") are read with cn2an.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache

import cn2an

from bot.chat.keywords import normalize

MAX_UNDERSTOOD_CHARS = 64  # longer texts are searched (truncated) as they are
MAX_YUAN = 1_000_000
MAX_QUANTITY = 9999


class Intent(enum.StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    FAQ = "faq"
    COMPLAINT = "complaint"  # something went wrong: a person answers
    HUMAN = "human"  # asks for a person
    HELP = "help"
    ACK = "ack"  # "好的", "收到", "bye": a dialog may read these as a confirmation, so only after it
    BUY_AGAIN = "buy_again"  # "再买一次", "和上次一样": the last order's goods into the cart
    ORDERS = "orders"  # "我的订单", "did I pay": the order list answers
    # Questions about one order: the handler finds the order they mean (the newest one in
    # the status the question is about) and answers with it; no such order → a shop answer.
    PAY_ORDER = "pay_order"  # "刚才那单怎么付", "付款链接": the unpaid order's pay card
    TRACK = "track"  # "包裹到哪儿了", "发货了吗": the shipment, or when it will ship
    URGE = "urge"  # "催一下发货", "怎么还不发": the promise, and staff are told
    RECEIVED = "received"  # "东西收到了", "确认收货": confirm receipt of the shipped order
    PLEASED = "pleased"  # "收到啦 苹果很甜👍": glad, and how to confirm receipt and review (never confirmed)
    CANCEL_ORDER = "cancel_order"  # "取消订单", "那单不要了"
    AFTER_SALES = "after_sales"  # "我要退款", "申请售后": how, on the order it is about
    REFUND_STATUS = "refund_status"  # "退款进度怎么样了", "我的退款呢", "钱什么时候到账": what became of it
    CHANGE_ADDRESS = "change_address"  # "地址写错了", "改一下收货地址": the new one, until it ships
    CART = "cart"
    CLEAR_CART = "clear_cart"  # "清空购物车", "empty my cart"
    ACCOUNT = "account"  # my points, coupons, commission, invite code
    DEALS = "deals"  # "有优惠吗", "能便宜点吗", "any discounts?": what the shop takes off now, and how
    INVITE = "invite"  # "怎么邀请好友": the invite code and link
    GROUP = "group"  # how group buys work
    GROUP_CODE = "group_code"  # "拼团码是多少", "我的团码呢": the customer's open group, to pass on
    SHARE = "share"  # "怎么分享给朋友": the open group to pass on, else the invite code and link
    FLASH = "flash"  # "有秒杀吗", "怎么抢购": the flash sales running and coming
    LIVE_SUBSCRIBE = "live_subscribe"  # "订阅直播通知", "开播提醒我": told when a live drop starts
    LIVE = "live"  # "有直播吗", "直播间在哪": the product on air
    REVIEW = "review"  # "我想写评价", "给个好评": the review of a received order
    MEMBER = "member"  # "我想办会员", "会员有什么好处", "我是什么等级": membership and its level
    BALANCE = "balance"  # "余额还有多少", "查一下余额": the stored balance
    TOPUP = "topup"  # "怎么充值", "我要充钱": the top-up plans
    PRICE_ASK = "price_ask"  # "多少钱", "how much" with no product named: the price of what is on screen
    STOCK_ASK = "stock_ask"  # "有现货吗", "in stock?" with no product named: the stock of what is on screen
    RECOMMEND = "recommend"  # "有什么推荐的", "what's good": the best sellers
    SEARCH = "search"


class Topic(enum.StrEnum):
    """What a shop question (Intent.FAQ) is about; each is answered from the shop's rules."""

    FREE_DELIVERY = "free_delivery"
    DELIVERY_FEE = "delivery_fee"
    COURIER = "courier"
    SHIPPING_TIME = "shipping_time"
    PAYMENT = "payment"
    INVOICE = "invoice"
    RETURNS = "returns"
    SERVICE_HOURS = "service_hours"  # when someone answers ("几点下班", "客服几点在")


# Questions about one of the customer's orders (bot.handlers.understood answers them).
ORDER_ASKS = frozenset({
    Intent.PAY_ORDER, Intent.TRACK, Intent.URGE, Intent.RECEIVED, Intent.CANCEL_ORDER, Intent.AFTER_SALES,
    Intent.REFUND_STATUS, Intent.CHANGE_ADDRESS,
})

# Intents a dialog never expects: answered even while a list, a card or the cart is open.
UNAMBIGUOUS = frozenset({Intent.GREETING, Intent.THANKS, Intent.HUMAN, Intent.COMPLAINT})


@dataclass(frozen=True, slots=True)
class Slots:
    """What a search asked for besides the product words."""

    price_min_fen: int | None = None
    price_max_fen: int | None = None
    cheap: bool = False  # "便宜点": cheapest first
    quantity: int | None = None
    unit: str = ""
    # the product words with the quantity left in: a name may hold one ("三只松鼠"), and the
    # quantity is only a quantity when the rest still finds products (bot.dialogs.search)
    whole_words: str = ""

    @property
    def narrows_price(self) -> bool:
        return self.price_min_fen is not None or self.price_max_fen is not None or self.cheap


@dataclass(frozen=True, slots=True)
class Understood:
    intent: Intent
    locale: str | None = None  # the language the words were in, when they tell
    topic: Topic | None = None  # Intent.FAQ
    words: str = ""  # Intent.SEARCH: the product words, cleaned
    slots: Slots = Slots()


# ---- numbers -------------------------------------------------------------------------------

_CN_DIGITS = "零〇一二两三四五六七八九十百千万"
NUMBER = rf"(?:\d{{1,7}}(?:\.\d{{1,2}})?|[{_CN_DIGITS}]{{1,12}})"


def parse_amount(word: str) -> float | None:
    """"3", "2.5", "两", "十五", "一百二" → the number; None when it is not one."""
    word = word.strip()
    if not word:
        return None
    if word[0].isdigit():
        try:
            return float(word)
        except ValueError:
            return None
    try:
        value = cn2an.cn2an(word, "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return float(value)


# ---- intents ---------------------------------------------------------------------------------

_POLITE = r"(?:老板|店家|掌柜|亲|亲亲|小姐姐|客服|你|您|大家)?"
_TAIL = r"[呀啊呢哈吖啦嘛哦噢喔~～!！。.,，?？\s]*"
_GREETING_ZH = re.compile(
    rf"{_POLITE}{_TAIL}(?:(?:你好|您好|在吗|在不在|在么|在嘛|有人吗|有人在吗|有人在不|早上好|早安|早|上午好|中午好|下午好|晚上好"
    rf"|晚安|哈喽|哈啰|嗨|嘿|hello|hi){_POLITE}{_TAIL}(?:请问)?{_TAIL})+"
)
_GREETING_EN = re.compile(
    r"(?:hi|hello|hey|hiya|yo|good (?:morning|afternoon|evening)|morning|anyone there|are you there)"
    r"(?: there| shop| guys| boss)?[\s!.?,~]*"
)
# A greeting or "请问" before the message proper, with a pause after it.
_OPENER = re.compile(
    r"(?:(?:你好|您好|在吗|在不在|老板|亲|hello|hi|hey)[呀啊哈~～]*[\s,，!！。.~～]+|请问[\s,，]*)+"
)
_THANKS_ZH = re.compile(
    rf"{_POLITE}(?:谢谢|多谢|感谢|谢啦|谢了|辛苦了|辛苦|麻烦了|3q|3x){_POLITE}(?:了|啦|你|您|哈|老板|亲)*{_TAIL}"
    rf"(?:谢谢|辛苦了)?{_TAIL}"
)
_THANKS_EN = re.compile(
    r"(?:(?:ok|okay|great|cool|perfect|got it|i got it|i see)[\s!.,~]+)?"
    r"(?:thanks?(?: you| a lot| so much)*|thx|ty|cheers|much appreciated)(?: very much| so much| a lot)?[\s!.,~]*"
)
_ACK = re.compile(
    r"(?:(?:好的?|好滴|好哒|好嘞|好吧|行|可以|嗯+|哦+|噢+|收到|知道了|明白了?|懂了|了解|ok|okay|got it|i see|sure|fine"
    r"|谢谢|多谢|感谢|辛苦了|thanks?(?: you)?|thx|再见|拜拜|88|bye(?: bye)?|goodbye|see you"
    r"|算了|没事了?|不用了|(?:先)?不(?:要|买|需要)了|never ?mind|nvm"  # the customer lets it go
    r"|哈{2,}|呵{2,}|嘿{2,}|嘻{2,}|lol|haha+|hehe"
    r"|\[[\u4e00-\u9fffA-Za-z]{1,4}\]"  # WeChat's emoji codes: "[微笑]"
    r")[\s!！。.,，~～了啦哈呀]*){1,4}"
    r"|[\s.。,，!！~～…·、]+"  # dots, "…": someone waiting for an answer
)
_HUMAN = re.compile(
    r"人工|真人|转接|找人|找个人|活人|客服|店主|老板在|找你们老板|联系你们|打电话|和人说话|跟人说话|说人话|听不懂|机器人|没人理|没人回"
    r"|\b(?:human|agent|real person|someone|somebody|a person|customer service|support|talk to|speak to|call me)\b"
)
_COMPLAINT = re.compile(
    r"投诉|坏了|坏的|破了|破损|烂了|漏了|碎了|发霉|变质|过期|少发|漏发|发错|错发|质量(?:太)?差|差评|骗子|假货|(?<![新鲜])不新鲜|太慢|慢死"
    r"|态度(?:很|太|特别|真|非常)?(?:差|恶劣|不好)|服务(?:很|太)?差|不满意|太失望|气死"
    r"|\b(?:complain|complaint|broken|damaged|rotten|wrong item|missing item|scam|terrible)\b"
)
_HELP = re.compile(
    r"怎么(?:买|用|下单|购买|操作)|如何(?:购买|下单|使用)|能做什么|你会什么|有什么功能|怎么玩"
    r"|how (?:do|can) i (?:buy|order|use)|how does (?:this|it) work|what can you do|how to (?:buy|order)"
    r"|^(?:please )?help me$|^i need help$|^can you help(?: me)?$|^[?？]+$"
)
_TOPICS: tuple[tuple[Topic, re.Pattern[str]], ...] = (
    (Topic.FREE_DELIVERY, re.compile(
        r"包邮|免运费|免邮|满多少|满几|free (?:shipping|delivery)|(?:shipping|delivery) (?:is )?free"
    )),
    (Topic.INVOICE, re.compile(r"发票|开票|\binvoice|\bfapiao")),
    (Topic.RETURNS, re.compile(r"退货|退换|换货|无理由|能退|可以退|\breturns?\b|\brefund policy")),
    (Topic.DELIVERY_FEE, re.compile(
        r"运费|邮费|快递费|配送费|\b(?:shipping|delivery|postage) (?:fee|cost|charge)|how much (?:is|for) (?:shipping|delivery)"
    )),
    (Topic.COURIER, re.compile(
        r"什么快递|哪家快递|哪个快递|快递公司|发的快递|指定快递|顺丰|圆通|中通|申通|韵达|邮政|ems|京东快递|\b(?:which|what) (?:courier|carrier)"
    )),
    (Topic.SHIPPING_TIME, re.compile(
        r"发货|几天到|多久到|多长时间到|几天能到|多久能到|什么时候(?:能)?(?:发|到)|当天发|周末发|节假日"
        r"|(?:今天|明天|后天|几号|周末)(?:能|可以|会)?(?:到|送到|收到)|(?:能|可以)?(?:发|寄|送|配送)到|配送范围|偏远地区|\b(?:do you |can you )?(?:deliver|ship) to\b"
        r"|\bwhen (?:do|will|can) (?:you|it) (?:ship|arrive|deliver)|how long (?:does|will|to)|\bdispatch"
        r"|\b(?:ship|deliver) (?:on )?(?:weekends?|saturdays?|sundays?|holidays?)"
    )),
    (Topic.PAYMENT, re.compile(
        r"怎么(?:付|支付|付款|给钱)|如何(?:付|支付|付款)|支付方式|付款方式|支付宝|微信支付|货到付款|信用卡|花呗|能付"
        r"|\bhow (?:do|can) i pay|payment methods?|\bpay (?:by|with)|\balipay|cash on delivery"
    )),
)
_ORDER_REF = r"(?:那单|这单|那个单|这个单|订单|刚才|刚刚|之前|上次|上回|我的单|下的单)"
_PAY_ORDER = re.compile(
    rf"{_ORDER_REF}.{{0,6}}(?:付|支付|付款|付钱|买单|结账)|(?:付款|支付)(?:链接|码|页面?|入口)|待付款|未付款|没付款|还没付"
    r"|^(?:去|我要|要|现在)?(?:付款|支付|付钱)(?:吧|了)?$|^pay(?: now| it)?$"
    r"|(?:重新|继续|再次|怎么还没|还没有?)(?:付款|支付|付钱)|付不了|付不上|(?:付款|支付)(?:失败|不了|不成功)"
    r"|\bpay (?:for )?(?:my|the|that|this) order\b|\bpayment link\b|\bpay(?:ment)? (?:failed|didn't go through)"
    r"|\bhaven't paid\b|\bhow (?:do|can) i pay for (?:it|my order|the order|that)\b|\bstill unpaid\b"
)
_URGE = re.compile(
    r"催(?:一下|一催|下|单|发货|发|促)?|快点发|赶紧发|尽快发|早点发|快发|快点寄|能不能快点|能快点吗|怎么还(?:不|没)(?:发|寄)|还(?:不|没)发货"
    r"|还没(?:有)?发|等(?:了)?(?:好|很)?久(?:了)?还没|(?:今天|明天|马上|现在|早点|尽快)(?:就)?(?:能|可以)?发(?:货|出)?(?:吗|么|嘛|不)?$"
    r"|等急了|急着用|急用|快点(?:啊|吧|呀|哈)?$"
    r"|\bhurry\b|\b(?:ship|send) (?:it |my order )?(?:soon|faster|quicker|asap)\b|\bwhy (?:hasn't|isn't|haven't) (?:it|my order|you)"
    r" (?:shipped|been shipped|ship)|\bstill not shipped\b"
)
_TRACK = re.compile(
    r"物流|快递(?:到哪|呢|单号|信息|到了吗)|^我的(?:快递|包裹)|运单|单号|查(?:一下|下)?(?:快递|物流|包裹)|包裹|到哪了|到哪儿了|到哪里了|到哪啦|走到哪"
    r"|怎么还没(?:到|收到)|还没(?:到|收到)|发货了(?:吗|没|嘛|么)|发了(?:吗|没|么)|寄出"
    r"|\bwhere(?:'s| is) my (?:package|parcel|order|stuff|delivery)|\btrack(?:ing)?\b|\bha(?:s|ve) (?:it|my order|you) (?:been )?"
    r"(?:shipped|sent)|\bwhen will (?:it|my order|my package) (?:arrive|come)"
)
_RECEIVED = re.compile(
    r"(?:东西|货|快递|包裹|宝贝|商品|订单|水果)(?:已经|都|也)?(?:收到|到了|签收)|(?:已经|已)(?:收到|签收|收货)|确认收货|收到货了?|签收了"
    r"|\b(?:i )?(?:received|got) (?:my|the) (?:order|package|parcel|stuff|goods|delivery)\b|\b(?:order|package|parcel) (?:has )?arrived\b"
    r"|\bconfirm (?:receipt|delivery)\b|^received$"
)
_CANCEL_ORDER = re.compile(
    rf"取消(?:这个|那个|我的|刚才的?|刚刚的?)?(?:订单|那单|这单)|{_ORDER_REF}.{{0,4}}(?:不要了|取消|不买了)|^(?:我)?不(?:想)?(?:要|买)了[啊呀吧哈]*$|退单"
    r"|\bcancel (?:my |the |that |this )?order\b|\bdon't want (?:it|the order|my order) any ?more\b"
)
# What became of a refund asked for: never a new request whose reason is "进度怎么样了".
_REFUND_STATUS = re.compile(
    r"(?:退款|退货|售后)(?:申请)?的?(?:进度|状态|结果|怎么样|咋样|如何|到哪|到账|处理|审核|批|好了|办好|多久|什么时候|啥时候|几天"
    r"|呢|还没|没到|没有到|了吗|了没|成功|通过|退了吗|有结果)"
    r"|(?:我的|那个|那笔|那单的?|申请的?)(?:退款|退货)(?:呢|啊|怎么|到)"
    r"|(?:钱|款|退款)(?:什么时候|啥时候|多久|几天|哪天)(?:能|可以|会|才)?(?:退|到账|到|回来|退回|返回)"
    r"|(?:钱|款)(?:还没|怎么还没|还没有|怎么没)(?:退|到账|到|回来|退回)|退的钱|钱退了(?:吗|没)|(?:钱|款)到账了(?:吗|没)"
    r"|\brefund status\b|\bwhere(?:'s| is) my (?:refund|money)\b|\b(?:has|did|is) my refund\b"
    r"|\bwhen (?:will|do|can) i get (?:my )?(?:money|refund)\b|\bwhat happened to my refund\b"
)
# "退款 葡萄坏了几颗", "退货：发错了": a request typed in the form the shop asks for (the word,
# a space or a colon, the reason). It files the request on the order it is about
# (bot.dialogs.orders): complaint words in the reason do not make it a complaint (a person
# is not what was asked for), and a question in it ("退款 进度怎么样了") still only asks.
_AFTER_SALES_FORM = re.compile(r"(退款|退货)(?:\s+|\s*[:：]\s*)(\S.*)", re.DOTALL)
MAX_REASON_CHARS = 400  # longer: no request form (the request itself takes at most 300)
_AFTER_SALES = re.compile(
    r"退款|退货|售后|换货|退钱|^我?(?:要|想)?退(?:掉|了)?(?:这个|那个|它|这单|那单)"
    r"|\brefund\b|\breturn (?:it|this|my|the)\b|\bexchange (?:it|this|my|the)\b"
)
# Goods arrived and liked ("收到啦 苹果很甜👍", "到了，很新鲜"): glad, and how to confirm
# receipt and review. Never receipt itself: "收到了" also acknowledges a message, and the
# receipt starts the after-sales clock. A "不", "没" or "差" anywhere is no praise, and a
# question ("收到了 香蕉好吃吗") asks something else.
_ARRIVED = r"(?:收到|到了|到啦|到咯|拿到|签收|收货)"
_LIKED = (
    r"(?:甜|好吃|好喝|新鲜|不错|很好|挺好|真好|满意|喜欢|赞|棒|好评|超值|物美价廉|香|漂亮|好看|好用|舒服|大个|个大"
    r"|[\U0001F44D\U0001F44F\u2764\U0001F60A-\U0001F60D\U0001F970\U0001F618]|\[(?:强|赞|爱心|玫瑰|愉快|微笑|呲牙|耶|可爱)\])"
)
_PLEASED = re.compile(
    rf"^(?!.*[不没差吗么嘛?？]).*(?:{_ARRIVED}.*{_LIKED}|{_LIKED}.*{_ARRIVED})"
    r"|^(?!.*(?:\bnot\b|n't|\?)).*\b(?:received|arrived|got (?:it|them|my order|the order))\b.*"
    r"\b(?:love|loved|great|delicious|sweet|fresh|perfect|amazing|awesome|excellent|tasty)\b"
)
# The delivery details of an order already placed: at checkout, a group seat or a flash
# unit's address step, the open dialog takes these words first (its own address).
_CHANGE_ADDRESS = re.compile(
    r"(?:改|修改|更改|更换|换|变更)(?:一下|下|个|一个)?(?:我的|订单的?|这单的?|那单的?)?(?:收货|收件|寄送|配送|快递)?(?:地址|信息|人|电话|手机号?)"
    r"|(?:收货|收件)?地址(?:写|填|弄|打|选|留)?错|(?:收货|收件)?(?:地址|电话)(?:不对|有误|有问题)|(?:收货|收件)?(?:地址|电话|手机号?|收货人|收件人)(?:要|想|得|需要|能|可以)?(?:改|换|变)"
    r"|(?:寄|发|送)到(?:别的|另一个|另外的?|新的?)(?:地址|地方)|搬家了"
    r"|\bchange (?:my |the |delivery |shipping |order )*(?:address|phone)\b|\bwrong (?:delivery |shipping )?address\b"
    r"|\bupdate (?:my |the )?(?:delivery |shipping )?address\b|\bship (?:it )?to (?:a )?(?:different|new|another) address\b"
)
_SERVICE_HOURS = re.compile(  # before a call for a person: "客服几点在" asks when, not for one now
    r"几点(?:上班|下班|开门|关门|营业|打烊|在|有人|回复?)|(?:营业|工作|上班|服务|在线)时间|什么时候(?:上班|下班|有人|在线|营业)"
    r"|\b(?:opening|business|office|service|working) hours\b|\bwhat time (?:do|are) you\b|\bwhen (?:are|do) you (?:open|close)"
)
_ORDERS = re.compile(
    r"我的订单|订单呢|订单列表|下的单|那单|付过款|付款了吗|我付了吗|付了没|^(?:能|可以)?(?:帮我|麻烦)?查(?:一下|下|查)(?:吗|呗|吧)?$"
    r"|\bmy orders?\b|\bdid i pay|\border status\b"
)
# The order asks in the order they are tried: a sentence naming two ("没付款的订单取消")
# is the stronger action.
_ORDER_ASKS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (Intent.REFUND_STATUS, _REFUND_STATUS),  # before a new request: "退款到账了吗" asks, files nothing
    (Intent.CANCEL_ORDER, _CANCEL_ORDER),
    (Intent.AFTER_SALES, _AFTER_SALES),
    (Intent.RECEIVED, _RECEIVED),
    (Intent.PAY_ORDER, _PAY_ORDER),
    (Intent.CHANGE_ADDRESS, _CHANGE_ADDRESS),
    (Intent.URGE, _URGE),
    (Intent.TRACK, _TRACK),
)
_BUY_AGAIN = re.compile(
    r"再(?:买|来|下)一(?:次|单|份|遍)|(?:和|跟|同)上[次回]一样|照上[次回]|按上[次回]的?再|老样子|复购|回购"
    r"|(?:还|再)要上[次回]|^上[次回](?:买|下单)的(?:那个|那些|东西|那款)?$|上[次回](?:买)?的?(?:那个|那些|东西)?(?:再|还)(?:来|买|要)"
    r"|\b(?:buy|order) (?:it |that |them |the same )?again\b|\breorder\b|\bsame (?:again|as (?:last time|before))\b"
)
_CLEAR_CART = re.compile(r"^(?:帮我|把)?(?:清空|清除|清理)(?:一下)?(?:我的)?购物车|^购物车(?:全部)?(?:清空|删掉|不要了)|^(?:clear|empty) (?:my |the )?(?:cart|basket)$")
_CART = re.compile(r"^(?:看看|看下|查看|打开|我的|帮我看看)?购物车(?:里有什么)?$|\b(?:show|see|view|open) (?:me )?(?:my |the )?cart\b|^my cart$")
_ACCOUNT = re.compile(  # the customer's own: points, coupons held, commission, invite code
    r"我的(?:积分|优惠券|券|佣金|邀请码|账户|收益)|推荐有奖|邀请有奖|邀请码"
    # what they earned and how to take it out: the account page shows both
    r"|(?:赚|挣|得|拿)(?:了|到)?多少(?:佣金|奖励|提成)|(?:佣金|提成|收益)(?:有|还有)?多少|(?:佣金|提成|收益)?(?:怎么|如何)(?:提现|取出来?)"
    r"|\bmy (?:points|coupons?|commission|invite code|account|earnings)\b|\bhow much (?:commission|have i earned)\b"
    r"|\bhow (?:do|can) i (?:withdraw|cash out)\b"
)
_DEALS = re.compile(  # what the shop takes off, and how: a discount, a coupon, an offer
    r"有(?:什么|啥|没有|没)?优惠券|优惠活动|有(?:什么|啥|没有|没)?(?:优惠|折扣)|优惠吗|打折吗|折扣吗|能(?:不能)?(?:优惠|打折)"
    # haggling, not cheaper goods ("有没有便宜点的" narrows a list): "能便宜点吗", "买两个能便宜吗", "再便宜点"
    r"|(?:^|能|可以)(?:不能)?再?便宜(?:点|些|一点|一些)?(?:行不行|可不可以|行|可以)?(?:吗|吧|嘛|不|么|呢|呗)?[?？!！]*$"
    r"|有(?:没有)?(?:什么|啥)?活动|(?:什么|啥)活动|促销|有券吗|有红包|领券|新人(?:券|优惠|福利|礼)|赠品|返现|(?<![给要想])送什么(?!礼物|东西|好|合适|比较)|有(?:没有)?(?:送|赠)(?!货|到)"
    r"|^(?:优惠|折扣|打折|优惠券|领券)[吗呢?？!！]*$"
    r"|\bany (?:coupons?|discounts?|deals?|offers?|promotions?|sales?)\b|\b(?:is there|are there|do you have|got) (?:a |any )?"
    r"(?:coupons?|discounts?|deals?|offers?|promotions?)\b|^(?:a bit |any |even |can (?:it|you) be |make it )?cheaper[\s?!.~]*$"
    r"|^(?:coupons?|discounts?|deals?|promotions?)[\s?!.~]*$"
)
_INVITE = re.compile(
    r"怎么(?:邀请|推荐)|如何(?:邀请|推荐)|邀请(?:好友|朋友)|推荐(?:好友|朋友)|拉(?:新|好友)|返佣|佣金怎么(?!提现|取|拿|到账)"
    r"|\b(?:invite|refer) (?:a )?friends?\b|\bhow (?:do|can) i (?:invite|refer)\b|\breferral\b"
)
# Sharing with friends, nothing else named: a leader's open group is what needs them most.
_SHARE = re.compile(r"(?:怎么|如何|咋)(?:分享|转发)|分享给(?:好友|朋友|别人)|\bhow (?:do|can) i share\b")
# The customer's own group, asked for to pass on (a code typed in the words is a friend's:
# bot.handlers.text reads it before this).
_GROUP_CODE = re.compile(
    r"(?:拼团|团购|开团|团)码(?:是|在)?(?:多少|什么|啥|呢|哪|几|发|给|忘|找|怎么|在哪|吗)"
    r"|(?:我的|我开的|我参的|我的拼)团(?:码|链接|的链接|二维码|的二维码)?(?:呢|在哪|是多少|发我|给我)"
    r"|(?:拼团|团)的?(?:链接|二维码)(?:呢|在哪|是多少|是什么|发我|给我)"
    r"|(?:怎么|如何|咋)(?:把)?(?:拼团|团|我的团|这个团)(?:分享|转发|发给)|(?:分享|转发)(?:拼团|我的团|这个团)"
    r"|(?:拼团|我的团|这个团)(?:怎么|如何|咋)(?:分享|转发|发给)|^(?:我的)?(?:拼团|团)码[?？]*$"
    r"|\bmy group(?:'s)? (?:code|link)\b|\bwhat(?:'s| is) (?:my |the )?group code\b|\bshare (?:my |the )?group\b"
)
_PRICE_ASK = re.compile(
    r"^(?:这个|这款|那个|这|它|请问|老板)?(?:多少钱|几块钱|什么价(?:格|钱)?|啥价|价格(?:是)?多少|价钱(?:是)?多少|怎么卖|咋卖|贵不贵|贵吗)"
    r"(?:一(?:斤|个|件|份|袋|盒|箱|瓶|只|公斤|千克))?(?:啊|呀|呢|哈|吖)?$"
    r"|^(?:how much|what(?:'s| is) the price|price)(?: is (?:it|this|that)| for (?:it|this|that|one))?$"
)
_STOCK_ASK = re.compile(
    r"^(?:这个|这款|那个|请问|老板)?(?:还)?(?:有(?:现)?货|有库存|有没有货|还有吗|还有没有|是现货|现货|缺货|卖完了|断货|能发货)(?:吗|么|嘛|没|呢|不)?$"
    r"|^(?:is it |are they )?(?:in stock|available|sold out)$"
)
_RECOMMEND = re.compile(
    r"^(?:你们?家?|老板|店里|最近|现在|今天)?(?:有|都有)?(?:什么|啥|哪些|没有)(?:好|值得|可以)?(?:推荐|买|卖得好|好卖|热卖|爆款|新品|好东西|东西|新货)的?(?:吗|呢|么|呀|啊)*$"
    r"|^(?:给我|帮我)?推荐(?:一下|点|些|几个|几款|个)?(?:吧|呗|呢|啊|东西|好东西)?$|^(?:什么|哪个|哪些|哪款)(?:卖得|比较|最)?(?:好卖|好|最好|最火|火)的?(?:吗|呢)?$"
    r"|^(?:what (?:do|would) you|can you|could you)? ?recommend(?: me)?(?: something| anything)?$|^any (?:recommendations?|suggestions?)$"
    r"|^what(?:'s| is) (?:good|popular|hot|selling)(?: here| now| today)?$|^what should i (?:buy|get)$"
    # what the shop is: "你们是做什么的", "你们家卖什么", "都卖些啥"
    r"|^(?:请问)?(?:你们?家?|店里|这里|这家店?|你们这)?(?:是)?(?:做什么|干什么|干嘛|卖什么|卖啥|做啥|都卖(?:些|点)?(?:什么|啥))(?:的|东西的?)?(?:呀|啊|呢|吗|呀)*[?？]*$"
    r"|^what (?:do you|does (?:this|the) shop) sell\??$|^what(?:'s| is) this (?:shop|store)\??$"
    # a present with nothing named: "送女朋友什么好", "给爸妈买点啥合适", "送什么礼物好"
    r"|^(?:想|要)?(?:送|给)[^\d\s]{0,6}?(?:买|挑|选)?(?:点|个|些)?(?:什么|啥)(?:礼物|东西)?(?:好|合适|比较好|比较合适)(?:呢|呀|啊)?[?？]*$"
    r"|^what (?:should i|to) (?:buy|get|give) (?:for |as )?(?:a gift|a present|my \w+)\??$"
)
_GROUP = re.compile(r"怎么拼团|拼团怎么|如何拼团|什么是拼团|有拼团|^怎么拼|^如何拼|拼团(?:规则|玩法)|怎么开团|怎么参团|\bhow (?:do|does) group buy")
_FLASH = re.compile(r"秒杀|抢购|限时抢|\bflash sales?\b")
_LIVE_SUBSCRIBE = re.compile(r"订阅直播|直播(?:的)?(?:提醒|通知)|开播(?:的)?(?:提醒|通知)|开播(?:时|了)?(?:提醒|通知)我|\bsubscribe (?:to )?(?:the )?live\b")
_LIVE = re.compile(r"直播|\blive (?:stream|show|sale|drop)s?\b|\bare you live\b")
_REVIEW = re.compile(r"(?:写|给|打|做|留|发)(?:个|一个|一下|条)?(?:评价|评论|好评|差评|中评)|^(?:评价|好评|差评|中评)(?:一下)?$|怎么评价|去评价|买家秀|晒单|\b(?:write|leave) (?:a )?review\b")
_MEMBER = re.compile(
    r"(?:办|开通?|加入|成为|注册|申请|入)(?:个|一个|张)?会员|会员(?:有什么|有啥|有哪些|的)?(?:好处|权益|福利|优惠|折扣|等级|级别)"
    r"|(?:我|我的)(?:是|现在是)?(?:什么|啥|几|哪个)?(?:会员)?(?:等级|级别)"
    r"|\b(?:become|join as|sign up as) (?:a )?member\b|\bmembership\b|\bmy (?:member )?level\b"
)
_BALANCE = re.compile(
    r"余额(?:还)?(?:有|剩|剩下)?(?:多少|几|吗|么)|查(?:一下|下|查)?余额|(?:我的|看看?|看一下)(?:储值)?余额"
    r"|^(?:我|卡里|账户里?|账上)(?:还|现在)?(?:有|剩|剩下)(?:多少|几)(?:钱|块钱?)$"
    r"|\b(?:my|check(?: my)?) balance\b"
)
_TOPUP = re.compile(
    r"(?:怎么|如何|我要|我想|想要?)(?:充值|充钱|储值)|充(?:点|些|一点|一些)?钱|\bhow (?:do i|to|can i) top ?up\b"
)
_QUESTIONISH = re.compile(r"[?？吗么嘛呢多少几什么怎哪如何能可以]|\b(?:how|what|when|which|do you|can i|is there)\b")


# Words of English sentences that are not pinyin syllables ("me", "an", "de" are).
_ENGLISH = re.compile(
    r"\b(?:the|my|i|i'm|i'd|you|do|does|have|has|some|any|for|please|want|need|show|is|are|of|to|with|how|what"
    r"|looking|can|get|buy|cheap|under|something|much|many|where|when|which)\b"
)


def said_in_english(text: str) -> bool:
    """Whether a message is an English sentence ("show me tea", "do you have apples"), not
    pinyin ("xiangjiao", "ping guo") or a product code: the reply is then in English."""
    clean = normalize(text)
    return clean.isascii() and len(clean.split()) >= 2 and bool(_ENGLISH.search(clean))


def is_question(text: str) -> bool:
    """Whether the words ask something ("保修吗", "适合敏感肌吗", "what size?")."""
    return bool(_QUESTIONISH.search(normalize(text)))


# ---- a question about the product on screen -------------------------------------------------

# What customers ask of the product they are looking at, said without naming it: how it
# tastes, wears, fits or suits ("甜吗", "耐用吗", "偏大吗", "送礼合适吗", "适合老人吗"). On a
# card these are answered from the product (`question_about_it`, bot.dialogs.search) before
# anything is searched; with no card on screen the words are searched as before.
CARD_ATTRIBUTE = re.compile(
    r"(?:口感|味道|质量|做工|个头|尺码)?(?:会|很|挺|够|比较|太)?"
    r"(?:甜|酸|辣|咸|苦|脆|香|软|硬|嫩|新鲜|好吃|好喝|好用|好看|正宗|正品|耐用|结实|保暖|透气|防水|掉色|褪色|起球|缩水"
    r"|熟|生|偏大|偏小|合身|显瘦|舒服|舒适|耐放|(?:送礼|送人)?合适|适合[\u4e00-\u9fff]{1,8})的?"
)
_ASKED = r"(?:[吗么嘛呢不没][啊呀哈]?|\?)\??"  # the question's tail: "吗", "不", "?" (normalised)
_ATTRIBUTE_ASKED = re.compile(rf"(?:{CARD_ATTRIBUTE.pattern}){_ASKED}$")
# "甜不甜", "新不新鲜", "好不好吃", "新鲜不新鲜": the A-not-A question
_A_NOT_A = re.compile(
    r"([\u4e00-\u9fff]{2})不\1|([\u4e00-\u9fff])[不没]\2((?![啊呀呢吗嘛哈么吧])[\u4e00-\u9fff])?"
)
# A-not-A forms that ask something of their own: "有没有货" (stock) or "有没有苹果" (a search),
# "要不要", "能不能便宜点", "可不可以", "是不是", "贵不贵" (the price), "在不在" (a greeting)
_NOT_ABOUT_IT = frozenset("有要能可是贵在行对卖买")
_ASK_OPENER = re.compile(r"(?:(?:请问|问一下|问下|(?:我)?想问(?:一下|下)?|老板|店家|亲+|你好|您好|嗯+)[\s,，]*)+")
_DEICTIC = re.compile(r"(?:这个|这款|这种|这件|这双|这套|这盒|这袋|这些|那个|那款|那种|那些|它们?|这(?![里边儿样么]))")
_ABOUT_IT_EN = re.compile(
    r"(?:is|are|does|do|will|would|can|could|how|what|was)\b.*\b(?:it|this|that|they|this one|that one)\b.*"
)
_ASKS_FOR_GOODS = re.compile(r"^(?:还|你们|你家|店里)?(?:有|卖|要|买|来|找)")  # "有甜的吗": a search
_AROUND = re.compile(r"^[\s,，的是很也还都就挺真]+|[\s,，的了啊呀呢吗么嘛吧?]+$")


def question_about_it(text: str) -> str | None:
    """Whether the words ask about the product on screen: an A-not-A question ("这个甜不甜",
    "新不新鲜"), an attribute asked ("甜吗", "适合老人吗"), or a question that points at it
    ("它耐用吗", "这款适合老人吗", "is it sweet?"). Returns the other words said, which may
    name a product ("香蕉甜不甜": "香蕉"; "" when there are none), or None when the words are
    no such question: a form that asks something of its own ("有没有货", "能不能便宜点"),
    a price or size ("这个有10斤的吗"), another intent, or words asking for goods ("有甜的吗")."""
    understood = understand(text)
    if understood.intent is not Intent.SEARCH or understood.slots.narrows_price or understood.slots.quantity:
        return None
    clean = normalize(text)
    if _ABOUT_IT_EN.fullmatch(clean):  # "it" is the thing on screen: an English question names nothing else
        return ""
    said = clean[opener.end():] if (opener := _ASK_OPENER.match(clean)) else clean
    deictic = _DEICTIC.match(said)
    if deictic:
        said = said[deictic.end():]
    pair = _A_NOT_A.search(said)
    if pair and (word := pair.group(1) or pair.group(2))[0] not in _NOT_ABOUT_IT and (word != "好" or pair.group(3)):
        rest = said[: pair.start()] + said[pair.end():]
    elif attribute := _ATTRIBUTE_ASKED.search(said):
        rest = said[: attribute.start()]
    elif deictic and is_question(clean):
        rest = said
    else:
        return None
    rest = _AROUND.sub("", rest)
    return None if _ASKS_FOR_GOODS.match(rest) else _clean(rest)


def _locale(text: str) -> str:
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


# The intents after greetings and thanks, tried in this order; the first whose pattern is
# found wins. A complaint before a call for a person (both reach one); the specific order
# asks before the order list; cart, account and screen questions before shop questions
# (Intent.FAQ with their topic); a returns topic only when it is asked.
_RULES: tuple[tuple[re.Pattern[str], Intent, Topic | None], ...] = (
    (_COMPLAINT, Intent.COMPLAINT, None),
    (_SERVICE_HOURS, Intent.FAQ, Topic.SERVICE_HOURS),
    (_HUMAN, Intent.HUMAN, None),
    (_GROUP_CODE, Intent.GROUP_CODE, None),  # before how group buys work: "拼团怎么分享"
    (_GROUP, Intent.GROUP, None),
    (_FLASH, Intent.FLASH, None),
    (_LIVE_SUBSCRIBE, Intent.LIVE_SUBSCRIBE, None),
    (_LIVE, Intent.LIVE, None),
    (_REVIEW, Intent.REVIEW, None),
    (_MEMBER, Intent.MEMBER, None),
    (_BALANCE, Intent.BALANCE, None),
    (_TOPUP, Intent.TOPUP, None),
    (_HELP, Intent.HELP, None),
    (_BUY_AGAIN, Intent.BUY_AGAIN, None),
    *((pattern, intent, None) for intent, pattern in _ORDER_ASKS),
    (_PLEASED, Intent.PLEASED, None),  # after "东西收到了": said plainly, receipt is confirmed
    (_ORDERS, Intent.ORDERS, None),
    (_CLEAR_CART, Intent.CLEAR_CART, None),
    (_CART, Intent.CART, None),
    (_SHARE, Intent.SHARE, None),
    (_INVITE, Intent.INVITE, None),
    (_ACCOUNT, Intent.ACCOUNT, None),
    (_DEALS, Intent.DEALS, None),
    (_PRICE_ASK, Intent.PRICE_ASK, None),
    (_STOCK_ASK, Intent.STOCK_ASK, None),
    (_RECOMMEND, Intent.RECOMMEND, None),
    *((pattern, Intent.FAQ, topic) for topic, pattern in _TOPICS),
)


def _typed_form(clean: str) -> tuple[re.Match[str], bool] | None:
    """The request form in normalised words (`_AFTER_SALES_FORM`), and whether it only asks
    what became of one ("退款 进度怎么样了"); None when the words are no such form."""
    found = _AFTER_SALES_FORM.fullmatch(clean) if len(clean) <= MAX_REASON_CHARS else None
    if found is None:
        return None
    return found, bool(_REFUND_STATUS.search(found.group(1) + found.group(2)))


def after_sales_form(text: str) -> tuple[str, str] | None:
    """(word, reason) of a request typed in the form the shop asks for ("退款 买错了" →
    ("退款", "买错了"), "退货：发错了", after a greeting too); None for anything else, a
    question about a refund asked in that form ("退款 进度怎么样了") included."""
    clean = normalize(text)
    if (opened := _OPENER.match(clean)) and clean[opened.end():]:  # "你好，退款 买错了"
        clean = clean[opened.end():]
    typed = _typed_form(clean)
    if typed is None or typed[1]:
        return None
    return typed[0].group(1), typed[0].group(2).strip()


@lru_cache(maxsize=4096)
def understand(text: str) -> Understood:
    """The intent of one message, with slots for a search. Pure and cached."""
    clean = normalize(text)
    if (typed := _typed_form(clean)) is not None:
        # the request form before anything else, complaint words in its reason included
        return Understood(Intent.REFUND_STATUS if typed[1] else Intent.AFTER_SALES, _locale(clean))
    if not clean or len(clean) > MAX_UNDERSTOOD_CHARS or clean[0] in "/／":
        return Understood(Intent.SEARCH, words=clean[:MAX_UNDERSTOOD_CHARS])
    locale = _locale(clean)
    if _GREETING_ZH.fullmatch(clean) or _GREETING_EN.fullmatch(clean):
        return Understood(Intent.GREETING, locale)
    if (opened := _OPENER.match(clean)) and clean[opened.end():]:  # "你好，我想买苹果": what follows
        return understand(clean[opened.end():])
    if _THANKS_ZH.fullmatch(clean) or _THANKS_EN.fullmatch(clean):
        return Understood(Intent.THANKS, locale)
    for pattern, intent, topic in _RULES:
        if pattern.search(clean) and (topic is not Topic.RETURNS or _QUESTIONISH.search(clean)):
            return Understood(intent, locale, topic=topic)
    if _ACK.fullmatch(clean):
        return Understood(Intent.ACK, locale)
    words, slots = parse_search(clean)
    return Understood(Intent.SEARCH, locale, words=words, slots=slots)


# ---- search slots ------------------------------------------------------------------------------

_YUAN = r"(?:块钱|块|元|rmb|yuan|￥|¥)"
_BELOW = r"(?:以内|以下|之内|之下|封顶)"
_BUDGET = r"(?:预算(?:在|是|大概|差不多)?\s*)?"  # "预算300以内": the budget word goes with the price
# "200到300元", and without a currency word when 的 or 之间 follows ("200到300的键盘")
_PRICE_RANGE = re.compile(
    rf"{_BUDGET}[¥￥]?({NUMBER})\s*{_YUAN}?\s*(?:-|~|～|到|至|to)\s*[¥￥]?({NUMBER})\s*(?:{_YUAN}|(?=之间|的|买|要|来))\s*(?:之间|的)?"
)
_PRICE_BELOW = re.compile(
    rf"{_BUDGET}(?:不超过|不到|低于|少于|小于|最多)\s*[¥￥]?({NUMBER})\s*{_YUAN}?(?:{_BELOW})?"
    rf"|{_BUDGET}[¥￥]?({NUMBER})\s*{_YUAN}?\s*{_BELOW}"
)
_PRICE_ABOUT = re.compile(rf"{_BUDGET}[¥￥]?({NUMBER})\s*{_YUAN}?\s*(?:左右|上下)")
_PRICE_ABOVE = re.compile(rf"[¥￥]?({NUMBER})\s*{_YUAN}\s*(?:以上|起)")
_PRICE_EN = re.compile(r"\b(under|below|less than|within|max|around|about|over|above)\s*[¥￥$]?\s*(\d{1,7})\s*(?:yuan|rmb|kuai)?\b")
_PRICE_EN_RANGE = re.compile(r"\bbetween\s*[¥￥]?(\d{1,7})\s*(?:and|-)\s*[¥￥]?(\d{1,7})\s*(?:yuan|rmb)?")
_CHEAP = re.compile(r"(?:更|再|最|比较|超)?便宜(?:点|些|一点|一些|的)?|实惠(?:的|点)?|划算的?|性价比高的?|平价的?|\bcheap(?:er|est)?\b|\bbudget\b|\baffordable\b")
_UNITS_ZH = "斤|公斤|千克|克|两|袋|包|盒|箱|瓶|个|件|份|罐|条|只|双|套|提|听|支|根|片|杯|串|颗|块|桶|捆|把|本"
_QUANTITY_ZH = re.compile(rf"(?:{NUMBER}\s*(?:到|至|-|~)\s*)?({NUMBER})\s*({_UNITS_ZH})(?:装)?")  # "3到5个": the most
_UNITS_EN = r"kg|kgs|g|lb|lbs|jin|bags?|boxe?s?|bottles?|packs?|packets?|pcs|pieces?|cans?|cartons?|jars?|pairs?|sets?|cups?"
_QUANTITY_EN = re.compile(rf"\b(\d{{1,4}})\s*({_UNITS_EN})\b(?:\s+of\b)?")
_QUANTITY_WORDS_EN = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10}
_QUANTITY_WORD_EN = re.compile(rf"\b({'|'.join(_QUANTITY_WORDS_EN)})\s+({_UNITS_EN})\b(?:\s+of\b)?")
_FOR_WHOM = r"(?:我|自己|我家|家里)?(?:爸爸?|妈妈?|爸妈|父母|老人|长辈|孩子|小孩|宝宝|儿子|女儿|老婆|老公|媳妇|女朋友|男朋友|对象|朋友|同事|家人|奶奶|爷爷|外婆|姥姥)"
_FILLER_HEAD = re.compile(
    rf"^(?:(?:(?:想|要)?(?:给|为|帮|送){_FOR_WHOM}的?|嗯+|那个|老板|亲+|你们这里|你们这|你们家的?|这里|请问|麻烦|帮我|帮忙"
    r"|(?:我)?(?:想)?(?:问|咨询)(?:一)?下|(?:我)?想问(?:问)?"
    r"|我想要|我想|我要|想要|想|要|给我|有卖|卖|还有|一下|看下|看一下|有什么|有哪些|什么|好吃的|好喝的|好用的"
    r"|买个|来个|要个|整个|弄个|挑个|选个|好一点的|好点的|好一些的|质量好的|正宗的|靠谱的|那种|这种"
    r"|再来|来|买|买点|买些|买一些|来点|来些|来一点|搞点|整点|看看|找|找找|推荐|推荐点|推荐一下|有没有|有|你们有|店里有"
    r"|一点|一些|点|些|的)[\s,，]*)+"
)
_FILLER_TAIL = re.compile(
    rf"(?:\s*(?:吗|么|嘛|呢|吧|啊|呀|的|没有|没|有没有|有吗|卖吗|多少钱|怎么卖|什么价|还有货|有货|还有|推荐一下|推荐|送人|送礼"
    rf"|给{_FOR_WHOM}(?:吃|喝|用)?|(?<![不没])甜|(?<![不没])好吃|好不好|来|要|有哪些|有什么|都有啥"
    r"|是(?:哪里|哪儿|什么地方|哪个地方)(?:产|生产|出产|发货)?的?|(?:是)?(?:什么|哪里的?)产地的?|产地(?:是)?(?:哪里|哪儿)?"
    r"|(?:是)?(?:正品|真的|新鲜的)吗?|保质期(?:多久|多长)?|怎么(?:吃|用|保存))\s*)+$"
)
_FILLER_EN = re.compile(
    r"\b(?:i(?:'d)? (?:want|need|like|would like)(?: to buy)?|i'm looking for|looking for|do you (?:have|sell)|can i (?:get|buy|have)"
    r"|please|some|any|show me|give me|buy|get|for my (?:dad|mom|mum|father|mother|parents|kids?|wife|husband|friend)s?"
    r"|for (?:a|the) (?:gift|present)|cheap(?:er|est)?|something|stuff|the|of)\b"
)


# Words customers use for a kind of goods, and what a shop's category name then holds
# ("衣服" lists 服饰, "护肤品" 美妆): category words list the category.
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "茶叶": ("茶",), "茶": ("茶",), "喝的": ("饮", "茶"), "好喝的": ("饮", "茶"), "好喝": ("饮", "茶"), "饮料": ("饮",), "drinks": ("饮",),
    "吃的": ("零食", "食品"), "好吃的": ("零食", "食品"), "好吃": ("零食", "食品"), "吃": ("零食", "食品"), "喝": ("饮", "茶"), "小吃": ("零食",), "食品": ("零食", "食品"),
    "衣服": ("服", "衣"), "服装": ("服", "衣"), "穿的": ("服", "衣"), "clothes": ("服",),
    "化妆品": ("妆",), "护肤品": ("妆", "护肤"), "护肤": ("妆", "护肤"), "cosmetics": ("妆",), "skincare": ("妆",),
    "电子产品": ("数码", "电子"), "数码产品": ("数码",), "electronics": ("数码",),
    "家居用品": ("家居",), "日用品": ("家居", "日用"), "生活用品": ("家居", "日用"),
    "粮食": ("粮",), "米面粮油": ("粮",),
}
_CATEGORY_SUFFIX = re.compile(r"(?:产品|用品|类|系列|区|专区|products?)$")
_CATEGORY_ASKED = re.compile(r"^(?:有什么|有没有|有哪些|有啥|看看|什么)")


def category_words(words: str) -> tuple[str, ...]:
    """The forms of `words` a category may be named by ("数码产品" → ("数码产品", "数码"))."""
    words = words.strip().lower()
    bare = _CATEGORY_SUFFIX.sub("", words).strip()
    asked = _CATEGORY_ASKED.sub("", bare).strip()
    return tuple(dict.fromkeys(w for w in (words, bare, asked) if w))


def _fen(yuan: float | None) -> int | None:
    if yuan is None or not 0 <= yuan <= MAX_YUAN:
        return None
    return int(round(yuan * 100))


def _quantity(value: float | None) -> int | None:
    if value is None or value != int(value) or not 1 <= value <= MAX_QUANTITY:
        return None
    return int(value)


def parse_search(text: str) -> tuple[str, Slots]:
    """(product words, slots) of a search text already normalised: price and quantity are
    taken out of the words, filler around them dropped; never raises."""
    words = text
    low = high = None
    cheap = False
    if found := _PRICE_RANGE.search(words) or _PRICE_EN_RANGE.search(words):
        a, b = _fen(parse_amount(found.group(1))), _fen(parse_amount(found.group(2)))
        if a is not None and b is not None:
            low, high = min(a, b), max(a, b)
            words = _cut(words, found)
    elif found := _PRICE_ABOUT.search(words):
        center = _fen(parse_amount(found.group(1)))
        if center is not None:
            low, high = center * 4 // 5, center * 6 // 5
            words = _cut(words, found)
    elif found := _PRICE_ABOVE.search(words):
        low = _fen(parse_amount(found.group(1)))
        words = _cut(words, found)
    elif found := _PRICE_BELOW.search(words):
        high = _fen(parse_amount(found.group(1) or found.group(2)))
        words = _cut(words, found)
    elif found := _PRICE_EN.search(words):
        amount = _fen(parse_amount(found.group(2)))
        kind = found.group(1)
        if amount is not None:
            if kind in ("over", "above"):
                low = amount
            elif kind in ("around", "about"):
                low, high = amount * 4 // 5, amount * 6 // 5
            else:
                high = amount
            words = _cut(words, found)
    if found := _CHEAP.search(words):
        cheap = True
        words = _cut(words, found)
    quantity, unit, whole = None, "", ""
    if found := _QUANTITY_ZH.search(words) or _QUANTITY_EN.search(words):
        quantity, unit = _quantity(parse_amount(found.group(1))), found.group(2)
        whole, words = _clean(words), _cut(words, found)
    elif found := _QUANTITY_WORD_EN.search(words):
        quantity, unit = _QUANTITY_WORDS_EN[found.group(1)], found.group(2)
        whole, words = _clean(words), _cut(words, found)
    cleaned = _clean(words)
    slots = Slots(
        price_min_fen=low, price_max_fen=high, cheap=cheap, quantity=quantity, unit=unit if quantity else "",
        whole_words=whole if quantity else "",
    )
    return (cleaned or words.strip() or text), slots


# what it is for, before the thing: "办公室用的鼠标", "孩子上学用的平板", "路上吃的零食"
_PURPOSE = re.compile(r"^[\u4e00-\u9fff]{1,6}?(?:用|吃|喝|穿|戴)的(?=[\u4e00-\u9fffa-z])")
# run out of it: "家里没米了", "洗发水用完了", "没有纸巾了"
_RAN_OUT = re.compile(
    r"^(?:家里|我家|家|宿舍|办公室)?的?(?:没有?|缺)(?P<a>[^\s]{1,8}?)了$"
    r"|^(?:家里|我家|家|宿舍|办公室)?的?(?P<b>[^\s]{1,8}?)(?:快?没了|快?用完了|吃完了|喝完了|不够了)$"
)


def _clean(words: str) -> str:
    """The words without the filler around them ("给我爸买点茶叶" → "茶叶"); may be empty."""
    if ran_out := _RAN_OUT.match(words.strip()):
        words = ran_out.group("a") or ran_out.group("b")
    head = _PURPOSE.sub("", _FILLER_HEAD.sub("", words.strip()))
    cleaned = _FILLER_EN.sub(" ", _FILLER_TAIL.sub("", head) or head)
    return re.sub(r"\s+", " ", cleaned).strip(" ,，.。")


_LEFT_OVER = re.compile(
    r"(?:有没有|还有|有|再|更|还|的|吗|呢|吧|么|嘛|点|一点|些|一些|装|那个|这个|那种|要|我要|来|ones?|some|any|options?|the|\s|[?？,，.。!！])*"
)


def refines(understood: Understood) -> bool:
    """A price asked with no product named ("有没有便宜点的", "200以内", "cheaper ones"):
    it narrows the list on screen rather than searching."""
    if understood.intent is not Intent.SEARCH or not understood.slots.narrows_price:
        return False
    words, _ = _strip_prices(understood.words)
    return bool(_LEFT_OVER.fullmatch(words))


def sizes_only(understood: Understood) -> bool:
    """A size asked with no product named ("10斤装的有吗", "要5斤的"): it picks among the
    list on screen rather than searching."""
    slots = understood.slots
    return (understood.intent is Intent.SEARCH and slots.quantity is not None and bool(slots.unit)
            and not slots.narrows_price and bool(_LEFT_OVER.fullmatch(understood.words)))


def _strip_prices(words: str) -> tuple[str, bool]:
    """`words` without a price phrase (a bare "200以内" stays in the searched words, since
    nothing else is left of it); whether one was found."""
    for pattern in (_PRICE_RANGE, _PRICE_EN_RANGE, _PRICE_ABOUT, _PRICE_ABOVE, _PRICE_BELOW, _PRICE_EN, _CHEAP):
        if found := pattern.search(words):
            return _cut(words, found), True
    return words, False


def _cut(text: str, found: re.Match[str]) -> str:
    return (text[: found.start()] + " " + text[found.end():]).strip()
