"""The address book, and parsing the one message in which a customer types an address.

`parse_address` understands name, mainland mobile number and address in any order,
separated by spaces, commas (half or full width), semicolons or new lines, with or
without labels ("收货人：", "电话:", "Address:"), as people paste them from other apps:

    张三 13800138000 上海市浦东新区xx路1号
    13800138000，李四，北京市朝阳区建国路88号
    上海市浦东新区xx路1号 王五 +86 139-1234-5678
    Tom Smith 13912345678 Room 5, 100 Nanjing Rd, Shanghai

The phone anchors the parse: 11 digits in one piece, else grouped 3-4-4, else grouped
any way within one line. The name is the first name-like piece (short, no digits,
no address words) among: the first piece, the last piece, then the first or last word.
A Chinese name of 2-4 characters may hold address characters (李万里, 王苑): only
ending like an administrative unit (上海市, 浦东新区) rules it out. What is left is the
address.

The address must then name a real place: its province, city and district are read from
its start against the country's administrative divisions (`regions.find_region`) and kept
apart; an address naming none ("随便写写地址吧") or no street after its region is refused.
A level left out is filled in: "杭州市西湖区文三路1号" is kept as 浙江省杭州市西湖区文三路1号.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.customers.models import Address
from commerce.customers.regions import find_region
from commerce.errors import ErrorCode, ShopError

NAME_MAX = 20
NAME_WORDS_MAX = 3  # "Tom Smith", "Mary Ann Lee"
ADDRESS_MIN = 6
ADDRESS_MAX = 200
STREET_MIN = 2  # what follows the region: 文三路1号, 人工湖路100号

PHONE_RE = re.compile(r"(?<![\d+])(?:\+?86[\s-]*)?(1[3-9]\d(?:[\s-]*\d){8})(?!\d)")
# In a whole message digits may stand next to the phone ("B座1808 130 0000 0000"): its
# digits never run across a line, and the usual shapes are tried before any grouping.
_MOBILE_PREFIX = r"(?<![\d+])(?:\+?86[ \t-]*)?"
PHONE_IN_TEXT_RES = (
    re.compile(_MOBILE_PREFIX + r"(1[3-9]\d{9})(?!\d)"),  # 13800138000
    re.compile(_MOBILE_PREFIX + r"(1[3-9]\d[ \t-]+\d{4}[ \t-]+\d{4})(?!\d)"),  # 138 0013 8000
    re.compile(_MOBILE_PREFIX + r"(1[3-9]\d(?:[ \t-]*\d){8})(?!\d)"),  # any other grouping
)
# something that was meant to be a phone number: 7+ digits, maybe grouped
PHONE_ATTEMPT_RE = re.compile(r"\+?\d(?:[\s-]*\d){6,}")
LABEL_RE = re.compile(
    r"(?:收货人|收件人|联系人|姓名|名字|手机号码|手机号|手机|联系电话|电话号码|电话|"
    r"所在地区|详细地址|收货地址|收件地址|地址|"
    r"(?<![A-Za-z])(?:name|phone|mobile|tel|address|addr)(?![A-Za-z]))\s*[:：]",
    re.IGNORECASE,
)
STRONG_SEP = ",;\n，；、|"
SEP_CHARS = STRONG_SEP + " \t\r:：。."
STRONG_SPLIT_RE = re.compile(r"[,;\n，；、|]+")
CJK_ADDRESS_CHARS = set("省市区县州路街道号镇乡村弄巷栋幢室楼院园座厦苑里")
# A Chinese name is one token of 2-4 characters, and many of the characters that end an
# address word are given names too (李万里, 王苑, 张园园, 楼一鸣, 路遥); inside such a token
# only the suffix of an administrative unit (上海市, 浦东新区, 杭州) says "address".
CJK_NAME_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]{2,4}")
CJK_UNIT_SUFFIXES = set("省市区县州")
EN_ADDRESS_WORDS = {
    "road", "rd", "street", "st", "avenue", "ave", "lane", "ln", "room", "rm", "floor", "fl",
    "building", "bldg", "unit", "apt", "district", "city", "province", "block", "no",
}  # fmt: skip


@dataclass(frozen=True)
class ParsedAddress:
    name: str
    phone: str  # 11 digits
    address: str  # the whole address, as a courier reads it: 浙江省杭州市西湖区文三路1号
    province: str = ""  # 浙江省; a municipality is its own city: 上海市, 上海市
    city: str = ""
    district: str = ""  # may be empty (东莞市, a municipality's street straight after it)
    detail: str = ""  # what follows the region: 文三路1号 (an English address: all of it)


@dataclass(frozen=True)
class AddressView:
    id: int
    name: str
    phone: str
    address: str
    is_default: bool
    province: str = ""
    city: str = ""
    district: str = ""
    detail: str = ""

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


def mask_phone(phone: str) -> str:
    """The phone as "138****8000": safe to show in chat and to log."""
    if len(phone) < 8:
        return "*" * len(phone)
    return f"{phone[:3]}****{phone[-4:]}"


def normalise_phone(text: str) -> str:
    """The 11 digits of a mainland mobile number (+86, spaces, dashes allowed); PHONE_INVALID otherwise."""
    text = unicodedata.normalize("NFKC", text).strip()
    match = PHONE_RE.fullmatch(text)
    if match is None:
        raise ShopError(ErrorCode.PHONE_INVALID, reason="not_mobile" if text else "missing")
    return re.sub(r"\D", "", match.group(1))


def parse_address(text: str) -> ParsedAddress:
    """Name, phone and address from one typed message; ShopError says what is missing."""
    text = unicodedata.normalize("NFKC", text or "").strip()
    if not text:
        raise ShopError(ErrorCode.ADDRESS_INVALID, missing="all")
    text = LABEL_RE.sub("\n", text)
    phone_match = next(filter(None, (r.search(text) for r in PHONE_IN_TEXT_RES)), None)
    if phone_match is None:
        if PHONE_ATTEMPT_RE.search(text):
            raise ShopError(ErrorCode.PHONE_INVALID, reason="not_mobile")
        raise ShopError(ErrorCode.PHONE_INVALID, reason="missing")
    phone = re.sub(r"\D", "", phone_match.group(1))
    # the phone becomes a strong separator; positions are kept so the rest can be cut out
    text = (
        text[: phone_match.start()]
        + "\n" * (phone_match.end() - phone_match.start())
        + text[phone_match.end() :]
    )
    name_span = _find_name(text)
    if name_span is None:
        raise ShopError(ErrorCode.ADDRESS_INVALID, missing="name")
    start, end = name_span
    name = text[start:end].strip()
    address = _clean_address(text[:start] + "\n" + text[end:])
    if not address:
        raise ShopError(ErrorCode.ADDRESS_INVALID, missing="address")
    if len(address.replace(" ", "")) < ADDRESS_MIN:
        raise ShopError(
            ErrorCode.ADDRESS_INVALID, reason="address_too_short", min_length=ADDRESS_MIN
        )
    if len(address) > ADDRESS_MAX:
        raise ShopError(
            ErrorCode.ADDRESS_INVALID, reason="address_too_long", max_length=ADDRESS_MAX
        )
    return _placed(ParsedAddress(name=name, phone=phone, address=address))


def _placed(parsed: ParsedAddress) -> ParsedAddress:
    """The address with its province, city and district; REGION refused when it names none."""
    region = find_region(parsed.address)
    if region is None:
        raise ShopError(ErrorCode.ADDRESS_INVALID, reason="region_unknown")
    detail = parsed.address[region.typed :].strip(SEP_CHARS.replace(".", "") + "-")
    if len(detail.replace(" ", "")) < STREET_MIN:
        raise ShopError(ErrorCode.ADDRESS_INVALID, reason="street_missing", region=region.prefix)
    address = f"{region.prefix}{detail}" if region.inferred else parsed.address
    if len(address) > ADDRESS_MAX:
        raise ShopError(ErrorCode.ADDRESS_INVALID, reason="address_too_long", max_length=ADDRESS_MAX)
    return ParsedAddress(
        name=parsed.name,
        phone=parsed.phone,
        address=address,
        province=region.province,
        city=region.city,
        district=region.district,
        detail=detail,
    )


def _pieces(text: str) -> list[tuple[int, int]]:
    """Spans of the text between strong separators (commas, new lines, the phone...)."""
    spans = []
    pos = 0
    for sep in STRONG_SPLIT_RE.finditer(text):
        spans.append((pos, sep.start()))
        pos = sep.end()
    spans.append((pos, len(text)))
    return [s for s in (_strip_span(text, a, b) for a, b in spans) if s is not None]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start] in SEP_CHARS:
        start += 1
    while end > start and text[end - 1] in SEP_CHARS:
        end -= 1
    return (start, end) if start < end else None


def _words(text: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    start, _ = span
    return [
        (start + m.start(), start + m.end()) for m in re.finditer(r"\S+", text[span[0] : span[1]])
    ]


def _find_name(text: str) -> tuple[int, int] | None:
    pieces = _pieces(text)
    if not pieces:
        return None
    candidates = [pieces[0], pieces[-1]]
    first_words, last_words = _words(text, pieces[0]), _words(text, pieces[-1])
    # a name typed without a comma before (or after) the address: its first (last) words
    for count in range(min(NAME_WORDS_MAX, len(first_words) - 1), 0, -1):
        candidates.append((first_words[0][0], first_words[count - 1][1]))
    for count in range(min(NAME_WORDS_MAX, len(last_words) - 1), 0, -1):
        candidates.append((last_words[-count][0], last_words[-1][1]))
    for start, end in candidates:
        if _looks_like_name(text[start:end]):
            return start, end
    return None


def _looks_like_name(value: str) -> bool:
    value = value.strip()
    if not 1 <= len(value) <= NAME_MAX or any(ch.isdigit() for ch in value):
        return False
    if not any(ch.isalpha() for ch in value):
        return False
    if CJK_NAME_RE.fullmatch(value):
        return value[-1] not in CJK_UNIT_SUFFIXES
    # a surname may be an "address" character (路, 区...), so the first one is not judged
    if any(ch in CJK_ADDRESS_CHARS for ch in value[1:]):
        return False
    words = {w.strip(".,").lower() for w in value.split()}
    return not words & EN_ADDRESS_WORDS


def _clean_address(rest: str) -> str:
    parts = [p.strip(SEP_CHARS.replace(".", "")) for p in rest.split("\n")]
    return re.sub(r"\s+", " ", " ".join(p for p in parts if p)).strip()


# ---- the address book -----------------------------------------------------------


def _view(address: Address) -> AddressView:
    return AddressView(
        id=address.id,
        name=address.name,
        phone=address.phone,
        address=address.address,
        is_default=address.is_default,
        province=address.province,
        city=address.city,
        district=address.district,
        detail=address.detail,
    )


async def save_address(
    session: AsyncSession, *, customer_id: int, parsed: ParsedAddress, make_default: bool = True
) -> AddressView:
    """Keep an address (an identical one is reused); the first one is always the default."""
    address = await session.scalar(
        select(Address)
        .where(
            Address.customer_id == customer_id,
            Address.name == parsed.name,
            Address.phone == parsed.phone,
            Address.address == parsed.address,
        )
        .order_by(Address.id)
        .limit(1)
    )
    if address is None:
        address = Address(customer_id=customer_id, name=parsed.name, phone=parsed.phone, address=parsed.address)
        session.add(address)
    if parsed.province:  # a row kept before regions were read gets them now
        address.province, address.city = parsed.province, parsed.city
        address.district, address.detail = parsed.district, parsed.detail
    await session.flush()
    has_default = await session.scalar(
        select(Address.id)
        .where(Address.customer_id == customer_id, Address.is_default.is_(True))
        .limit(1)
    )
    if make_default or has_default is None:
        await session.execute(
            update(Address)
            .where(Address.customer_id == customer_id)
            .values(is_default=case((Address.id == address.id, True), else_=False))
            .execution_options(synchronize_session=False)
        )
    await session.refresh(address)
    return _view(address)


async def list_addresses(session: AsyncSession, *, customer_id: int) -> list[AddressView]:
    """The default first, then the newest."""
    rows = await session.scalars(
        select(Address)
        .where(Address.customer_id == customer_id)
        .order_by(Address.is_default.desc(), Address.id.desc())
        .execution_options(populate_existing=True)
    )
    return [_view(a) for a in rows]


async def default_address(session: AsyncSession, *, customer_id: int) -> AddressView | None:
    address = await session.scalar(
        select(Address)
        .where(Address.customer_id == customer_id)
        .order_by(Address.is_default.desc(), Address.id.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    )
    return _view(address) if address is not None else None


async def get_address(session: AsyncSession, *, customer_id: int, address_id: int) -> AddressView:
    address = await session.scalar(
        select(Address)
        .where(Address.id == address_id, Address.customer_id == customer_id)
        .execution_options(populate_existing=True)
    )
    if address is None:
        raise ShopError(ErrorCode.ADDRESS_NOT_FOUND, address_id=address_id)
    return _view(address)
