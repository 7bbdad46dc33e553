"""Search and browse: numbered product lists, paging, picking, product cards, categories.

```mermaid
stateDiagram-v2
    [*] --> RESULTS: search text / hot / category / suggestions
    [*] --> CATEGORIES: "分类" or the categories menu
    [*] --> CARD: a shared product's QR code (open_product)
    CATEGORIES --> RESULTS: a number picks a category
    CATEGORIES --> CATEGORIES: out-of-range number
    RESULTS --> RESULTS: next / prev / out-of-range number
    RESULTS --> CARD: a number picks a product
    CARD --> CARD: a number or its words ("要黑色L码", "5斤那个") pick a variant (or, with one variant, another product); "加入购物车 2"
    CARD --> CARD: a question about it ("甜吗", "这个甜不甜", "它耐用吗"): what the shop says of it, and a person
    CARD --> RESULTS: back / next / prev
    CARD --> [*]: "立即购买" hands over to checkout
    RESULTS --> [*]: cancel, or any other text (a new search)
    CARD --> [*]: cancel, or other text that finds products (a new search)
    CARD --> CARD: other text that finds nothing (what the card takes, how to leave)
```
A stray message never ends a card silently: text it does not take is searched, and
when the search finds nothing the card stays and says what it takes (`reprompt`).
A checkout left for a search is parked (`bot.dialogs.base`); the results say
"回复「结算」继续下单".
Numbers run across pages (page 2 shows 6-10), so "7" means the same product
whichever page was shown last. On a card of a product with several variants the
numbered list on screen is the variants, so a number picks a variant there.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from pypinyin import lazy_pinyin

from bot.chat.context import Context
from bot.chat.keywords import (
    ADD_TO_CART,
    BUY_NOW,
    COUNT_SAID,
    command_quantity,
    match_command,
    match_keyword,
    normalize,
    parse_number,
    quantity,
)
from bot.chat.replies import Card, News, Notice, Reply, Text, with_notice
from bot.chat.understanding import (
    CATEGORY_WORDS,
    Intent,
    Slots,
    category_words,
    is_question,
    question_about_it,
    refines,
    sizes_only,
    understand,
)
from bot.dialogs.address_step import looks_like_address
from bot.dialogs.base import Dialog, Step, on
from bot.dialogs.common import cart_data, error_reply, unit_of_work
from bot.dialogs.words import variants_named
from commerce.analytics import events
from commerce.cart import cart
from commerce.catalog.read import (
    CatalogSnapshot,
    CategoryView,
    ProductInfo,
    ProductView,
    VariantView,
    total_stock,
)
from commerce.catalog.search import SearchHit
from commerce.errors import ErrorCode, ShopError
from commerce.groupbuys import campaigns as group_campaigns
from commerce.reviews import actions as review_actions
from commerce.rules import utcnow

MAX_RESULTS = 50
NO_SLOTS = Slots()


class SearchState(enum.StrEnum):
    RESULTS = "results"
    CARD = "card"
    CATEGORIES = "categories"


@dataclass(slots=True)
class SearchData:
    source: str  # search | suggest | hot | category | categories
    title: str = ""
    product_ids: list[int] = field(default_factory=list)
    page: int = 0
    category_ids: list[int] = field(default_factory=list)
    product_id: int | None = None
    variant_id: int | None = None
    quantity: int | None = None  # "来两袋大米": how many the search asked for (a card buys that many)
    unit: str = ""
    wants: str = ""  # "add" / "buy": said before a variant was chosen ("来3包"); done once one is


SIZED_AMONG = 8  # a size picks a product among the first results only
WEIGHTS = frozenset({"斤", "公斤", "千克", "克", "两", "kg", "kgs", "g", "lb", "lbs", "jin"})  # sizes, not counts


def _counted(product: ProductView, data: SearchData) -> int:
    """How many a card buys when the customer says no number: what the search asked for
    ("来两袋大米": 2) when the product has one variant or its variants are not sized in that
    unit ("12个装" makes "3个" ambiguous), else 1."""
    if data.quantity is None:
        return 1
    sized = len(product.variants) > 1 and data.unit and any(data.unit in v.label.lower() for v in product.variants)
    return 1 if sized else data.quantity


def _whole_or_rest(
    snapshot: CatalogSnapshot, query: str, slots: Slots
) -> tuple[str, list[SearchHit], Slots]:
    """(words, hits, slots) of a search: a quantity is only a quantity when the rest of the
    words still finds products and no product is named by the whole ("三只松鼠" is a name:
    searched whole, without a quantity)."""
    hits = snapshot.search(query, limit=MAX_RESULTS)
    whole = slots.whole_words
    if slots.quantity is None or not whole or whole == query:
        return query, hits, slots
    whole_hits = snapshot.search(whole, limit=MAX_RESULTS)
    named = any(whole in snapshot.products[h.product_id].name.lower() for h in whole_hits[:SIZED_AMONG])
    if hits and not named:
        return query, hits, slots
    return whole, whole_hits, replace(slots, quantity=None, unit="", whole_words="")


def _is_size(label: str, size: str) -> bool:
    """Whether a variant's label names the size: "3斤装" and "3斤", "5kg" and "5KG"; never
    "13斤" for "3斤"."""
    for part in label.lower().replace(" ", "").split("/"):
        at = part.find(size)
        if at != -1 and (at == 0 or not part[at - 1].isdigit()):
            return True
    return False


def _chosen(product: ProductView, variant: VariantView, data: SearchData) -> Step[SearchState, SearchData]:
    """The card with `variant` chosen: what it costs, what is left, how to buy it."""
    data.variant_id = variant.id
    chosen = {"name": product.name, "spec": variant.label, "price": variant.price_fen, "stock": variant.stock,
              "quantity": _counted(product, data)}
    return Step(Text("variant_chosen", chosen), SearchState.CARD, data)


@lru_cache(maxsize=1024)
def _pinyin(word: str) -> str:
    return "".join(lazy_pinyin(word))


@lru_cache(maxsize=1)
def _category_word_pinyin() -> dict[str, str]:
    """"chaye" -> "茶叶": the customer words for categories, typed in pinyin."""
    return {_pinyin(word): word for word in CATEGORY_WORDS if not word.isascii()}


def category_named(snapshot: CatalogSnapshot, words: str) -> CategoryView | None:
    """The category the words name: its own name (zh or en), or a word customers use for
    it (bot.chat.understanding.CATEGORY_WORDS), also in pinyin ("shuiguo", "cha ye");
    None when they name no category."""
    typed = words.strip().lower().replace(" ", "")
    if typed.isascii() and typed.isalpha():
        for category in snapshot.categories:
            if typed == _pinyin(category.name):
                return category
        words = _category_word_pinyin().get(typed, words)
    for form in category_words(words):
        for category in snapshot.categories:
            if form in (category.name.lower(), category.name_en.lower()):
                return category
        hints = CATEGORY_WORDS.get(form, ())
        for category in snapshot.categories:
            if any(hint in category.name for hint in hints):
                return category
    return None


_AND = re.compile(r"\s*(?:和|跟|与|还有|以及|加上|、|,|，|/|\band\b|&)\s*")
MAX_NAMED = 4


def _several(snapshot: CatalogSnapshot, query: str) -> tuple[str, list[SearchHit]] | None:
    """Several products named in one message ("苹果和香蕉", "tea and coffee"): the hits of
    each, in the order named, when every part finds something; None otherwise (a name
    with 和 in it, "和田大枣", is found whole before this is asked)."""
    parts = [part for part in _AND.split(query) if part]
    if not 2 <= len(parts) <= MAX_NAMED or len(parts) != len(_AND.split(query)):
        return None
    found: dict[int, SearchHit] = {}
    for part in parts:
        hits = snapshot.search(part, limit=MAX_RESULTS)
        if not hits:
            return None
        for hit in hits:
            found.setdefault(hit.product_id, hit)
    return "、".join(parts), list(found.values())[:MAX_RESULTS]


def _count_besides(text: str, variant: VariantView) -> int | None:
    """The count said with a variant's words ("白色的来一个" -> 1), never a part of its label
    ("12个装" names the variant, it is not twelve)."""
    said = normalize(text)
    for found in COUNT_SAID.finditer(said):
        if found.group(0).strip() not in variant.label.lower():
            return quantity(found.group(1))
    return None


_PHONE_LIKE = re.compile(r"\d{7,}")


def _not_a_search(text: str, query: str) -> str:
    """Why words that found no product should not be offered look-alikes: "question" (a
    sentence that asks: "你们是正品吗", "do you deliver to Beijing?"), "address" (a name,
    phone and street typed outside a checkout); "" for words that may be a misspelt
    product, which get the look-alikes."""
    if text.lstrip()[:1] in ("/", "／"):  # a stranger's staff command is only searched
        return ""
    if _PHONE_LIKE.search(text) and looks_like_address(text):
        return "address"
    if is_question(text) and (len(query) > 6 or len(query) <= 2):
        return "question"
    return ""


def narrow_by_price(snapshot: CatalogSnapshot, product_ids: list[int], slots: Slots) -> tuple[list[int], Notice | None]:
    """The products within the price asked for ("50块以内", "便宜点": cheapest first).

    None within it: all of them, with a notice saying so (never an empty answer)."""
    if not slots.narrows_price:
        return product_ids, None
    low, high = slots.price_min_fen, slots.price_max_fen
    within = [
        pid for pid in product_ids
        if pid in snapshot.products
        and (low is None or snapshot.products[pid].max_price_fen >= low)
        and (high is None or snapshot.products[pid].min_price_fen <= high)
    ]
    if slots.cheap:
        within.sort(key=lambda pid: snapshot.products[pid].min_price_fen)
    view = {"min": low, "max": high, "cheap": slots.cheap, "count": len(within)}
    if not within:
        return product_ids, Notice("price_none", view)
    return within, Notice("price_within", view) if low is not None or high is not None else None


def _product_item(number: int, product: ProductInfo, variants: tuple[VariantView, ...]) -> dict[str, Any]:
    """One line of a list: the product from the catalog in memory, its variants as they are now."""
    prices = [v.price_fen for v in variants] or [product.min_price_fen, product.max_price_fen]
    stock = total_stock(variants)
    return {
        "number": number,
        "name": product.name,
        "subtitle": product.subtitle,
        "price_min": min(prices),
        "price_max": max(prices),
        "stock": stock,
        "in_stock": stock > 0,
    }


async def _items(ctx: Context, snapshot: CatalogSnapshot, product_ids: list[int], *, first: int = 1) -> list[dict[str, Any]]:
    """The lines of a list, numbered from `first`: stock and prices of these few products read now."""
    listed = [pid for pid in product_ids if pid in snapshot.products]
    variants = await ctx.services.catalog.stock(listed)
    return [
        _product_item(first + i, snapshot.products[pid], variants.get(pid, ()))
        for i, pid in enumerate(product_ids)
        if pid in snapshot.products
    ]


def _variants(product: ProductView) -> list[dict[str, Any]]:
    return [
        {"number": n, "label": v.label, "price": v.price_fen, "stock": v.stock}
        for n, v in enumerate(product.variants, 1)
    ]


def _priced(product: ProductView, data: SearchData) -> Step[SearchState, SearchData]:
    """"多少钱", "有现货吗" on a card: the chosen variant's price and stock, else every variant's."""
    variant = SearchDialog.chosen_variant(product, data)
    if variant is not None:
        return _chosen(product, variant, data)
    return Step(Text("choose_variant", {"name": product.name, "variants": _variants(product)}), SearchState.CARD, data)


def _sold_out(exc: ShopError, product: ProductView, variant: VariantView, *, buying: bool) -> Text:
    """Not enough stock, with the next step: take what is left, or a variant that has some."""
    reply = error_reply(exc)
    available = exc.details.get("available")
    in_cart = int(exc.details.get("in_cart") or 0)
    offer = max(int(variant.stock if available is None else available) - in_cart, 0)
    others = [v for v in _variants(product) if v["stock"] > 0 and product.variants[v["number"] - 1].id != variant.id]
    extra = {"command": "buy" if buying else "add", "offer_quantity": offer, "others": others if len(product.variants) > 1 else []}
    return Text(reply.template, {**reply.data, "d": {**reply.data["d"], **extra}})


def _card_hint(product: ProductView, variant: VariantView | None) -> dict[str, Any]:
    """What a card takes next (a variant, add, buy now) and how to leave it."""
    return {
        "step": "card",
        "name": product.name,
        "spec": variant.label if variant is not None else "",
        "variants": len(product.variants) if variant is None else 0,
    }


def _product_question(product: ProductView, variant: VariantView | None, question: str) -> Text:
    """A question about the product on a card: what the shop says of it, and a person for the rest."""
    about = {"question": question.strip(), "subtitle": product.subtitle, "description": product.description}
    return Text("product_question", {**_card_hint(product, variant), **about})


async def _asks_about(ctx: Context, product: ProductView) -> bool:
    """Whether the message asks about the product on the card ("甜吗", "新不新鲜", "它耐用吗",
    "苹果甜不甜" on the apple's card) rather than naming another one ("香蕉甜不甜": a search)."""
    said = question_about_it(ctx.msg.text)
    if said is None:
        return False
    if not said:
        return True
    snapshot = await ctx.services.catalog.snapshot()
    named = [
        hit.product_id for hit in snapshot.search(said, limit=SIZED_AMONG)
        if hit.product_id in snapshot.products and _names(snapshot.products[hit.product_id], said)
    ]
    return not named or product.id in named


def _names(product: ProductInfo, words: str) -> bool:
    """Whether the words name the product: its name or a tag or its category said, or a part of its name."""
    said = words.lower()
    return said in product.name.lower() or any(
        word and word.lower() in said for word in (product.name, *product.tags, product.category)
    )


@dataclass(frozen=True, slots=True)
class CardExtras:
    """What a product card shows besides the catalog's product: its active group-buy
    campaign ("3人团¥X") and its customers' rating ("★4.8(12)")."""

    group: dict[str, Any] | None = None
    rating: dict[str, Any] | None = None


async def card_extras(ctx: Context, product_id: int) -> CardExtras:
    """The product's active group-buy campaign and its rating, for its card.

    One small unit of work per card opened (the catalog snapshot is cached and holds
    neither: campaigns change by staff command and must show at once; the rating is one
    row of `product_ratings` by its key, kept by the reviews themselves)."""
    async with unit_of_work(ctx) as session:
        offer = await group_campaigns.offer_for(session, product_id=product_id, now=utcnow())
        rated = await review_actions.rating_of(session, product_id)
    group = {"price": offer.group_price_fen, "size": offer.group_size} if offer else None
    rating = {"average": rated.average, "count": rated.count} if rated is not None else None
    return CardExtras(group, rating)


def product_card(product: ProductView, *, extras: CardExtras | None = None, quantity: int = 1) -> News:
    extras = extras or CardExtras()
    return News(
        (
            Card(
                "product_card",
                {
                    "name": product.name,
                    "subtitle": product.subtitle,
                    "description": product.description,
                    "category": product.category,
                    "category_en": product.category_en,
                    "price_min": product.min_price_fen,
                    "price_max": product.max_price_fen,
                    "in_stock": product.in_stock,
                    "variants": _variants(product),
                    "group_offer": extras.group,
                    "rating": extras.rating,
                    "quantity": quantity,
                },
                picurl=product.thumb_url,
                url=f"/products/{product.id}",
            ),
        )
    )


class SearchDialog(Dialog[SearchState, SearchData]):
    name = "search"
    State = SearchState
    Data = SearchData
    version = 2
    initial = frozenset({SearchState.RESULTS, SearchState.CATEGORIES, SearchState.CARD})
    transitions = {
        SearchState.RESULTS: frozenset({SearchState.RESULTS, SearchState.CARD}),
        SearchState.CARD: frozenset({SearchState.CARD, SearchState.RESULTS}),
        SearchState.CATEGORIES: frozenset({SearchState.CATEGORIES, SearchState.RESULTS}),
    }

    # ---- entry points -------------------------------------------------------------

    async def search(self, ctx: Context, query: str, *, slots: Slots = NO_SLOTS) -> Reply:
        snapshot = await ctx.services.catalog.snapshot()
        named = category_named(snapshot, query)
        if named is not None:  # "水果", "衣服", "数码产品": the whole category, not a few name matches
            found, notice = narrow_by_price(snapshot, list(named.product_ids[:MAX_RESULTS]), slots)
            ctx.record(events.search(ctx.customer_id, query, len(found)))
            title = named.name if ctx.locale == "zh" else (named.name_en or named.name)
            reply = await self._start_list(ctx, snapshot, SearchData(source="category", title=title, product_ids=found))
            return with_notice(reply, notice) if notice else reply
        query, hits, slots = _whole_or_rest(snapshot, query, slots)
        if not hits and (several := _several(snapshot, query)):  # "苹果和香蕉": each of them
            query, hits = several
        ctx.record(events.search(ctx.customer_id, query, len(hits)))  # 0: a search that found nothing
        if hits:
            found, notice = narrow_by_price(snapshot, [h.product_id for h in hits], slots)
            data = SearchData(source="search", title=query, product_ids=found)
            if slots.quantity is not None and slots.unit.lower() not in WEIGHTS:
                data.quantity, data.unit = slots.quantity, slots.unit.lower()
            sized = await self._sized(ctx, snapshot, found, slots)
            if sized is not None:  # "买三斤苹果": the one product sold by that size, that size chosen
                product, variant = sized
                data.product_id = product.id
                return await ctx.services.dialogs.start(ctx, self, _chosen(product, variant, data))
            reply = await self._start_list(ctx, snapshot, data)
            return with_notice(reply, notice) if notice else reply
        why = _not_a_search(ctx.msg.text, query)
        suggestions = [] if why else snapshot.suggest(query, limit=ctx.services.config.search.page_size)
        if suggestions:
            data = SearchData(source="suggest", title=query, product_ids=[h.product_id for h in suggestions])
            return await self._start_list(ctx, snapshot, data)
        reprompt = await ctx.services.dialogs.reprompt(ctx)
        if isinstance(reprompt, Text) and reprompt.template == "product_question":
            return reprompt  # a question about the card on screen: answered as one, not "not understood"
        if reprompt is not None:  # inside a card or a checkout: it stays, saying what it needs
            return with_notice(reprompt, Notice("not_understood", {"query": query}))
        await ctx.services.dialogs.end(ctx.openid)
        hot = await _items(ctx, snapshot, list(snapshot.best_sellers(3)))
        categories = [{"name": c.name, "name_en": c.name_en} for c in snapshot.categories]
        return Text("nothing_found", {"query": query, "hot": hot, "categories": categories, "why": why})

    async def hot(self, ctx: Context) -> Reply:
        snapshot = await ctx.services.catalog.snapshot()
        data = SearchData(source="hot", product_ids=list(snapshot.best_sellers(MAX_RESULTS)))
        return await self._start_list(ctx, snapshot, data)

    async def category(self, ctx: Context, category_id: int) -> Reply:
        snapshot = await ctx.services.catalog.snapshot()
        category = snapshot.category(category_id)
        if category is None:
            return Text("category_missing")
        data = SearchData(
            source="category",
            title=category.name if ctx.locale == "zh" else (category.name_en or category.name),
            product_ids=list(category.product_ids[:MAX_RESULTS]),
        )
        return await self._start_list(ctx, snapshot, data)

    async def categories(self, ctx: Context) -> Reply:
        snapshot = await ctx.services.catalog.snapshot()
        data = SearchData(source="categories", category_ids=[c.id for c in snapshot.categories])
        step = Step(self._categories_reply(snapshot, data), SearchState.CATEGORIES, data)
        return await ctx.services.dialogs.start(ctx, self, step)

    async def open_product(self, ctx: Context, product_id: int) -> Reply | None:
        """Open one product's card directly (a scanned product-share QR code).

        The dialog starts in CARD with a one-item list, so "加入购物车" works next and
        "返回" shows that product's line. None (and no dialog) when the product is
        missing or off sale: the caller says so.
        """
        product = await ctx.services.catalog.product(product_id)
        if product is None:
            return None
        data = SearchData(source="share", product_ids=[product.id], product_id=product.id)
        card = product_card(product, extras=await card_extras(ctx, product.id))
        ctx.record(events.card(ctx.customer_id, product.id))
        return await ctx.services.dialogs.start(ctx, self, Step(card, SearchState.CARD, data))

    async def _sized(
        self, ctx: Context, snapshot: CatalogSnapshot, product_ids: list[int], slots: Slots
    ) -> tuple[ProductView, VariantView] | None:
        """(product, variant) when the size asked for ("三斤", "5kg") is a variant, in stock, of
        exactly one of the products found; None otherwise (the list is shown as before).
        The candidates' variants are read in one query; only the one chosen is read whole."""
        if slots.quantity is None or not slots.unit:
            return None
        size = f"{slots.quantity}{slots.unit}".lower()
        candidates = [pid for pid in product_ids[:SIZED_AMONG] if pid in snapshot.products]
        stock = await ctx.services.catalog.stock(candidates)
        sized = [
            (pid, variant.id)
            for pid in candidates
            for variant in [next((v for v in stock.get(pid, ()) if v.stock > 0 and _is_size(v.label, size)), None)]
            if variant is not None
        ]
        if len(sized) != 1:
            return None
        product = await ctx.services.catalog.product(sized[0][0])
        variant = next((v for v in product.variants if v.id == sized[0][1]), None) if product else None
        return (product, variant) if product is not None and variant is not None and variant.stock > 0 else None

    async def _start_list(self, ctx: Context, snapshot: CatalogSnapshot, data: SearchData) -> Reply:
        step = Step(await self._list_reply(ctx, snapshot, data), SearchState.RESULTS, data)
        return await ctx.services.dialogs.start(ctx, self, step)

    async def reprompt(self, ctx: Context, state: SearchState, data: SearchData) -> Reply | None:
        """On a card: what it takes (a variant, add, buy now) and how to leave; lists and
        categories give way to the message's own search."""
        if state != SearchState.CARD or data.product_id is None:
            return None
        product = await ctx.services.catalog.product(data.product_id)
        if product is None:
            return None
        variant = self.chosen_variant(product, data)
        if is_question(ctx.msg.text):  # "保修吗", "好吃吗": what the shop says of it, and a person
            return _product_question(product, variant, ctx.msg.text)
        return Text("step_hint", _card_hint(product, variant))

    # ---- states ---------------------------------------------------------------------

    @on(SearchState.CARD)
    async def on_card(self, ctx: Context, data: SearchData) -> Step[SearchState, SearchData] | None:
        keyword = match_keyword(ctx.msg.text)
        if keyword and keyword[0] in ("next", "prev", "back"):
            return await self.on_list(ctx, data)
        product = await ctx.services.catalog.product(data.product_id) if data.product_id else None
        if product is None:
            return await self.on_list(ctx, data)
        number = parse_number(ctx.msg.text)
        if number is not None and len(product.variants) > 1:
            return await self._pick_variant(ctx, product, data, number)
        if understand(ctx.msg.text).intent in (Intent.PRICE_ASK, Intent.STOCK_ASK):  # "多少钱一斤", "有货吗"
            return _priced(product, data)
        add = match_command(ADD_TO_CART, ctx.msg.text)
        buy = match_command(BUY_NOW, ctx.msg.text) if add is None else None
        wanted = add or buy
        if wanted is None and len(product.variants) > 1:
            named = variants_named(ctx.msg.text, [v.spec for v in product.variants])
            if len(named) == 1 and (count := _count_besides(ctx.msg.text, product.variants[named[0]])):
                data.variant_id = product.variants[named[0]].id  # "白色的来一个": chosen and added
                return await self._add(ctx, product, product.variants[named[0]], data, count, buying=False)
            if len(named) == 1:
                return await self._pick_variant(ctx, product, data, named[0] + 1)
            if named:  # "黑色": the black ones, numbered as on the card
                shown = [v for v in _variants(product) if v["number"] - 1 in named]
                return Step(Text("choose_variant", {"name": product.name, "variants": shown}), SearchState.CARD, data)
        if wanted is None and await _asks_about(ctx, product):  # "甜吗", "这个甜不甜", "适合老人吗"
            return Step(_product_question(product, self.chosen_variant(product, data), ctx.msg.text), SearchState.CARD, data)
        if wanted is None:
            return await self.on_list(ctx, data)
        variant = self.chosen_variant(product, data)
        if variant is None:  # "来3包" before a variant: asked for, then done once it is chosen
            data.wants = "buy" if buy is not None else "add"
            if any(wanted.groups()):
                data.quantity, data.unit = command_quantity(wanted), ""
            choose = Text("choose_variant", {"name": product.name, "variants": _variants(product)})
            then = Notice("variant_then", {"wants": data.wants, "quantity": _counted(product, data)})
            return Step(Text(choose.template, choose.data, (*choose.notices, then)), SearchState.CARD, data)
        # no number said ("立即购买"): what the search asked for ("来两袋大米"), else 1
        quantity = command_quantity(wanted) if any(wanted.groups()) else _counted(product, data)
        return await self._add(ctx, product, variant, data, quantity, buying=buy is not None)

    async def _add(
        self, ctx: Context, product: ProductView, variant: VariantView, data: SearchData, quantity: int, *, buying: bool
    ) -> Step[SearchState, SearchData]:
        """`quantity` of `variant` into the cart; buying: on to the checkout."""
        data.wants = ""
        try:
            async with unit_of_work(ctx) as session:
                view = await cart.add_to_cart(
                    session, customer_id=ctx.customer_id, variant_id=variant.id, quantity=quantity,
                    rules=ctx.services.rules,
                )
        except ShopError as exc:
            if exc.code == ErrorCode.OUT_OF_STOCK:
                return Step(_sold_out(exc, product, variant, buying=buying), SearchState.CARD, data)
            return Step(error_reply(exc), SearchState.CARD, data)
        if buying:
            reply = await ctx.services.dialogs.checkout.begin(ctx)
            return Step(reply, handed_over=True)
        added = {"name": product.name, "spec": variant.label, "quantity": quantity, "cart": cart_data(view)}
        return Step(Text("added_to_cart", added), SearchState.CARD, data)

    async def _pick_variant(
        self, ctx: Context, product: ProductView, data: SearchData, number: int
    ) -> Step[SearchState, SearchData]:
        """The variant chosen; an add or a buy said before it ("来3包", then "2") is done now."""
        if not 1 <= number <= len(product.variants):
            reply = Text("pick_out_of_range", {"number": number, "count": len(product.variants)})
            return Step(reply, SearchState.CARD, data)
        variant = product.variants[number - 1]
        if data.wants:
            data.variant_id = variant.id
            return await self._add(ctx, product, variant, data, _counted(product, data), buying=data.wants == "buy")
        return _chosen(product, variant, data)

    @staticmethod
    def chosen_variant(product: ProductView, data: SearchData) -> VariantView | None:
        if len(product.variants) == 1:
            return product.variants[0]
        return next((v for v in product.variants if v.id == data.variant_id), None)

    @on(SearchState.RESULTS)
    async def on_list(self, ctx: Context, data: SearchData) -> Step[SearchState, SearchData] | None:
        snapshot = await ctx.services.catalog.snapshot()
        keyword = match_keyword(ctx.msg.text)
        if keyword and keyword[0] in ("next", "prev", "back"):
            return await self._turn_page(ctx, snapshot, data, keyword[0])
        number = parse_number(ctx.msg.text)
        understood = understand(ctx.msg.text) if number is None else None
        if understood is not None and understood.intent is Intent.PRICE_ASK:
            return Step(await self._list_reply(ctx, snapshot, data, notice="prices_listed"), SearchState.RESULTS, data)
        if understood is not None and refines(understood) and data.product_ids:
            return await self._narrowed(ctx, snapshot, data, understood.slots)
        if understood is not None and sizes_only(understood) and data.product_ids:  # "10斤装的有吗"
            sized = await self._sized(ctx, snapshot, data.product_ids, understood.slots)
            if sized is not None:
                picked, variant = sized
                data.product_id = picked.id
                return _chosen(picked, variant, data)
            size = {"size": f"{understood.slots.quantity}{understood.slots.unit}"}
            listed = await self._list_reply(ctx, snapshot, data)
            return Step(with_notice(listed, Notice("size_none", size)), SearchState.RESULTS, data)
        if number is None:
            return None  # anything else is a new search
        if not 1 <= number <= len(data.product_ids):
            reply = Text("pick_out_of_range", {"number": number, "count": len(data.product_ids)})
            return Step(reply, SearchState.RESULTS if data.product_id is None else SearchState.CARD, data)
        product = await ctx.services.catalog.product(data.product_ids[number - 1])
        if product is None:
            return Step(Text("product_unavailable", {"number": number}), SearchState.RESULTS, data)
        data.product_id, data.variant_id = product.id, None
        card = product_card(product, extras=await card_extras(ctx, product.id), quantity=_counted(product, data))
        ctx.record(events.card(ctx.customer_id, product.id))
        return Step(card, SearchState.CARD, data)

    @on(SearchState.CATEGORIES)
    async def on_categories(self, ctx: Context, data: SearchData) -> Step[SearchState, SearchData] | None:
        number = parse_number(ctx.msg.text)
        if number is None:
            return None
        snapshot = await ctx.services.catalog.snapshot()
        if not 1 <= number <= len(data.category_ids):
            reply = Text("pick_out_of_range", {"number": number, "count": len(data.category_ids)})
            return Step(reply, SearchState.CATEGORIES, data)
        category = snapshot.category(data.category_ids[number - 1])
        if category is None:
            return Step(Text("category_missing"), SearchState.CATEGORIES, data)
        listing = SearchData(
            source="category",
            title=category.name if ctx.locale == "zh" else (category.name_en or category.name),
            product_ids=list(category.product_ids[:MAX_RESULTS]),
        )
        return Step(await self._list_reply(ctx, snapshot, listing), SearchState.RESULTS, listing)

    # ---- helpers --------------------------------------------------------------------

    async def _narrowed(
        self, ctx: Context, snapshot: CatalogSnapshot, data: SearchData, slots: Slots
    ) -> Step[SearchState, SearchData]:
        """"有没有便宜点的", "200以内" on a list: the same list within that price (cheapest
        first for "便宜"), from its first page; none within it: the list as it was, saying so."""
        found, notice = narrow_by_price(snapshot, data.product_ids, slots)
        data = SearchData(source=data.source, title=data.title, product_ids=found)
        listed = await self._list_reply(ctx, snapshot, data)
        return Step(with_notice(listed, notice) if notice else listed, SearchState.RESULTS, data)

    async def _turn_page(
        self, ctx: Context, snapshot: CatalogSnapshot, data: SearchData, direction: str
    ) -> Step[SearchState, SearchData]:
        pages = self._pages(ctx, data)
        target = data.page + {"next": 1, "prev": -1, "back": 0}[direction]
        data.product_id = data.variant_id = None
        if not 0 <= target < pages:
            edge = "last_page" if direction == "next" else "first_page"
            return Step(await self._list_reply(ctx, snapshot, data, notice=edge), SearchState.RESULTS, data)
        data.page = target
        return Step(await self._list_reply(ctx, snapshot, data), SearchState.RESULTS, data)

    def _pages(self, ctx: Context, data: SearchData) -> int:
        size = ctx.services.config.search.page_size
        return max(1, -(-len(data.product_ids) // size))

    async def _list_reply(
        self, ctx: Context, snapshot: CatalogSnapshot, data: SearchData, *, notice: str | None = None
    ) -> Text:
        size = ctx.services.config.search.page_size
        start = data.page * size
        items = await _items(ctx, snapshot, data.product_ids[start : start + size], first=start + 1)
        view = {
            "source": data.source,
            "title": data.title,
            "items": items,
            "page": data.page + 1,
            "pages": self._pages(ctx, data),
            "total": len(data.product_ids),
        }
        return Text("search_results", view, notices=(Notice(notice),) if notice else ())

    def _categories_reply(self, snapshot: CatalogSnapshot, data: SearchData) -> Text:
        items = []
        for number, category_id in enumerate(data.category_ids, 1):
            category = snapshot.category(category_id)
            if category is not None:
                items.append(
                    {"number": number, "name": category.name, "name_en": category.name_en,
                     "count": len(category.product_ids)}
                )
        return Text("categories", {"items": items})
