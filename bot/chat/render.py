"""Turn replies into words (jinja2 templates per locale) and words into WeChat XML."""

from __future__ import annotations

import contextlib
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from wechatpy.replies import ArticlesReply, TextReply, TransferCustomerServiceReply

import templates
from bot.chat.replies import Card, News, Reply, Silence, Text, TransferToHuman
from commerce.money import format_yuan

MESSAGES_DIR = Path(templates.__file__).parent / "messages"
LOCALES = ("zh", "en")
TEXT_LIMIT_BYTES = 2000  # WeChat truncates text replies past 2048 bytes
TITLE_LIMIT = 64
DESCRIPTION_LIMIT = 240


NEWS_SHOWN_COLUMNS = 108
"""What WeChat shows of a one-article news card's description on a phone: about two lines,
~54 Chinese characters. Counted in columns: a Chinese character (or emoji) takes two, a
Latin letter, digit or space one, a line break two; the rest is cut with "…". The card's
words are written to fit (templates/messages/*/product_card.j2)."""


def _columns(ch: str) -> int:
    if ch == "\n":
        return 2
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def news_preview(description: str, columns: int = NEWS_SHOWN_COLUMNS) -> str:
    """`description` as a one-article news card shows it: whole, or cut with "…"."""
    text = description.strip()
    if sum(_columns(ch) for ch in text) <= columns:
        return text
    used, kept = 0, []
    for ch in text:
        used += _columns(ch)
        if used > columns - 2:  # room for the "…"
            break
        kept.append(ch)
    return "".join(kept).rstrip() + "…"


def _shown_whole(text: str) -> bool:
    """Whether a news card shows this description whole (its blank lines aside)."""
    lines = "\n".join(line.strip() for line in text.splitlines() if line.strip())
    return news_preview(lines) == lines


def yuan(fen: int) -> str:
    """Integer fen as a price: 3990 -> "¥39.90", -100 -> "-¥1.00" (`commerce.money`)."""
    return format_yuan(fen, symbol="¥")


# Characters XML 1.0 cannot carry at all, CDATA or not: a reply holding one (a control
# character a customer typed, echoed back) is no XML, and WeChat drops it.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def cdata_safe(text: str) -> str:
    """Text that cannot end a CDATA section early (user input is echoed in replies) and
    holds only characters XML can carry."""
    return _NOT_XML.sub("", text).replace("]]>", "]] >")


def clip_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode("utf-8", errors="ignore") + "…"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class RenderedArticle:
    title: str
    description: str
    picurl: str
    url: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A reply in words: `kind` is text, news, transfer or silence."""

    kind: str
    text: str = ""
    articles: tuple[RenderedArticle, ...] = ()


class _CompiledOnce(jinja2.FileSystemBytecodeCache):
    """Templates compiled once, not once per Renderer (app) and worker.

    Compiling a template is lexing, parsing and generating Python: the large ones (the error
    replies) took about 50 ms each, on the event loop, the first time each worker used them,
    so a flash sale's first refusal paid it in the middle of the rush; all 596 take about
    0.7 s. The compiled code goes to jinja's file cache in the system's temporary directory
    (private to this user), where the other workers, the next start and the tests' other
    apps and processes read it; `precompile` fills it before workers start. Each
    environment keeps what it loaded, as it always did.

    Jinja checks each entry against the template's source (its checksum) and the Python
    version, so an edited template is compiled anew; a damaged entry is compiled again, and
    a disk that takes nothing only costs the compiling. The code also depends on the
    environment's options: every Renderer builds its environment with the same ones
    (`Renderer.__init__`, the one place that makes one)."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable or damaged (a truncated pickle, bad marshal data)
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):  # a full or read-only disk: compiled, not kept
            super().dump_bytecode(bucket)


def _compiled_once() -> _CompiledOnce | None:
    try:
        return _CompiledOnce()
    except RuntimeError:  # no private temporary directory to be had: compiled per environment
        return None


_COMPILED = _compiled_once()


def precompile(directory: Path = MESSAGES_DIR) -> int:
    """Compile every message template into the cache (`_CompiledOnce`) unless it is there
    already; how many templates. Run by `storefront serve` before its workers start, so that
    none of them compiles on its event loop."""
    env = Renderer(default_locale=LOCALES[0], base_url="", shop_name="", directory=directory).env
    names = [str(path.relative_to(directory)) for path in sorted(directory.rglob("*.j2"))]
    for name in names:
        env.get_template(name)
    return len(names)


