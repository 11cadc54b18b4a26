"""Request bodies the gateway accepts; invalid ones are refused with 422 before anything is written."""

from __future__ import annotations

from pydantic import Field, field_validator

from streams.models import Frozen, Identifier, Money


class ProductRequest(Frozen):
    sku: Identifier
    name: str = Field(min_length=1, max_length=200)
    price: Money


class AdjustmentRequest(Frozen):
    delta: int = Field(ge=-1_000_000, le=1_000_000)
    reason: str = Field(min_length=1, max_length=200)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("delta must not be 0")
        return delta


class OrderLineRequest(Frozen):
    sku: Identifier
    quantity: int = Field(ge=1, le=10_000)


class OrderRequest(Frozen):
    lines: tuple[OrderLineRequest, ...] = Field(min_length=1, max_length=100)

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: tuple[OrderLineRequest, ...]) -> tuple[OrderLineRequest, ...]:
        skus = [line.sku for line in lines]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise ValueError(f"each SKU may appear on one line only: {', '.join(duplicates)}")
        return lines
