"""Pictures staff send: checked, turned upright, stripped of EXIF, sized; bad ones refused."""

from __future__ import annotations

import pytest

from commerce.errors import ErrorCode, ShopError
from commerce.media.pictures import (
    MAX_PIXELS,
    PICTURE_SIDE,
    THUMB_SIDE,
    demo_picture,
    prepare_picture,
)
from tests.commerce.media.pictures import (
    BLUE,
    GPS_IFD,
    ORIENTATION,
    RED,
    gif_claiming,
    logo,
    opened,
    photo,
)

MB = 1024 * 1024


def _near(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) < 40 for a, b in zip(pixel[:3], colour, strict=True))


def test_a_sideways_phone_photo_is_turned_upright_and_its_exif_is_gone() -> None:
    sent = photo((120, 80), orientation=6, gps=True)  # stored 120x80, shown turned clockwise
    prepared = prepare_picture(sent, max_bytes=MB)
    assert prepared.original.data == sent and prepared.original.ext == "jpg"  # kept as it came
    for encoded in (prepared.picture, prepared.thumb):
        image = opened(encoded.data)
        assert encoded.ext == "jpg" and image.size == (80, 120)
        # turned clockwise: what was the left (red) is now on top, the right (blue) below
        assert _near(image.getpixel((40, 10)), RED) and _near(image.getpixel((40, 110)), BLUE)
        exif = image.getexif()
        assert ORIENTATION not in exif and GPS_IFD not in exif  # nothing left to turn twice, no position
    assert (prepared.width, prepared.height) == (80, 120)


@pytest.mark.parametrize("orientation", [1, 3, 8])
def test_every_orientation_is_applied_once(orientation: int) -> None:
    image = opened(prepare_picture(photo((120, 80), orientation=orientation), max_bytes=MB).picture.data)
    if orientation == 1:
        assert image.size == (120, 80) and _near(image.getpixel((10, 40)), RED)
    elif orientation == 3:  # upside down: the red half is on the right
        assert image.size == (120, 80) and _near(image.getpixel((110, 40)), RED)
    else:  # 8: turned anticlockwise: red at the bottom
        assert image.size == (80, 120) and _near(image.getpixel((40, 110)), RED)


def test_a_large_photo_is_sized_down_for_the_page_and_the_card() -> None:
    prepared = prepare_picture(photo((4000, 3000)), max_bytes=10 * MB)
    assert opened(prepared.picture.data).size == (PICTURE_SIDE, PICTURE_SIDE * 3 // 4)
    assert opened(prepared.thumb.data).size == (THUMB_SIDE, THUMB_SIDE * 3 // 4)
    assert len(prepared.thumb.data) < len(prepared.picture.data)


def test_a_logo_keeps_its_transparency_and_an_opaque_png_becomes_a_jpeg() -> None:
    see_through = prepare_picture(logo(), max_bytes=MB)
    assert see_through.picture.ext == "png" and opened(see_through.picture.data).mode == "RGBA"
    assert opened(see_through.picture.data).getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert prepare_picture(logo(see_through=False), max_bytes=MB).picture.ext == "jpg"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_png_webp_and_gif_are_taken(fmt: str) -> None:
    prepared = prepare_picture(photo(fmt=fmt), max_bytes=MB)
    assert prepared.original.ext == {"PNG": "png", "WEBP": "webp", "GIF": "gif"}[fmt]
    assert opened(prepared.thumb.data).size == (120, 80)


def _reason(data: bytes, *, max_bytes: int = MB) -> str:
    with pytest.raises(ShopError) as caught:
        prepare_picture(data, max_bytes=max_bytes)
    assert caught.value.code == ErrorCode.IMAGE_INVALID
    return str(caught.value.details["reason"])


@pytest.mark.parametrize(
    "data",
    [
        b"this is not a picture",
        b"%PDF-1.4\n" + b"0" * 100,
        b"\xff\xd8\xff\xe0" + b"\x00" * 50,  # a JPEG header and nothing that decodes
        photo()[:200],  # a photo cut short
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
)
def test_what_is_not_a_usable_picture_is_refused(data: bytes) -> None:
    assert _reason(data) == "not_image"


def test_empty_and_too_large_are_refused_with_their_reason() -> None:
    assert _reason(b"") == "empty"
    assert _reason(photo(), max_bytes=100) == "too_large"


@pytest.mark.parametrize(("width", "height"), [(9000, 9000), (30000, 30000)])
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(width: int, height: int) -> None:
    assert width * height > MAX_PIXELS
    assert _reason(gif_claiming(width, height)) == "too_many_pixels"


def test_demo_pictures_are_the_same_every_time_and_differ_by_product() -> None:
    apple = demo_picture(name="烟台红富士苹果", colour="#d94a38")
    assert apple == demo_picture(name="烟台红富士苹果", colour="#d94a38")
    assert apple != demo_picture(name="阿克苏冰糖心苹果", colour="#d94a38")
    assert apple != demo_picture(name="烟台红富士苹果", colour="#c8553d")
    image = opened(apple)
    assert image.format == "PNG" and _near(image.getpixel((5, 250)), (217, 74, 56))