class Renderer:
    def __init__(
        self,
        *,
        default_locale: str,
        base_url: str,
        shop_name: str,
        timezone: str = "Asia/Shanghai",
        directory: Path = MESSAGES_DIR,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        few_left_below: int = 10,
    ) -> None:
        self.default_locale = default_locale
        self._clock = clock
        self.timezone = ZoneInfo(timezone)
        self.shop_context = {"name": shop_name, "base_url": base_url.rstrip("/")}
        self.base_url = base_url.rstrip("/")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
            auto_reload=False,  # templates ship with the code: no stat() per render
            bytecode_cache=_COMPILED,  # compiled once (`_CompiledOnce`)
        )
        self._templates: dict[tuple[str, str], jinja2.Template] = {}
        self.env.filters["yuan"] = yuan
        self.env.filters["clip"] = clip
        self.env.tests["shown_whole"] = _shown_whole
        self.env.filters["hm"] = lambda when: self._local(when).strftime("%H:%M")
        self.env.filters["mdhm"] = self._month_day_time
        # customers see stock as "有货", or "仅剩 N 件" below this (the macros' `stock_left`)
        self.env.globals["few_left_below"] = few_left_below

    def _month_day_time(self, when: datetime) -> str:
        """"12-04 18:35" within this year (in the shop's time zone), "2027-01-04 18:35" in another."""
        local = self._local(when)
        if local.year == self._local(self._clock()).year:
            return local.strftime("%m-%d %H:%M")
        return local.strftime("%Y-%m-%d %H:%M")

    def _local(self, when: datetime) -> datetime:
        """An aware (or naive UTC) datetime in the shop's time zone."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(self.timezone)

    def _template(self, name: str, locale: str) -> jinja2.Template:
        locale = locale if locale in LOCALES else self.default_locale
        template = self._templates.get((name, locale))
        if template is None:  # names come from code, so this stays small
            template = self.env.get_template(f"{locale}/{name}.j2")
            self._templates[name, locale] = template
        return template

    def text(self, name: str, locale: str, data: dict | None = None) -> str:
        locale = locale if locale in LOCALES else self.default_locale
        context = {"shop": self.shop_context, "locale": locale, **(data or {})}
        return self._template(name, locale).render(context).strip()

    def _block(self, template: jinja2.Template, block: str, data: dict) -> str:
        context = template.new_context({"shop": self.shop_context, **data})
        return "".join(template.blocks[block](context)).strip()

    def absolute(self, url: str) -> str:
        if not url or url.startswith(("http://", "https://")):
            return url
        return f"{self.base_url}/{url.lstrip('/')}"

    def message(self, name: str, locale: str, data: dict) -> Rendered:
        """A notification: a text, or a news card when the template defines `title` and
        `description` blocks (its optional `url` and `picurl` blocks give the link and the
        picture), e.g. an invite to forward."""
        template = self._template(name, locale)
        if "title" not in template.blocks:
            return self.render(Text(name, data), locale)
        url, picurl = (
            self._block(template, block, data) if block in template.blocks else ""
            for block in ("url", "picurl")
        )
        return self.render(News((Card(name, data, picurl=picurl, url=url),)), locale)

    def render(self, reply: Reply, locale: str) -> Rendered:
        if isinstance(reply, Text):
            lines = [self.text(n.template, locale, n.data) for n in reply.notices]
            lines.append(self.text(reply.template, locale, reply.data))
            return Rendered("text", text=clip_bytes(cdata_safe("\n\n".join(lines)), TEXT_LIMIT_BYTES))
        if isinstance(reply, News):
            return Rendered("news", articles=tuple(self._article(c, locale) for c in reply.cards[:8]))
        if isinstance(reply, TransferToHuman):
            return Rendered("transfer")
        if isinstance(reply, Silence):
            return Rendered("silence")
        raise TypeError(f"not a reply: {reply!r}")

    def _article(self, card: Card, locale: str) -> RenderedArticle:
        template = self._template(card.template, locale)
        return RenderedArticle(
            title=cdata_safe(clip(self._block(template, "title", card.data), TITLE_LIMIT)),
            description=cdata_safe(clip(self._block(template, "description", card.data), DESCRIPTION_LIMIT)),
            picurl=self.absolute(card.picurl),
            url=self.absolute(card.url),
        )


def to_xml(rendered: Rendered, *, openid: str, account: str) -> str | None:
    """The passive-reply XML for WeChat, or None when the answer is plain "success"."""
    common = {"target": openid, "source": account, "time": int(time.time())}
    if rendered.kind == "text":
        return TextReply(content=rendered.text, **common).render()
    if rendered.kind == "news":
        reply = ArticlesReply(**common)
        for article in rendered.articles:
            reply.add_article(
                {
                    "title": article.title,
                    "description": article.description,
                    "image": article.picurl,
                    "url": article.url,
                }
            )
        return reply.render()
    if rendered.kind == "transfer":
        return TransferCustomerServiceReply(**common).render()
    return None
