"""Every template, customer and staff, rendered in both locales through its branches.

The samples come by variable name (`template_samples.py`); the values a template
compares against (statuses, error codes, kinds) and the conditions it tests are read
from the template itself, so each comparison value and each empty/absent case is
rendered. A reply fails when:
- two lines of the template run together (a block tag at a line's end eats the line
  break under `trim_blocks`): the reply must break lines where the template does;
- a key is left untranslated (`pending_payment` in a reply), Jinja syntax or "None" leaks;
- an English word appears in a Chinese reply, or Chinese in an English one (sample data aside);
- a template exists in one locale only.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

import jinja2
import pytest
from jinja2 import meta, nodes

from bot.chat.render import LOCALES, MESSAGES_DIR, Renderer
from tests.bot.chat import template_samples as samples

Key = tuple[str, str]  # ("top", name) or ("attr", name)


def _all_templates(locale: str) -> set[str]:
    root = MESSAGES_DIR / locale
    return {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.j2")}


TEMPLATES = sorted(_all_templates("zh") | _all_templates("en"))


def test_every_template_exists_in_both_locales() -> None:
    assert _all_templates("zh") == _all_templates("en")


# ---- what a template compares and tests, read from its syntax tree


@dataclass
class Shape:
    enums: dict[Key, list[str]] = field(default_factory=dict)
    switches: set[Key] = field(default_factory=set)
    nullable: set[Key] = field(default_factory=set)
    optional: set[str] = field(default_factory=set)  # `x is defined`
    names: set[str] = field(default_factory=set)  # every top-level name read

    def add_enum(self, key: Key | None, values: list[str]) -> None:
        if key is not None:
            known = self.enums.setdefault(key, [])
            known.extend(v for v in values if v not in known)


_RELATED = re.compile(r'"(?:[a-z]{2})?/?((?:admin/)?[a-z_]+)\.j2"')


class _Reader:
    def __init__(self, env: jinja2.Environment, locale: str) -> None:
        self.env, self.locale = env, locale
        self.shape = Shape()
        self.aliases: dict[str, Key] = {}
        self.dicts: dict[str, list[str]] = {}
        self.macro_files: dict[str, str] = {}
        self.locals: set[str] = set()

    def read(self, name: str, seen: set[str]) -> None:
        if name in seen or not (MESSAGES_DIR / self.locale / f"{name}.j2").exists():
            return
        seen.add(name)
        source = (MESSAGES_DIR / self.locale / f"{name}.j2").read_text(encoding="utf-8")
        tree = self.env.parse(source)
        # (on its own tree: compiling folds constant dicts in place)
        self.shape.names |= meta.find_undeclared_variables(self.env.parse(source))
        for node in tree.find_all((nodes.For, nodes.Macro, nodes.With, nodes.Import, nodes.Assign)):
            if isinstance(node, nodes.For | nodes.Assign):
                self.locals.update(n.name for n in node.target.find_all(nodes.Name))
            if isinstance(node, nodes.Macro):
                self.locals.update(a.name for a in node.args)
            if isinstance(node, nodes.With):
                self.locals.update(t.name for t in node.targets if isinstance(t, nodes.Name))
            if isinstance(node, nodes.Import):
                self.locals.add(node.target)
                for const in [node.template, *node.template.find_all(nodes.Const)]:
                    if isinstance(const, nodes.Const):
                        self.macro_files[node.target] = str(const.value).lstrip("/").removeprefix(f"{self.locale}/")
            if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
                if isinstance(node.node, nodes.Dict):
                    self.dicts[node.target.name] = [str(p.key.value) for p in node.node.items if isinstance(p.key, nodes.Const)]
                else:
                    key = self.key(node.node)
                    if key is not None:
                        self.aliases[node.target.name] = key
        for node in tree.find_all(nodes.Compare):
            for operand in node.ops:
                if operand.op in ("eq", "ne") and isinstance(operand.expr, nodes.Const) and isinstance(operand.expr.value, str):
                    self.shape.add_enum(self.key(node.expr), [operand.expr.value])
                if operand.op in ("in", "notin") and isinstance(operand.expr, nodes.Tuple | nodes.List):
                    values = [c.value for c in operand.expr.items if isinstance(c, nodes.Const) and isinstance(c.value, str)]
                    self.shape.add_enum(self.key(node.expr), values)
        for call in tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Getattr) and call.args:
                receiver = call.node.node
                if call.node.attr == "get" and isinstance(receiver, nodes.Dict):
                    keys = [str(p.key.value) for p in receiver.items if isinstance(p.key, nodes.Const)]
                    self.shape.add_enum(self.key(call.args[0]), keys)
                elif call.node.attr == "get" and isinstance(receiver, nodes.Name) and receiver.name in self.dicts:
                    self.shape.add_enum(self.key(call.args[0]), self.dicts[receiver.name])
                elif isinstance(receiver, nodes.Name) and receiver.name in self.macro_files:
                    enum = samples.MACRO_ENUMS.get((self.macro_files[receiver.name], call.node.attr))
                    if enum:
                        self.shape.add_enum(self.key(call.args[0]), list(enum))
        for node in tree.find_all((nodes.If, nodes.CondExpr)):
            self.switch(node.test)
        for test in tree.find_all(nodes.Test):
            key = self.key(test.node)
            if test.name == "none" and key is not None:
                self.shape.nullable.add(key)
            if test.name == "defined" and isinstance(test.node, nodes.Name):
                self.shape.optional.add(test.node.name)
        for related in _RELATED.findall(source):
            self.read(related, seen)

    def switch(self, test: nodes.Node) -> None:
        key = self.key(test)
        if key is not None:
            self.shape.switches.add(key)
            return
        for child in test.iter_child_nodes():
            if isinstance(child, nodes.Expr):
                self.switch(child)

    def key(self, node: nodes.Node) -> Key | None:
        if isinstance(node, nodes.Filter) and node.node is not None:
            return self.key(node.node)
        if isinstance(node, nodes.Name):
            if node.name in self.aliases:
                return self.aliases[node.name]
            return None if node.name in self.locals else ("top", node.name)
        if isinstance(node, nodes.Getattr):
            return ("attr", node.attr)
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            return ("attr", str(node.arg.value))
        if (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and node.node.attr == "get"
            and node.args
            and isinstance(node.args[0], nodes.Const)
        ):
            return ("attr", str(node.args[0].value))
        return None


@cache
def _renderer() -> Renderer:
    return Renderer(default_locale="zh", base_url="https://shop.example", shop_name="果园小铺")


@cache
def _shape(name: str) -> Shape:
    shape = Shape()
    for locale in LOCALES:
        reader = _Reader(_renderer().env, locale)
        reader.read(name, set())
        for key, values in reader.shape.enums.items():
            shape.add_enum(key, values)
        shape.switches |= reader.shape.switches
        shape.nullable |= reader.shape.nullable
        shape.optional |= reader.shape.optional
        shape.names |= reader.shape.names
    return shape


# ---- sample values by name


class MissingSample(RuntimeError):
    """A template reads a name no sample answers (not a LookupError: Jinja would hide it)."""


class Impossible(RuntimeError):
    """A combination of values the code never sends (`D_BY_CODE` says which)."""


FALSY, NONE, ABSENT = object(), object(), object()


class Sampler:
    def __init__(self, template: str, shape: Shape, overrides: dict[Key, Any]) -> None:
        self.template, self.shape, self.overrides = template, shape, overrides

    def value(self, scope: str, name: str, *, parent: str | None = None, index: int = 0) -> Any:
        override = self.overrides.get((scope, name))
        if parent == "d":
            fixed = samples.D_BY_CODE.get(self.value("top", "code"), {}).get(name)
            if isinstance(fixed, tuple):
                if override is None:
                    return fixed[0]
                if isinstance(override, str) and override not in fixed:
                    raise Impossible(name)
            elif fixed is not None and override is None:
                return fixed
        if override is ABSENT or (override is NONE and scope == "attr"):
            raise KeyError(name)  # a field left out: `.get()` answers its default
        if override is NONE:
            return None
        if override is FALSY:
            return _falsy(self._default(scope, name, parent, index))
        if override is not None:
            return override
        return self._default(scope, name, parent, index)

    def _default(self, scope: str, name: str, parent: str | None, index: int) -> Any:
        per_template = samples.TEMPLATE_SAMPLES.get(self.template, {})
        enum = self.shape.enums.get((scope, name))
        if scope == "top" and name in per_template:
            raw = per_template[name]
        elif parent is not None and f"{parent}.{name}" in samples.NESTED:
            raw = samples.NESTED[f"{parent}.{name}"]
        elif enum:
            raw = enum[0]
        elif name == "number":
            raw = index + 1
        elif name in samples.TEXT:
            raw = samples.TEXT[name]
        elif name in samples.OTHER:
            raw = samples.OTHER[name]
        elif name in samples.LISTS:
            raw = "@list"
        elif name in samples.TIMES:
            raw = samples.WHEN
        elif name in samples.COUNTS:
            raw = 3 + index
        elif name in samples.MONEY or name.endswith("_fen"):
            raw = 3990 + 1000 * index
        else:
            raise MissingSample(f"no sample for {name!r} (in {self.template}): add one to template_samples.py")
        if raw == "@map":
            return LazyMap(self, name, index)
        if raw == "@list":
            return [LazyMap(self, name, i) for i in range(2)]
        return raw


def _falsy(value: Any) -> Any:
    if isinstance(value, list):
        return []
    if isinstance(value, str):
        return ""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0
    return None


class LazyMap(dict[str, Any]):
    """A view-data record whose fields are sampled by name when a template reads them."""

    def __init__(self, sampler: Sampler, name: str, index: int) -> None:
        super().__init__()  # underscored: Jinja reads a record's fields as attributes first
        self._sampler, self._name, self._index = sampler, name, index

    def __getitem__(self, key: str) -> Any:
        return self._sampler.value("attr", key, parent=self._name, index=self._index)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except LookupError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"⟨sample {self._name}⟩"


class LazyContext(dict[str, Any]):
    def __init__(self, sampler: Sampler, globals_: dict[str, Any], locale: str) -> None:
        super().__init__()
        self.sampler, self.globals_, self.locale = sampler, globals_, locale

    def __getitem__(self, key: str) -> Any:
        if key == "locale":
            return self.locale
        if key in self.globals_ and ("top", key) not in self.sampler.overrides:
            return self.globals_[key]
        return self.sampler.value("top", key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:  # an unknown name is undefined: StrictUndefined names it
            self[key]
        except (LookupError, MissingSample):
            return False
        return True


def _variants(shape: Shape) -> list[dict[Key, Any]]:
    singles: list[dict[Key, Any]] = [{}]
    for key, values in shape.enums.items():
        singles.extend({key: v} for v in values)
    singles.extend({key: FALSY} for key in sorted(shape.switches))
    singles.extend({key: NONE} for key in sorted(shape.nullable))
    singles.extend({("top", name): ABSENT} for name in sorted(shape.optional))
    # the value that picks the template's branch (an error code, a kind) with every other case
    primary = max(shape.enums.items(), key=lambda kv: len(kv[1]), default=None)
    if primary is None or len(primary[1]) < 3:
        return singles
    key, values = primary
    combined = [{key: v, **s} for v, s in itertools.product(values, singles) if key not in s]
    return singles + combined


def _render(env: jinja2.Environment, name: str, locale: str, sampler: Sampler) -> list[str]:
    template = env.get_template(f"{locale}/{name}.j2")
    context = LazyContext(sampler, dict(env.globals), locale)
    for top in sampler.shape.names:  # included templates see a copy of the context
        if top in context:
            dict.__setitem__(context, top, context[top])
    if template.blocks:
        parts = [template.blocks[b](template.new_context(context, shared=True)) for b in template.blocks]
    else:
        parts = [template.root_render_func(template.new_context(context, shared=True))]
    return ["".join(p).strip() for p in parts]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


_SAMPLE_TEXT = sorted(
    {str(v) for v in samples.TEXT.values()}
    | {"果园小铺", "https://shop.example", "水果", "茶叶", "葡萄", "price_yuan"},
    key=len,
    reverse=True,
)
_CJK = re.compile(r"[\u3400-\u9fff]")
_KEY = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
_WORD = re.compile(r"[A-Za-z]{2,}")
# words a Chinese reply keeps in English: units, formats, staff commands and their arguments
_ZH_ALLOWED = {"SKU", "CSV", "ID", "UTF", "GBK", "MB", "KB", "JPG", "PNG", "WebP", "GIF", "http", "https", "TA", "xx",
               "pingguo", "limit", "quota", "Excel", "EMS"}
# the line of help that points to the other language
_OTHER_LANGUAGE = ('English: reply "help" for instructions in English.', "中文：回复「帮助」查看中文说明。")
_CSV_HEADERS = ("sku_code,name,subtitle,category,price_yuan,stock,status,spec,description,images",
                "sku_code,name,subtitle,category,price_yuan,stock,status,spec")


def _problems(text: str, locale: str) -> list[str]:
    found = []
    for leak in ("{{", "}}", "{%", "%}", "{#", "None", "Undefined", "⟨sample", "True", "False"):
        if leak in text:
            found.append(f"leftover {leak!r}")
    # a file's columns, a setting, a command's words for roles
    bare = text
    for header in _CSV_HEADERS:
        bare = bare.replace(header, " ")
    bare = bare.replace("staff.owners", " ").replace("wechat.appsecret", " ").replace("owner/operator/service", " ")
    for hint in _OTHER_LANGUAGE:
        bare = bare.replace(hint, " ")
    bare = re.sub(r"https?://[^\s）)，]+", " ", bare)
    # staff commands: a usage line up to its description, a command and its arguments
    bare = re.sub(r"^/[^（\n]*", " ", bare, flags=re.MULTILINE)
    bare = re.sub(r"/[a-z]+(?: [\[\]A-Za-z0-9_|.-]+)*", " ", bare)
    for sample in _SAMPLE_TEXT:
        bare = bare.replace(sample, " ")
    keys = _KEY.findall(bare)
    if keys:
        found.append(f"untranslated keys {keys}")
    if locale == "zh":
        words = [w for w in _WORD.findall(bare) if w not in _ZH_ALLOWED]
        if words:
            found.append(f"English words in a Chinese reply {words}")
    elif _CJK.search(bare):
        found.append(f"Chinese in an English reply {_CJK.findall(bare)}")
    return found


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_template_reads_well(name: str, locale: str) -> None:
    trimmed = _renderer().env
    untrimmed = trimmed.overlay(trim_blocks=False)
    shape = _shape(name)
    failures: dict[str, set[str]] = {}
    for variant in _variants(shape):
        sampler = Sampler(name, shape, variant)
        try:
            texts = _render(trimmed, name, locale, sampler)
        except (jinja2.UndefinedError, TypeError, Impossible) as exc:
            if not variant:
                raise AssertionError(f"{locale}/{name}.j2: {exc} (a name with no sample? see template_samples.py)") from exc
            continue  # data the code never sends (an order without lines): not a reply
        for text, loose in zip(texts, _render(untrimmed, name, locale, sampler), strict=True):
            problems = _problems(text, locale)
            if _lines(text) != _lines(loose):
                problems.append("lines run together")
            for problem in problems:
                failures.setdefault(problem, set()).add(text)
    report = "\n\n".join(f"{problem}:\n" + "\n---\n".join(sorted(texts)[:2]) for problem, texts in failures.items())
    assert not failures, f"{locale}/{name}.j2\n{report}"


def test_the_check_catches_run_together_lines() -> None:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    source = "{% if more %}第 1 页，回复「下一页」看更多{% endif %}\n回复数字查看商品详情"
    loose = env.overlay(trim_blocks=False)
    assert _lines(env.from_string(source).render(more=True)) != _lines(loose.from_string(source).render(more=True))
    assert _problems("订单 pending_payment", "zh")
    assert _problems("Order 待支付", "en")
    assert _problems("收货人：None", "zh")


def test_samples_are_dates_where_templates_format_dates() -> None:
    assert isinstance(samples.WHEN, datetime)
    assert isinstance(samples.OTHER["start"], date)
