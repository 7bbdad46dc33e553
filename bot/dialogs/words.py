"""Edits said in words, read without a database: a variant named on a card ("要黑色L码",
"5斤那个"), a cart line named by its product ("把T恤删了", "毛巾要4条"), one more of the
last thing ("再加一袋"), a delivery detail changed at checkout ("收货人改成王芳").

Pure functions over the text and what is on screen; the dialogs act on what they return.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

MAX_WORDS = 30  # longer messages are sentences for search, not edits

_NUMERALS = {"一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_NUMBER = r"(\d{1,3}|[一二两俩三四五六七八九十])"
_UNIT = r"(?:个|件|份|袋|包|盒|箱|瓶|条|双|只|斤|支|套|罐|听|块|张|本|台|把|顶|根|颗|串|杯|桶|提|卷|副|对|pcs|x)?"


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower().rstrip("!！。.,，~～?？ ")


def _number(word: str | None) -> int:
    if not word:
        return 1
    return int(word) if word.isdigit() else _NUMERALS[word]


# ---- a variant named on a card ---------------------------------------------------------

_DIGIT_WORD = re.compile(r"([一二两三四五六七八九十])(?=\s*(?:斤|个|包|袋|盒|箱|瓶|kg|g|l|ml|米|寸))")


_JIN = re.compile(r"(\d)\s*(?:jin|catty|catties)\b")


def _has(text: str, word: str) -> bool:
    """`word` in `text`, not as part of a longer ASCII word or number ("l" is not in "xl")."""
    for found in re.finditer(re.escape(word), text):
        before = text[found.start() - 1] if found.start() else " "
        after = text[found.end()] if found.end() < len(text) else " "
        if (word[0].isascii() and word[0].isalnum() and before.isascii() and before.isalnum()) or (
            word[-1].isascii() and word[-1].isalnum() and after.isascii() and after.isalnum()
        ):
            continue
        return True
    return False


def _forms(value: str) -> set[str]:
    """How a spec value may be said: "5斤装" also as "5斤", "#02 豆沙" also as "豆沙"."""
    value = _plain(value)
    forms = {value, value.removesuffix("装"), value.removesuffix("码")}
    forms.update(part for part in value.split() if len(part) > 1)
    return {f for f in forms if f}


def variants_named(text: str, specs: Sequence[dict[str, str]]) -> list[int]:
    """The indexes of the variants whose spec values the text names best ("要黑色L码" ->
    black L; "黑色" -> every black one); empty when it names none."""
    said = _DIGIT_WORD.sub(lambda m: str(_NUMERALS[m.group(1)]), _plain(text))
    said = _JIN.sub(r"\1斤", said)  # "the 5 jin one" names 5斤装
    if not said or len(said) > MAX_WORDS:
        return []
    scores = []
    for spec in specs:
        named = [value for value in spec.values() if any(_has(said, form) for form in _forms(str(value)))]
        scores.append(sum(len(str(v)) for v in named) + 100 * len(named))
    best = max(scores, default=0)
    return [i for i, score in enumerate(scores) if score == best] if best else []


# ---- cart edits --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddMore:
    """"再加一袋": `quantity` more of the thing on screen, else of the last cart line."""

    quantity: int


@dataclass(frozen=True, slots=True)
class RemoveNamed:
    """"把T恤删了": the cart line(s) whose product is named."""

    name: str


@dataclass(frozen=True, slots=True)
class SetNamed:
    """"毛巾要4条": the named line's quantity."""

    name: str
    quantity: int


CartEdit = AddMore | RemoveNamed | SetNamed

_ADD_MORE = re.compile(rf"(?:再|多|还要|还想)(?:加|来|买|要)?了?\s*{_NUMBER}?\s*{_UNIT}(?:吧|呗)?")
_ADD_MORE_EN = re.compile(r"(?:add\s+)?(one|\d{1,3})\s+more")
_REMOVE_AFTER = re.compile(r"(?:把|将)?\s*(.+?)\s*(?:给我)?(?:删了|删掉|删除|去掉|拿掉|移除|不要了|不要|取消掉)了?(?:吧|吧了)?")
_REMOVE_BEFORE = re.compile(r"(?:删掉|删除|删|去掉|拿掉|移除|不要了|不要)\s*(.+?)(?:了|吧)?")
_REMOVE_EN = re.compile(r"(?:remove|delete|drop)\s+(?:the\s+|my\s+)?(.+)")
_SET_EN = re.compile(r"(?:set|change|make)?\s*(?:the\s+|my\s+)?(.+?)\s+(?:to|x|×)\s*(\d{1,3})")
_SET = re.compile(rf"(?:把|将)?\s*(.+?)\s*(?:数量)?(?:要|改成|改为|改到|换成|只要|就要)\s*{_NUMBER}\s*{_UNIT}(?:吧|就行|就好)?")
_NOT_A_PRODUCT = re.compile(r"收货人|收件人|电话|手机|地址|名字|姓名|积分|券|数量|订单")


