"""Product pictures: kept in the media store, attached to products in order, cleared.

`store_picture` is the slow half and touches no database: it checks and sizes what staff
sent (`commerce.media.pictures`, in a thread) and writes the original, the picture and the
thumbnail to the media store. `attach_picture` is the quick half, inside a unit of work: it
adds the stored picture last on the product (the first one is the card's), and returns a
`Change` for the audit log. A drawn placeholder (the demo's) gives way to the first real
photo. Every change stamps the product and publishes `CatalogChanged`, so cards show it at
once (`commerce.catalog.read`). Nothing here commits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commerce.catalog.admin import touch_product
from commerce.catalog.models import ImageSource, Product, ProductImage
from commerce.errors import ErrorCode, ShopError
from commerce.media.pictures import prepare_picture
from commerce.media.store import MediaStore, content_key
from commerce.staff.audit import Change

MAX_IMAGES = 9  # a product's pictures, as many as a WeChat Moments post


@dataclass(frozen=True, slots=True)
class StoredPicture:
    url: str  # the picture (product page)
    thumb_url: str  # its thumbnail (product card)
    original_key: str  # the file as sent, kept in the store, never linked
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Attached:
    number: int  # its place among the product's pictures, from 1 (1: the card's)
    count: int  # the product's pictures now
    already: bool  # the product had this very picture: nothing changed
    change: Change


async def store_picture(media: MediaStore, data: bytes, *, max_bytes: int) -> StoredPicture:
    """Check, size and keep a picture staff sent; IMAGE_INVALID (details: reason) when it is
    not one. Files are named by their content: sending the same picture again stores nothing new."""
    prepared = await asyncio.to_thread(prepare_picture, data, max_bytes=max_bytes)
    keys = []
    for encoded in (prepared.original, prepared.picture, prepared.thumb):
        key = content_key(encoded.data, encoded.ext)
        await media.put(key, encoded.data)
        keys.append(key)
    original, picture, thumb = keys
    return StoredPicture(
        url=media.url(picture), thumb_url=media.url(thumb), original_key=original,
        width=prepared.width, height=prepared.height,
    )


def _snapshot(product: Product, images: list[ProductImage]) -> dict[str, Any]:
    return {"id": product.id, "name": product.name, "images": [i.url for i in images]}


async def _product_and_images(session: AsyncSession, product_id: int) -> tuple[Product, list[ProductImage]]:
    # the product's row locked: two pictures sent at once get places one after the other
    product = await session.scalar(select(Product).where(Product.id == product_id).with_for_update())
    if product is None:
        raise ShopError(ErrorCode.PRODUCT_NOT_FOUND, product_id=product_id)
    images = list(
        (
            await session.scalars(
                select(ProductImage)
                .where(ProductImage.product_id == product_id)
                .order_by(ProductImage.position, ProductImage.id)
            )
        ).all()
    )
    return product, images


async def check_room(session: AsyncSession, *, product_id: int) -> int:
    """How many pictures the product has (its placeholders aside); PRODUCT_NOT_FOUND, or
    IMAGE_LIMIT when it may take no more: asked before a picture is fetched at all."""
    if await session.scalar(select(Product.id).where(Product.id == product_id)) is None:
        raise ShopError(ErrorCode.PRODUCT_NOT_FOUND, product_id=product_id)
    count = await session.scalar(
        select(func.count()).select_from(ProductImage).where(
            ProductImage.product_id == product_id, ProductImage.source != ImageSource.GENERATED.value
        )
    ) or 0
    if count >= MAX_IMAGES:
        raise ShopError(ErrorCode.IMAGE_LIMIT, max=MAX_IMAGES, product_id=product_id)
    return count


async def attach_picture(session: AsyncSession, *, product_id: int, picture: StoredPicture) -> Attached:
    """Add `picture` last on the product; PRODUCT_NOT_FOUND, IMAGE_LIMIT (details: max).

    A picture the product has already is not added twice (`Attached.already`). The product's
    drawn placeholders (`ImageSource.GENERATED`) are removed: a real photo takes their place."""
    product, images = await _product_and_images(session, product_id)
    before = _snapshot(product, images)
    for number, image in enumerate(images, 1):
        if image.url == picture.url:
            return Attached(number=number, count=len(images), already=True, change=(before, before))
    placeholders = [i for i in images if i.source == ImageSource.GENERATED.value]
    for image in placeholders:
        await session.delete(image)
    kept = [i for i in images if i not in placeholders]
    if len(kept) >= MAX_IMAGES:
        raise ShopError(ErrorCode.IMAGE_LIMIT, max=MAX_IMAGES, product_id=product_id)
    added = ProductImage(
        product_id=product_id,
        url=picture.url,
        thumb_url=picture.thumb_url,
        original_key=picture.original_key,
        source=ImageSource.UPLOAD.value,
        position=(kept[-1].position + 1) if kept else 0,
    )
    session.add(added)
    await session.flush()
    await touch_product(session, product_id)
    after = _snapshot(product, [*kept, added])
    return Attached(number=len(kept) + 1, count=len(kept) + 1, already=False, change=(before, after))


async def clear_pictures(session: AsyncSession, *, product_id: int) -> Change:
    """Remove every picture of the product (the files stay in the store: other products or
    placed orders' links may show them); PRODUCT_NOT_FOUND."""
    product, images = await _product_and_images(session, product_id)
    before = _snapshot(product, images)
    await session.execute(delete(ProductImage).where(ProductImage.product_id == product_id))
    await touch_product(session, product_id)
    return before, _snapshot(product, [])
