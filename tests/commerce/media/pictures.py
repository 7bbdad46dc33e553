"""Pictures for the tests, made with Pillow: photos with an EXIF orientation, logos, fakes."""

from __future__ import annotations

import io

from PIL import Image

ORIENTATION = 0x0112
GPS_IFD = 0x8825
RED, BLUE = (220, 30, 30), (30, 30, 220)


def photo(
    size: tuple[int, int] = (120, 80), *, orientation: int | None = None, gps: bool = False, fmt: str = "JPEG"
) -> bytes:
    """A photo as a phone stores it: left half red, right half blue; with `orientation`
    (EXIF 6: "turn me 90 degrees clockwise to show me") and a GPS position when asked."""
    width, height = size
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    exif = image.getexif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (31.0, 14.0, 0.0), 3: "E", 4: (121.0, 28.0, 0.0)}
    out = io.BytesIO()
    image.save(out, fmt, exif=exif)
    return out.getvalue()


def logo(*, see_through: bool = True) -> bytes:
    """A PNG with a transparent background (or one fully opaque)."""
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0 if see_through else 255))
    image.paste((255, 200, 0, 255), (16, 16, 48, 48))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def gif_claiming(width: int, height: int) -> bytes:
    """A tiny GIF whose header claims `width` x `height` pixels (what a decompression bomb does)."""
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, "GIF")
    data = bytearray(out.getvalue())
    data[6:10] = width.to_bytes(2, "little") + height.to_bytes(2, "little")  # the logical screen
    start = data.index(b",")  # the image descriptor
    data[start + 5 : start + 9] = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return bytes(data)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
