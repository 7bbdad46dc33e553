"""Catalog models (tables and their enums); `commerce.models` gathers every model for Alembic."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commerce.orm import Base, utcnow


class ProductStatus(enum.StrEnum):
    ON_SALE = "on_sale"
    OFF_SALE = "off_sale"



class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(64), default="")
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    products: Mapped[list[Product]] = relationship(back_populates="category")



product_tags = Table(
    "product_tags",
    Base.metadata,
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)



class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)



class Product(Base):
    __tablename__ = "products"
    __table_args__ = (Index("ix_products_status_sort", "status", "sort_order"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    subtitle: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ProductStatus.ON_SALE.value)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    sales_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # stamped by every catalog edit: the other workers poll for what moved (commerce.catalog.read)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True)

    category: Mapped[Category] = relationship(back_populates="products")
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", order_by="Variant.id", cascade="all, delete-orphan"
    )
    images: Mapped[list[ProductImage]] = relationship(
        order_by="ProductImage.position", cascade="all, delete-orphan"
    )
    tags: Mapped[list[Tag]] = relationship(secondary=product_tags, order_by="Tag.name")



class Variant(Base):
    """A SKU: its own price, stock and spec attributes (e.g. {"颜色": "红", "规格": "5斤"})."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    sku_code: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    low_stock_threshold: Mapped[int] = mapped_column(Integer, default=5)

    product: Mapped[Product] = relationship(back_populates="variants")



class ImageSource(enum.StrEnum):
    UPLOAD = "upload"  # sent by staff in chat: kept in the shop's media store
    EXTERNAL = "external"  # a URL given by a CSV import: shown as it is, never fetched
    GENERATED = "generated"  # the demo's drawn placeholder: the first real photo replaces it


class ProductImage(Base):
    """A product's picture; the lowest `position` is the one its card shows."""

    __tablename__ = "product_images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(500))  # the picture the product page shows
    position: Mapped[int] = mapped_column(Integer, default=0)
    # the smaller copy a product card shows; "" when there is none (the card shows `url`)
    thumb_url: Mapped[str] = mapped_column(String(500), default="", server_default="")
    source: Mapped[str] = mapped_column(String(16), default=ImageSource.EXTERNAL.value, server_default="external")
    # the media store's key of the file as staff sent it (metadata and all): never linked, kept
    # to make other sizes from later; "" for external and generated pictures
    original_key: Mapped[str] = mapped_column(String(100), default="", server_default="")



class SearchSynonym(Base):
    """A shop's own word for what it sells ("提子" means "巨峰葡萄"): searches read `means`."""

    __tablename__ = "search_synonyms"

    word: Mapped[str] = mapped_column(String(32), primary_key=True)
    means: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FaqAnswer(Base):
    """A shop question staff answer themselves: a message with `keyword` in it gets `answer`."""

    __tablename__ = "faq_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    keyword: Mapped[str] = mapped_column(String(32), unique=True)
    answer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