def _name(word: str) -> str | None:
    word = word.strip().removeprefix("那个").removeprefix("这个").rstrip("了吧啦的")
    if not word or word.isdigit() or len(word) > 20 or _NOT_A_PRODUCT.search(word):
        return None
    return word


def read_cart_edit(text: str) -> CartEdit | None:
    """A cart edit said in words, or None. "删 2" and "改 1 3" (numbers) are the cart's own
    commands and are not read here."""
    said = _plain(text)
    if not said or len(said) > MAX_WORDS:
        return None
    for pattern in (_ADD_MORE, _ADD_MORE_EN):
        found = pattern.fullmatch(said)
        if found:
            word = found.group(1)
            return AddMore(1 if word in (None, "one") else _number(word))
    found = _SET.fullmatch(said) or _SET_EN.fullmatch(said)
    if found and (name := _name(found.group(1))):
        return SetNamed(name, _number(found.group(2)))
    for pattern in (_REMOVE_AFTER, _REMOVE_BEFORE, _REMOVE_EN):
        found = pattern.fullmatch(said)
        if found and (name := _name(found.group(1))):
            return RemoveNamed(name)
    return None


def _singular(words: str) -> str:
    """"towels" -> "towel", "peaches" -> "peach" (the last word); anything else as it is."""
    if len(words) <= 3 or not words.endswith("s") or words.endswith("ss"):
        return words
    return words[:-2] if words.endswith(("ches", "shes", "sses", "xes")) else words[:-1]


def lines_named(name: str, lines: Sequence[Sequence[str]]) -> list[int]:
    """The indexes of the cart lines the words name; a line is its product name, spec
    label and any other names it goes by (the English subtitle and tags: "remove the
    towels", "t-shirt to 2")."""
    said = _plain(name)
    exact = [i for i, words in enumerate(lines) if _has(_plain(" ".join(words)), said)]
    if exact:
        return exact
    if said.isascii():  # "towels": a line tagged "towel"
        singular = _singular(said)
        return [i for i, words in enumerate(lines) if _has(_plain(" ".join(words)), singular)] if singular != said else []
    # "白T恤": every character of a short name in the line's own name and spec, in order
    chars = [c for c in said if not c.isspace()]
    return [
        i for i, words in enumerate(lines)
        if re.search(".*".join(map(re.escape, chars)), _plain(" ".join(words[:2])))
    ] if 1 < len(chars) <= 6 else []


# ---- delivery details at checkout --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddressChange:
    """"收货人改成王芳" / "电话改成139…" / "地址改成…": one detail (`field`: name, phone or
    address) to `value`; `value` empty when only "someone else" was said ("改成我妈")."""

    field: str
    value: str


_CHANGE = re.compile(
    r"(?:把|将)?\s*(收货人|收件人|姓名|名字|电话|手机号码|手机号|手机|收货地址|地址)\s*(?:改成|改为|换成|改|换)\s*[:：]?\s*(.+)"
)
_FIELDS = {"收货人": "name", "收件人": "name", "姓名": "name", "名字": "name", "电话": "phone",
           "手机号码": "phone", "手机号": "phone", "手机": "phone", "收货地址": "address", "地址": "address"}
_KIN = re.compile(r"^(?:我|给)?(?:妈|妈妈|爸|爸爸|老妈|老爸|爸妈|老婆|老公|媳妇|爷爷|奶奶|外公|外婆|姥姥|姥爷|"
                  r"女朋友|男朋友|对象|朋友|同事|家人|孩子|儿子|女儿|哥|哥哥|姐|姐姐|弟|弟弟|妹|妹妹|婆婆|公公|岳母|岳父)$")


def read_address_change(text: str) -> AddressChange | None:
    found = _CHANGE.fullmatch(unicodedata.normalize("NFKC", text).strip())
    if found is None:
        return None
    field, value = _FIELDS[found.group(1)], found.group(2).strip().rstrip("。.!！")
    if field == "name" and _KIN.match(value):
        value = ""  # someone else: their name, phone and address are asked for
    return AddressChange(field, value)


# "有券能用吗", "有优惠券吗", "any coupons?": a question about coupons, not "券 2"
COUPON_QUESTION = re.compile(r"(?i)(券|coupon).*(吗|么|\?|？|哪|几|什么|有没有|能不能|可以|可用|能用)|(有没有|有啥|有什么|哪些|any).*(券|coupon)")
