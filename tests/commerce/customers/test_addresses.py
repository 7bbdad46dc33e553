"""Parsing an address typed in one message, and the address book."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce.customers.addresses import (
    AddressView,
    ParsedAddress,
    default_address,
    list_addresses,
    mask_phone,
    normalise_phone,
    parse_address,
    save_address,
)
from commerce.errors import ErrorCode, ShopError
from commerce.wiring import shop_sessions
from tests.commerce.factories import make_customer

SH = "上海市浦东新区世纪大道100号"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "张三 13800138000 上海市浦东新区xx路1号",
            ("张三", "13800138000", "上海市浦东新区xx路1号"),
        ),
        (
            "13800138000，李四，北京市朝阳区建国路88号",
            ("李四", "13800138000", "北京市朝阳区建国路88号"),
        ),
        (
            "Tom Smith 13912345678 Room 5, 100 Nanjing Rd, Shanghai",
            ("Tom Smith", "13912345678", "Room 5, 100 Nanjing Rd, Shanghai"),
        ),
        (f"{SH} 王五 +86 139-1234-5678", ("王五", "13912345678", SH)),
        (f"张三 {SH} 13800138000", ("张三", "13800138000", SH)),
        (f"13800138000 张三 {SH}", ("张三", "13800138000", SH)),
        (f"{SH}，张三，13800138000", ("张三", "13800138000", SH)),
        (f"张三13800138000{SH}", ("张三", "13800138000", SH)),  # nothing between the parts
        (f"张三\n138 0013 8000\n{SH}", ("张三", "13800138000", SH)),
        (f"张三；+8613800138000；{SH}", ("张三", "13800138000", SH)),
        (f"张三,13800138000,{SH}", ("张三", "13800138000", SH)),
        (
            "张三 １３８００１３８０００ 上海市浦东新区世纪大道１００号",
            ("张三", "13800138000", SH),
        ),  # full width
        (
            "收货人：张三\n手机号码：13800138000\n所在地区：上海市浦东新区\n详细地址：世纪大道100号3号楼201室",
            ("张三", "13800138000", "上海市浦东新区 世纪大道100号3号楼201室"),
        ),
        (
            "Name: Mary Lee, Phone: +86 13512345678, Address: Flat 2, 88 Huaihai Rd, Shanghai",
            ("Mary Lee", "13512345678", "Flat 2, 88 Huaihai Rd, Shanghai"),
        ),
        (
            "Room 5, 100 Nanjing Rd, Shanghai, Tom Smith, 13912345678",
            ("Tom Smith", "13912345678", "Room 5, 100 Nanjing Rd, Shanghai"),
        ),
        (
            "路遥，15912345678，陕西省西安市雁塔区长安南路100号",
            ("路遥", "15912345678", "陕西省西安市雁塔区长安南路100号"),
        ),
        (
            "欧阳娜娜 199-0000-1111 广东省深圳市南山区科技园8栋",
            ("欧阳娜娜", "19900001111", "广东省深圳市南山区科技园8栋"),
        ),
        (
            "  张三   13800138000   上海市 浦东新区  世纪大道100号  ",
            ("张三", "13800138000", "上海市 浦东新区 世纪大道100号"),
        ),
    ],
)
def test_parses_the_formats_people_type(text: str, expected: tuple[str, str, str]) -> None:
    parsed = parse_address(text)
    assert (parsed.name, parsed.phone, parsed.address) == expected


@pytest.mark.parametrize("name", ["李万里", "王苑", "张园园", "楼一鸣"])
@pytest.mark.parametrize(
    "template",
    [
        "{name} 13800138000 {sh}",
        "{sh} {name} 13800138000",
        "13800138000，{name}，{sh}",
        "{name}13800138000{sh}",
        "{sh}，{name}，13800138000",
        "13800138000 {name} {sh}",
    ],
)
def test_bug_names_with_address_characters_were_taken_for_no_name(name: str, template: str) -> None:
    """里, 苑, 园, 楼 end address words (三里屯, 阳光苑, 科技园, 3号楼) but are also given names."""
    text = template.format(name=name, sh=SH)
    assert parse_address(text) == ParsedAddress(name, "13800138000", SH, "上海市", "上海市", "浦东新区", "世纪大道100号")


@pytest.mark.parametrize(
    "text",
    [
        f"13800138000 上海市 {SH}",  # a city alone is not a name, though as short as one
        "上海市 浦东新区 世纪大道100号 13800138000",
        f"13800138000，浦东新区，{SH}",
    ],
)
def test_a_short_administrative_unit_is_not_a_name(text: str) -> None:
    with pytest.raises(ShopError) as caught:
        parse_address(text)
    assert caught.value.details == {"missing": "name"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "王伟 大理白族自治州 世纪大道1号 13000000000",
            ("王伟", "13000000000", "云南省大理白族自治州世纪大道1号"),  # its province filled in
        ),
        ("王伟 杭州 文三路100号 13000000000", ("王伟", "13000000000", "浙江省杭州市文三路100号")),
    ],
)
def test_bug_a_prefecture_after_the_name_was_taken_for_part_of_it(
    text: str, expected: tuple[str, str, str]
) -> None:
    """州 ends a unit as 市 does (found by test_addresses_props)."""
    parsed = parse_address(text)
    assert (parsed.name, parsed.phone, parsed.address) == expected


ROOM = "上海市世纪大道1号B座1808"


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        (f"王伟 {ROOM} 130 0000 0000", "13000000000"),
        (f"王伟\n{ROOM}\n138 0013 8000", "13800138000"),
        (f"{ROOM}\n138-0013-8000\n王伟", "13800138000"),
        (f"王伟 {ROOM}\n+86 138 0013 8000", "13800138000"),
        (f"王伟 {ROOM} 13800138000", "13800138000"),
    ],
)
def test_bug_a_room_number_before_a_grouped_phone_became_part_of_it(text: str, phone: str) -> None:
    """The room and phone in "1808 130 0000 0000" were read as the phone 18081300000 (found
    by test_addresses_props): a phone's digits never run across a line, and 11 digits in one
    piece or grouped 3-4-4 win over any other grouping."""
    assert parse_address(text) == ParsedAddress("王伟", phone, ROOM, "上海市", "上海市", "", "世纪大道1号B座1808")


@pytest.mark.parametrize(
    "text",
    [
        f"张三 12800138000 {SH}",  # no mobile starts with 12
        f"张三 1380013800 {SH}",  # 10 digits
        f"张三 138001380001 {SH}",  # 12 digits
        f"张三 021-66668888 {SH}",  # a landline
        f"张三 +1 415 555 0100 {SH}",
    ],
)
def test_bad_phones_are_refused(text: str) -> None:
    with pytest.raises(ShopError) as caught:
        parse_address(text)
    assert caught.value.code == ErrorCode.PHONE_INVALID
    assert caught.value.details == {"reason": "not_mobile"}


@pytest.mark.parametrize(
    ("text", "code", "details"),
    [
        (f"张三 {SH}", ErrorCode.PHONE_INVALID, {"reason": "missing"}),
        ("张三 13800138000", ErrorCode.ADDRESS_INVALID, {"missing": "address"}),
        (f"13800138000 {SH}", ErrorCode.ADDRESS_INVALID, {"missing": "name"}),
        (
            "张三 13800138000 上海",
            ErrorCode.ADDRESS_INVALID,
            {"reason": "address_too_short", "min_length": 6},
        ),
        ("", ErrorCode.ADDRESS_INVALID, {"missing": "all"}),
        ("   ", ErrorCode.ADDRESS_INVALID, {"missing": "all"}),
        ("13800138000", ErrorCode.ADDRESS_INVALID, {"missing": "name"}),
        (
            f"张三 13800138000 {'很长的地址' * 50}",
            ErrorCode.ADDRESS_INVALID,
            {"reason": "address_too_long", "max_length": 200},
        ),
    ],
)
def test_missing_parts_are_named(text: str, code: ErrorCode, details: dict) -> None:
    with pytest.raises(ShopError) as caught:
        parse_address(text)
    assert caught.value.code == code
    assert caught.value.details == details


def test_phone_helpers() -> None:
    assert normalise_phone("+86 138-0013-8000") == "13800138000"
    assert mask_phone("13800138000") == "138****8000"
    assert AddressView(1, "张三", "13912345678", SH, True).masked_phone == "139****5678"
    with pytest.raises(ShopError):
        normalise_phone("12345")


async def test_address_book(engine: AsyncEngine) -> None:
    async with shop_sessions(engine)() as session:
        customer = await make_customer(session)
        other = await make_customer(session)
        assert await default_address(session, customer_id=customer) is None
        home = parse_address(f"张三 13800138000 {SH}")
        office = parse_address("张三 13800138000 上海市静安区南京西路1266号")

        first = await save_address(session, customer_id=customer, parsed=home, make_default=False)
        assert first.is_default  # the first address is the default whatever was asked
        second = await save_address(
            session, customer_id=customer, parsed=office, make_default=False
        )
        assert not second.is_default
        assert (await default_address(session, customer_id=customer)) == first

        again = await save_address(
            session, customer_id=customer, parsed=office
        )  # identical: reused
        assert again.id == second.id and again.is_default
        book = await list_addresses(session, customer_id=customer)
        assert [a.id for a in book] == [second.id, first.id]
        assert [a.is_default for a in book] == [True, False]  # only one default
        assert (await default_address(session, customer_id=customer)).id == second.id  # type: ignore[union-attr]

        await save_address(session, customer_id=other, parsed=home)
        assert len(await list_addresses(session, customer_id=customer)) == 2
        assert len(await list_addresses(session, customer_id=other)) == 1


# ---- the region: read against the country's administrative divisions (issue 15) -----


@pytest.mark.parametrize(
    ("address", "region", "kept"),
    [
        ("浙江省杭州市西湖区文三路1号", ("浙江省", "杭州市", "西湖区"), "浙江省杭州市西湖区文三路1号"),
        # no province: the city names it, and it is filled in
        ("杭州市西湖区文三路1号", ("浙江省", "杭州市", "西湖区"), "浙江省杭州市西湖区文三路1号"),
        ("浙江省西湖区文三路1号", ("浙江省", "杭州市", "西湖区"), "浙江省杭州市西湖区文三路1号"),
        ("浦东新区世纪大道100号", ("上海市", "上海市", "浦东新区"), "上海市浦东新区世纪大道100号"),
        # municipalities: province and city are one, however typed
        ("北京市朝阳区建国路88号", ("北京市", "北京市", "朝阳区"), "北京市朝阳区建国路88号"),
        ("上海市上海市浦东新区世纪大道100号", ("上海市", "上海市", "浦东新区"), None),
        ("天津和平区南京路1号", ("天津市", "天津市", "和平区"), None),
        ("重庆市渝中区解放碑1号", ("重庆市", "重庆市", "渝中区"), None),
        ("上海市人工湖路100号", ("上海市", "上海市", ""), None),
        ("上海市市辖区浦东新区世纪大道100号", ("上海市", "上海市", "浦东新区"), None),  # an old picker's format
        ("香港九龙弥敦道1号", ("香港特别行政区", "香港特别行政区", ""), None),
        # autonomous regions, prefectures and leagues, full or short
        ("广西南宁市青秀区民族大道1号", ("广西壮族自治区", "南宁市", "青秀区"), None),
        ("内蒙古阿拉善盟阿拉善左旗巴彦浩特镇1号", ("内蒙古自治区", "阿拉善盟", "阿拉善左旗"), None),
        ("延边州延吉市光明街1号", ("吉林省", "延边朝鲜族自治州", "延吉市"), "吉林省延边朝鲜族自治州延吉市光明街1号"),
        ("云南省大理白族自治州大理市人民路1号", ("云南省", "大理白族自治州", "大理市"), None),
        ("新疆维吾尔自治区伊犁哈萨克自治州伊宁市解放路1号", ("新疆维吾尔自治区", "伊犁哈萨克自治州", "伊宁市"), None),
        # a city that is also a province's short name, and one with no districts
        ("吉林市船营区北京路1号", ("吉林省", "吉林市", "船营区"), "吉林省吉林市船营区北京路1号"),
        ("广东省东莞市南城街道1号", ("广东省", "东莞市", ""), None),
        ("湖北省仙桃市仙桃大道1号", ("湖北省", "仙桃市", ""), None),
        ("新疆白杨市人民路1号", ("新疆维吾尔自治区", "白杨市", ""), None),  # made a city in 2023
        ("Room 5, 100 Nanjing Rd, Shanghai", ("上海市", "上海市", ""), None),
        ("8 Renmin Rd, Suzhou, Jiangsu", ("江苏省", "苏州市", ""), None),
    ],
)
def test_the_region_is_read_and_kept_apart(address: str, region: tuple[str, str, str], kept: str | None) -> None:
    parsed = parse_address(f"张三 13800138000 {address}")
    assert (parsed.province, parsed.city, parsed.district) == region
    assert parsed.address == (kept or address)
    assert parsed.detail and parsed.address.endswith(parsed.detail)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("王五 13800138000 随便写写地址吧", "region_unknown"),  # issue 15
        ("王五 13800138000 中山路100号", "region_unknown"),  # a street named after a city
        ("王五 13800138000 朝阳区建国路88号", "region_unknown"),  # in Beijing or Changchun?
        ("王五 13800138000 8 Renmin Rd, Suzhou", "region_unknown"),  # 苏州 or 宿州?
        ("王五 13800138000 浙江省杭州市西湖区", "street_missing"),
    ],
)
def test_an_address_naming_no_real_place_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ShopError) as caught:
        parse_address(text)
    assert caught.value.code == ErrorCode.ADDRESS_INVALID
    assert caught.value.details["reason"] == reason
