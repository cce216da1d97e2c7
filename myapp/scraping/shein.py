"""SheinWebScraper: where Shein's order pages are and how to read them.

Orders list: `{BaseUrl}/user/orders/list`, `gbRawData.order_list` (an array of orders).
Order detail: `{BaseUrl}/user/orders/detail/{billno}`, `gbRawData.orderInfo` with `orderGoodsList`.
An item on current pages nests its product (`product.goods_name`, `product.goods_sn`, ...); older
pages put `goods_name`, `goods_sn`, `goods_qty`, `goods_unit_price` on the item itself. Each
field is read from the nested form first and from the flat form when the nested one is absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from myapp.scraping import shein_fields as fields
from myapp.scraping.errors import PageParseError
from myapp.scraping.gb_raw_data import extract_gb_raw_data
from myapp.scraping.limits import ITEM_REFERENCE_LENGTH, check_length
from myapp.scraping.orders import (
    OrderItem,
    OrderList,
    OrderSummary,
    Page,
    ScrapedOrder,
    to_raw_json,
)
from myapp.scraping.urls import Site, path_segment
from myapp.scraping.web_scraper import WebScraper

SUPPLIER_NAME = "Shein"
ORDERS_LIST_PATH = "/user/orders/list"
ORDER_DETAIL_PATH = "/user/orders/detail/"
_SLUG_BREAKS = re.compile(r"[\s/]+")


class SheinWebScraper(WebScraper):
    supplier_name = SUPPLIER_NAME

    def orders_list_url(self) -> str:
        return self._site.url(ORDERS_LIST_PATH)

    def order_detail_url(self, summary: OrderSummary) -> str:
        segment = path_segment(summary.reference, "order number")
        return self._site.url(ORDER_DETAIL_PATH + segment)

    def parse_orders_list(self, page: Page) -> OrderList:
        return parse_orders_list(page.text)

    def parse_order_detail(self, page: Page, summary: OrderSummary) -> ScrapedOrder:
        return parse_order_detail(page.text, summary, self._site)


def parse_orders_list(page: str) -> OrderList:
    orders = extract_gb_raw_data(page).get("order_list")
    if orders is None:
        raise PageParseError(
            "the orders list page has no gbRawData.order_list "
            "(the session may be signed out, or the page changed)"
        )
    if not isinstance(orders, list):
        raise PageParseError("gbRawData.order_list is not an array")
    summaries: list[OrderSummary] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for index, order in enumerate(orders):
        label = f"order {index + 1} of the list"
        if not isinstance(order, Mapping):
            warnings.append(f"{label} is not an object: skipped")
            continue
        billno = fields.text(order.get("billno"))
        if billno is None:
            warnings.append(f"{label} has no billno (order number): skipped")
            continue
        if billno in seen:
            warnings.append(f"{label} repeats order {billno}: skipped")
            continue
        seen.add(billno)
        summaries.append(_summary(billno, order, warnings))
    return OrderList(tuple(summaries), tuple(warnings))


def _summary(billno: str, order: Mapping[str, Any], warnings: list[str]) -> OrderSummary:
    # The detail page is the authority; a bad time here is noted, not fatal.
    times = {}
    for key in ("addTime", "pay_time"):
        try:
            times[key] = fields.unix_time(order.get(key), f"order {billno} {key}")
        except PageParseError as error:
            warnings.append(str(error))
            times[key] = None
    return OrderSummary(
        reference=billno,
        placed_at=times["addTime"],
        paid_at=times["pay_time"],
        total_text=fields.text(order.get("totalPrice")),
        status=fields.text(order.get("orderStatus")),
    )


def parse_order_detail(page: str, summary: OrderSummary, site: Site) -> ScrapedOrder:
    info = extract_gb_raw_data(page).get("orderInfo")
    if not isinstance(info, Mapping):
        raise PageParseError("the order page has no gbRawData.orderInfo object")
    billno = fields.text(info.get("billno"))
    if billno is not None and billno != summary.reference:
        raise PageParseError(f"the page is for order {fields.show(billno)}, not this order")
    goods = info.get("orderGoodsList")
    if not isinstance(goods, list):
        raise PageParseError("orderInfo has no orderGoodsList array")
    items = tuple(parse_item(item, index, site) for index, item in enumerate(goods))
    total = info.get("totalPrice")
    return ScrapedOrder(
        reference=summary.reference,
        placed_at=fields.unix_time(info.get("addTime"), "orderInfo.addTime") or summary.placed_at,
        paid_at=fields.unix_time(info.get("pay_time"), "orderInfo.pay_time") or summary.paid_at,
        currency=fields.text(info.get("currency_code")),
        total=fields.optional_money(total) if total is not None else None,
        payment_method=fields.text(info.get("payment_method")),
        items=items,
        raw_json=to_raw_json(info),
    )


def parse_item(item: object, index: int, site: Site) -> OrderItem:
    label = f"item {index + 1}"
    if not isinstance(item, Mapping):
        raise PageParseError(f"{label} is not an object")
    product = fields.mapping(item.get("product"))
    sku = fields.first_text(product.get("goods_sn"), item.get("goods_sn"))
    if sku is not None:
        check_length(sku, ITEM_REFERENCE_LENGTH, f"{label} goods_sn")
        label = f"{label} ({fields.show(sku)})"
    name = fields.first_text(product.get("goods_name"), item.get("goods_name"))
    if name is None:
        raise PageParseError(f"{label} has no goods_name")
    quantity = _nested_first(item, "quantity", "goods_qty")
    unit_price = _nested_first(item, "unitPrice", "goods_unit_price")
    goods_id = fields.first_text(item.get("goods_id"), product.get("goods_id"))
    url_name = fields.first_text(product.get("goods_url_name"), item.get("goods_url_name"))
    return OrderItem(
        supplier_reference=sku,
        name=name,
        description=describe_attributes(item, product),
        quantity=fields.quantity(quantity[1], f"{label} {quantity[0]}"),
        unit_price=fields.money(unit_price[1], f"{label} {unit_price[0]}"),
        product_url=product_url(site, url_name or name, goods_id),
        raw_json=to_raw_json(item),
    )


def _nested_first(item: Mapping[str, Any], current: str, older: str) -> tuple[str, object]:
    """(field name, value): the current pages' field if present, else the older pages' one."""
    if item.get(current) is not None:
        return current, item[current]
    return older, item.get(older)


def describe_attributes(item: Mapping[str, Any], product: Mapping[str, Any]) -> str | None:
    """ "Color: Multicolor, Size: M" from `sku_sale_attr`, else Shein's own attribute string."""
    attributes = item.get("sku_sale_attr") or product.get("sku_sale_attr")
    if isinstance(attributes, Sequence) and not isinstance(attributes, str):
        parts = []
        for attribute in attributes:
            entry = fields.mapping(attribute)
            name = fields.text(entry.get("attr_name"))
            value = fields.text(entry.get("attr_value_name"))
            if name and value:
                parts.append(f"{name}: {value}")
            elif value:
                parts.append(value)
        if parts:
            return ", ".join(parts)
    own_text = "sku_attrs_contact_str"
    return fields.first_text(item.get(own_text), product.get(own_text))


def product_url(site: Site, url_name: str, goods_id: str | None) -> str | None:
    """Shein's product page, `{BaseUrl}/{url-name}-p-{goods_id}.html`; None without an id."""
    if goods_id is None:
        return None
    slug = _SLUG_BREAKS.sub("-", url_name.strip()).strip("-") or "product"
    return site.url(f"/{quote(slug, safe='-._~')}-p-{quote(goods_id, safe='')}.html")
