"""Pictures made fit to show: checked, turned upright, stripped of their metadata, sized.

`prepare_picture` takes the bytes staff sent and gives three files: the original as it
came (kept, never linked: it may carry where the photo was taken), the picture a product
page shows (at most `PICTURE_SIDE` pixels a side) and the thumbnail a product card shows
(at most `THUMB_SIDE`). Both are drawn upright from the EXIF Orientation tag (a phone
photo is stored sideways with a tag saying so, which not every viewer reads) and written
without EXIF at all: no orientation left to apply twice, no GPS position. A picture with
see-through parts stays a PNG, any other becomes a JPEG.

Anything that is not a JPEG, PNG, WebP or GIF, is cut short, is larger than the limit in
bytes or decodes to more than `MAX_PIXELS` (a few hundred bytes can claim a picture of
gigabytes) is refused with IMAGE_INVALID before it is decoded.

`demo_picture` draws the demo catalog's placeholder for one product. Pure CPU work: the
callers run it in a thread.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from pypinyin import lazy_pinyin

from commerce.errors import ErrorCode, ShopError

FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
PICTURE_SIDE = 1600
THUMB_SIDE = 720  # a card is at most ~360 points wide: sharp on a 2x screen
MAX_PIXELS = 60_000_000  # a 48-megapixel phone photo fits
JPEG_QUALITY = 85
DEMO_SIZE = (900, 500)  # the proportions of a one-article card's picture


@dataclass(frozen=True, slots=True)
class Encoded:
    data: bytes
    ext: str  # jpg, png, webp or gif (`commerce.media.store.CONTENT_TYPES`)


@dataclass(frozen=True, slots=True)
class PreparedPicture:
    original: Encoded
    picture: Encoded
    thumb: Encoded
    width: int  # the picture's, upright
    height: int


def _invalid(reason: str, **details: object) -> ShopError:
    return ShopError(ErrorCode.IMAGE_INVALID, reason=reason, **details)


def prepare_picture(data: bytes, *, max_bytes: int) -> PreparedPicture:
    """The three files of a picture staff sent (see the module); IMAGE_INVALID (details:
    reason = empty | too_large | not_image | too_many_pixels)."""
    if not data:
        raise _invalid("empty")
    if len(data) > max_bytes:
        raise _invalid("too_large", max_bytes=max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                ext = FORMATS.get(image.format or "")
                if ext is None:
                    raise _invalid("not_image")
                width, height = image.size
                if width * height > MAX_PIXELS or width < 1 or height < 1:
                    raise _invalid("too_many_pixels", max_pixels=MAX_PIXELS)
                image.seek(0)  # an animation: its first frame
                image.draft("RGB", (PICTURE_SIDE, PICTURE_SIDE))  # a large JPEG decodes at a fraction
                image.load()  # a file cut short fails here, not while it is shown
                upright = _flattened(ImageOps.exif_transpose(image))
    except ShopError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's own limit
        raise _invalid("too_many_pixels", max_pixels=MAX_PIXELS) from None
    except UnidentifiedImageError:
        raise _invalid("not_image") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError):
        raise _invalid("not_image") from None  # what Pillow's decoders raise on broken data
    picture = _fitted(upright, PICTURE_SIDE)
    thumb = _fitted(picture, THUMB_SIDE)
    return PreparedPicture(
        original=Encoded(data, ext),
        picture=_encoded(picture),
        thumb=_encoded(thumb),
        width=picture.width,
        height=picture.height,
    )


def _flattened(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when something in it is see-through (a logo on nothing)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = rgba.getchannel("A").getextrema()  # (lowest, highest) of one band
        if isinstance(alpha, tuple) and alpha[0] != 255:
            return rgba
    return image.convert("RGB")


def _fitted(image: Image.Image, side: int) -> Image.Image:
    if max(image.size) <= side:
        return image
    fitted = image.copy()
    fitted.thumbnail((side, side), Image.Resampling.LANCZOS)
    return fitted


def _encoded(image: Image.Image) -> Encoded:
    out = io.BytesIO()
    if image.mode == "RGBA":
        image.save(out, "PNG", optimize=True)
        return Encoded(out.getvalue(), "png")
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return Encoded(out.getvalue(), "jpg")


# ---- the demo catalog's placeholders ---------------------------------------------------------

# Fonts with Chinese characters where systems usually keep them (Debian/Ubuntu, Fedora, Arch,
# macOS, Windows); without one the picture shows the name in pinyin.
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


def cjk_font_path() -> Path | None:
    return next((Path(p) for p in CJK_FONTS if Path(p).is_file()), None)


def demo_picture(*, name: str, colour: str, font: Path | None = None) -> bytes:
    """A PNG of `DEMO_SIZE` for a demo product: its colour ("#d94a38"), its first character
    large in a circle and its name below (in pinyin when `font`, one with Chinese
    characters, is None). The same arguments give the same bytes."""
    red, green, blue = ImageColor.getrgb(colour)[:3]
    base = (red, green, blue)
    width, height = DEMO_SIZE
    image = Image.new("RGB", DEMO_SIZE, base)
    draw = ImageDraw.Draw(image)
    light, dark = _mix(base, (255, 255, 255), 0.18), _mix(base, (0, 0, 0), 0.12)
    for y in range(height):  # a soft light from the top
        draw.line([(0, y), (width, y)], fill=_mix(light, dark, y / (height - 1)))
    radius = 150
    centre = (width // 2, height // 2 - 35)
    draw.ellipse(
        [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius],
        fill=_mix(base, (255, 255, 255), 0.82),
    )
    big: ImageFont.FreeTypeFont | ImageFont.ImageFont
    small: ImageFont.FreeTypeFont | ImageFont.ImageFont
    if font is not None:
        glyph, label = name.strip()[:1], name.strip()
        big, small = ImageFont.truetype(str(font), 170), ImageFont.truetype(str(font), 40)
    else:
        syllables = [s for s in lazy_pinyin(name.strip()) if s.strip()]
        glyph = "".join(s[0] for s in syllables[:2]).upper() or "?"
        label = " ".join(syllables)
        big, small = ImageFont.load_default(size=150), ImageFont.load_default(size=36)
    draw.text(centre, glyph, font=big, fill=_mix(base, (0, 0, 0), 0.25), anchor="mm")
    label = _clipped(draw, label, small, width - 80)
    draw.text((width // 2, height - 48), label, font=small, fill=(255, 255, 255), anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG")  # optimize=True: 7% smaller, 2.5 times as long (a demo seeds 72)
    return out.getvalue()


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], share: float) -> tuple[int, int, int]:
    return (
        round(a[0] + (b[0] - a[0]) * share),
        round(a[1] + (b[1] - a[1]) * share),
        round(a[2] + (b[2] - a[2]) * share),
    )


def _clipped(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…"
    return text
