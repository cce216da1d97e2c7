"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from sqlalchemy import Dialect, LargeBinary, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from myapp.processing import UtcDateTime

__all__ = ["EMBEDDING_DTYPE", "Embedding", "ExactDecimal", "Float32Vector", "UtcDateTime"]

MONEY_PRECISION = 18
MONEY_SCALE = 4
# Little-endian float32, whatever the machine: the bytes are the storage format.
EMBEDDING_DTYPE = np.dtype("<f4")

Embedding: TypeAlias = npt.NDArray[np.float32]


class ExactDecimal(TypeDecorator[Decimal]):
    """NUMERIC(18, 4) on PostgreSQL; exact decimal text on SQLite.

    SQLite's NUMERIC affinity turns values into 8-byte floats (15 significant digits), so there
    the decimal is kept as its string, which round-trips exactly.
    """

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(MONEY_PRECISION + 2))
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = Decimal(value).quantize(Decimal(1).scaleb(-MONEY_SCALE))
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class Float32Vector(TypeDecorator[Embedding]):
    """An embedding: a 1-D float32 numpy array, stored as raw little-endian bytes (BLOB / BYTEA).

    Any sequence of floats is accepted when writing; reads return a read-only float32 array.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(
        self, value: Embedding | Sequence[float] | None, dialect: Dialect
    ) -> bytes | None:
        if value is None:
            return None
        array = np.asarray(value, dtype=EMBEDDING_DTYPE)
        if array.ndim != 1:
            raise ValueError(f"an embedding is a 1-D vector, got shape {array.shape}")
        return array.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> Embedding | None:
        if value is None:
            return None
        return np.frombuffer(bytes(value), dtype=EMBEDDING_DTYPE)

    def compare_values(self, x: Any, y: Any) -> bool:
        # numpy's == is element-wise; the ORM needs one answer.
        if x is None or y is None:
            return x is y
        return bool(np.array_equal(np.asarray(x), np.asarray(y)))
