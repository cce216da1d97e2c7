"""Shein pages in the real pages' shape, built in code: ~1 MB of scripts and CSS around one
`var gbRawData = {...};`, both item forms, several orders, and the bad variants.

`FixtureOrder`/`FixtureItem` hold the truth the staging rows are compared against.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

DEFAULT_PAGE_BYTES = 1_000_000
ASSIGNMENT = "var gbRawData = "


@dataclass(frozen=True)
class FixtureItem:
    goods_sn: str
    name: str
    quantity: int
    unit_price: str  # as the page writes it: "132.50"
    goods_id: str
    url_name: str
    attributes: tuple[tuple[str, str], ...] = (("Color", "Multicolor"), ("Size", "M"))
    nested: bool = True  # current pages nest the product; older ones are flat

    @property
    def description(self) -> str:
        return ", ".join(f"{name}: {value}" for name, value in self.attributes)

    def as_json(self) -> dict[str, Any]:
        attrs = [
            {"attr_id": 27, "attr_name": name, "attr_value_id": 1000 + i, "attr_value_name": value}
            for i, (name, value) in enumerate(self.attributes)
        ]
        common = {
            "goods_id": self.goods_id,
            "sku_attrs_contact_str": " / ".join(value for _, value in self.attributes),
            "sku_sale_attr": attrs,
            "is_review": 0,
        }
        if self.nested:
            return common | {
                "quantity": str(self.quantity),
                "unitPrice": {
                    "amount": self.unit_price,
                    "amountWithSymbol": f"R{self.unit_price}",
                    "usdAmount": "7.10",
                },
                "product": {
                    "goods_name": self.name,
                    "goods_sn": self.goods_sn,
                    "goods_url_name": self.url_name,
                    "goods_img": f"//img.ltwebstatic.com/images3_pi/{self.goods_sn}.jpg",
                    "cat_id": "1727",
                },
            }
        return common | {
            "goods_name": self.name,
            "goods_sn": self.goods_sn,
            "goods_qty": self.quantity,
            "goods_unit_price": self.unit_price,
            "goods_url_name": self.url_name,
        }


@dataclass(frozen=True)
class FixtureOrder:
    billno: str
    add_time: int
    items: tuple[FixtureItem, ...]
    pay_time: str | None = None
    extra_info: dict[str, Any] = field(default_factory=dict)

    @property
    def order_date(self) -> datetime:
        return datetime.fromtimestamp(self.add_time, UTC)

    @property
    def total(self) -> Decimal:
        return sum((Decimal(i.unit_price) * i.quantity for i in self.items), Decimal(0))

    def list_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "billno": self.billno,
            "addTime": self.add_time,
            "totalPrice": f"R{self.total}",
            "orderStatus": "5",
            "orderGoodsList": [
                {"goods_id": i.goods_id, "goods_img": "//img.ltwebstatic.com/x.jpg"}
                for i in self.items
            ],
        }
        if self.pay_time is not None:
            entry["pay_time"] = self.pay_time
        return entry

    def detail_info(self) -> dict[str, Any]:
        return {
            "billno": self.billno,
            "addTime": str(self.add_time),
            "pay_time": self.pay_time,
            "totalPrice": {
                "amount": str(self.total),
                "amountWithSymbol": f"R{self.total}",
                "usdAmount": "7.10",
            },
            "currency_code": "ZAR",
            "payment_method": "card",
            "orderGoodsList": [item.as_json() for item in self.items],
        } | self.extra_info


def sample_orders(count: int = 3, *, prefix: str = "GSH") -> list[FixtureOrder]:
    """Orders with both item forms, several items each, distinct numbers."""
    orders = []
    for n in range(count):
        items = tuple(
            FixtureItem(
                goods_sn=f"sw{n:04d}{k:02d}",
                name=f"Floral Print Dress {n}-{k}",
                quantity=k + 1,
                unit_price=f"{100 + n}.{k}9",
                goods_id=str(10_000_000 + n * 10 + k),
                url_name=f"Floral Print Dress {n} {k}",
                attributes=(("Color", "Multicolor"), ("Size", "SML"[k % 3])),
                nested=(n + k) % 2 == 0,
            )
            for k in range(1 + n % 3)
        )
        orders.append(
            FixtureOrder(
                billno=f"{prefix}{n:06d}ZA",
                add_time=1_700_000_000 + n * 86_400,
                pay_time=str(1_700_000_100 + n * 86_400) if n % 2 else None,
                items=items,
            )
        )
    return orders


def list_data(orders: list[FixtureOrder]) -> dict[str, Any]:
    return {"order_list": [o.list_entry() for o in orders], "page": 1, "total": len(orders)}


def detail_data(order: FixtureOrder) -> dict[str, Any]:
    return {"orderInfo": order.detail_info(), "showReturn": True}


def shein_page(
    gb_raw_data: dict[str, Any] | str | None,
    *,
    size: int = DEFAULT_PAGE_BYTES,
    assignment: str = ASSIGNMENT,
    seed: int = 7,
) -> str:
    """An HTML page of about `size` bytes: CSS and noise scripts, then the data script."""
    data = gb_raw_data if isinstance(gb_raw_data, str) else json.dumps(gb_raw_data)
    rng = random.Random(seed)
    data_script = (
        '<script>\n  window.gbCommonInfo = {"lang":"za","currency":"ZAR"};\n'
        f'  {assignment}{data};\n  var gbProductListSsrData = {{"a":1}};\n'
        "  if (gbRawData && gbRawData.order_list) { renderOrders(gbRawData); }\n</script>\n"
        if gb_raw_data is not None
        else ""
    )
    head = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>My Orders | SHEIN</title>\n"
    budget = max(size - len(head) - len(data_script), 0)
    before = _noise(rng, budget * 2 // 3)
    after = _noise(rng, budget - len(before))
    return f"{head}{before}</head><body>{data_script}{after}</body></html>"


def _noise(rng: random.Random, size: int) -> str:
    """CSS and scripts that look like the real pages, including decoys of the variable name."""
    parts: list[str] = []
    length = 0
    while length < size:
        kind = rng.randrange(4)
        if kind == 0:
            rules = "".join(
                f".c-{rng.randrange(10**6)}{{margin:{rng.randrange(40)}px;color:#{rng.randrange(16**6):06x}}}"
                for _ in range(40)
            )
            part = f"<style>{rules}</style>\n"
        elif kind == 1:
            body = ";".join(
                f"var v{rng.randrange(10**6)}=function(e){{return e&&e.gbRawData||{rng.random()}}}"
                for _ in range(30)
            )
            part = f"<script>var gbRawDataVersion = '2';{body};</script>\n"
        elif kind == 2:
            blob = json.dumps({f"k{i}": rng.random() for i in range(50)})
            part = f"<script>window.__INIT_{rng.randrange(999)}__ = {blob};</script>\n"
        else:
            part = f'<div class="c-{rng.randrange(999)}"><span>{"lorem ipsum " * 20}</span></div>\n'
        parts.append(part)
        length += len(part)
    return "".join(parts)[:size]


def list_page(orders: list[FixtureOrder], **kwargs: Any) -> str:
    return shein_page(list_data(orders), **kwargs)


def detail_page(order: FixtureOrder, **kwargs: Any) -> str:
    return shein_page(detail_data(order), **kwargs)
