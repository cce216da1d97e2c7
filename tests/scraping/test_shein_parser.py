from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from myapp.scraping import shein_fields
from myapp.scraping.errors import PageParseError, UnsafeUrlError
from myapp.scraping.orders import OrderSummary, to_raw_json
from myapp.scraping.shein import parse_order_detail, parse_orders_list
from myapp.scraping.urls import Site, path_segment
from tests.scraping.pages import (
    FixtureItem,
    FixtureOrder,
    detail_data,
    detail_page,
    list_data,
    list_page,
    sample_orders,
    shein_page,
)

SITE = Site.parse("https://shein.com")


def summary(order: FixtureOrder) -> OrderSummary:
    return OrderSummary(reference=order.billno)


def test_orders_list_gives_one_summary_per_order() -> None:
    orders = sample_orders(4)

    parsed = parse_orders_list(list_page(orders))

    assert [s.reference for s in parsed.summaries] == [o.billno for o in orders]
    first, second = parsed.summaries[0], parsed.summaries[1]
    assert first.placed_at == datetime.fromtimestamp(orders[0].add_time, UTC)
    assert first.paid_at is None
    assert second.paid_at == datetime.fromtimestamp(int(orders[1].pay_time or 0), UTC)
    assert first.total_text == f"R{orders[0].total}"
    assert parsed.warnings == ()


def test_orders_without_billno_or_repeated_are_skipped_with_warnings() -> None:
    data = list_data(sample_orders(2))
    data["order_list"].insert(1, {"addTime": 1_700_000_000, "totalPrice": "R1"})
    data["order_list"].append(copy.deepcopy(data["order_list"][0]))
    data["order_list"].append("not an order")

    parsed = parse_orders_list(shein_page(data, size=50_000))

    assert len(parsed.summaries) == 2
    assert any("has no billno" in w for w in parsed.warnings)
    assert any("repeats order" in w for w in parsed.warnings)
    assert any("not an object" in w for w in parsed.warnings)


def test_a_bad_time_on_the_list_is_a_warning_not_a_failure() -> None:
    data = list_data(sample_orders(1))
    data["order_list"][0]["addTime"] = "yesterday"

    parsed = parse_orders_list(shein_page(data, size=20_000))

    assert parsed.summaries[0].placed_at is None
    assert any("addTime 'yesterday' is not a time" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"orders": []}, "has no gbRawData.order_list"),
        ({"order_list": {"a": 1}}, "order_list is not an array"),
    ],
)
def test_orders_list_without_an_order_array(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(PageParseError, match=expected):
        parse_orders_list(shein_page(data, size=20_000))


def test_detail_page_maps_every_field_in_both_item_forms() -> None:
    nested = FixtureItem(
        "sw2201", "Floral Dress", 2, "132.50", "1234567", "Floral Dress", nested=True
    )
    flat = FixtureItem(
        "sw2202", "Old Tee", 1, "99", "7654321", "SHEIN Old-Tee", (("Size", "L"),), nested=False
    )
    order = FixtureOrder("GSHX01", 1_700_000_000, (nested, flat), pay_time="1700000300")

    parsed = parse_order_detail(detail_page(order), summary(order), SITE)

    assert parsed.reference == "GSHX01"
    assert parsed.placed_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert parsed.paid_at == datetime(2023, 11, 14, 22, 18, 20, tzinfo=UTC)
    assert parsed.currency == "ZAR"
    assert parsed.total == Decimal("364.00")
    assert parsed.payment_method == "card"
    first, second = parsed.items
    assert (first.supplier_reference, first.name, first.quantity) == ("sw2201", "Floral Dress", 2)
    assert first.unit_price == Decimal("132.50") and isinstance(first.unit_price, Decimal)
    assert first.description == "Color: Multicolor, Size: M"
    assert first.product_url == "https://shein.com/Floral-Dress-p-1234567.html"
    assert (second.supplier_reference, second.name, second.quantity) == ("sw2202", "Old Tee", 1)
    assert second.unit_price == Decimal("99")
    assert second.description == "Size: L"
    assert second.product_url == "https://shein.com/SHEIN-Old-Tee-p-7654321.html"
    assert json.loads(first.raw_json)["product"]["goods_sn"] == "sw2201"
    assert json.loads(parsed.raw_json)["billno"] == "GSHX01"


def test_nested_fields_win_over_flat_ones() -> None:
    order = sample_orders(1)[0]
    data = detail_data(order)
    item = data["orderInfo"]["orderGoodsList"][0]
    item["goods_name"] = "flat name"
    item["goods_qty"] = 99

    parsed = parse_order_detail(shein_page(data, size=20_000), summary(order), SITE)

    assert parsed.items[0].name == order.items[0].name
    assert parsed.items[0].quantity == order.items[0].quantity


def test_numbers_in_json_become_decimals_without_float_rounding() -> None:
    order = sample_orders(1)[0]
    text = json.dumps(detail_data(order)).replace(
        '"amount": "100.09"', '"amount": 0.1000000000000000055'
    )

    parsed = parse_order_detail(shein_page(text, size=20_000), summary(order), SITE)

    assert parsed.items[0].unit_price == Decimal("0.1000000000000000055")


def test_attributes_fall_back_to_shein_s_own_string() -> None:
    order = sample_orders(1)[0]
    data = detail_data(order)
    del data["orderInfo"]["orderGoodsList"][0]["sku_sale_attr"]

    parsed = parse_order_detail(shein_page(data, size=20_000), summary(order), SITE)

    assert parsed.items[0].description == "Multicolor / S"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda item: item.update(quantity="two"),
            r"item 1 \('sw000000'\) quantity 'two' is not a whole number",
        ),
        (lambda item: item.update(quantity="1.5"), "is not a whole number"),
        (lambda item: item.update(quantity="0"), "is not a whole number from 1"),
        (
            lambda item: item["unitPrice"].update(amount="R132"),
            r"unitPrice.amount 'R132' is not a price",
        ),
        (lambda item: item["unitPrice"].update(amount="NaN"), "is not a price"),
        (lambda item: item.update(unitPrice={"amountWithSymbol": "R1"}), "unitPrice has no amount"),
        (lambda item: item.pop("unitPrice"), "goods_unit_price is missing"),
        (lambda item: item.pop("quantity"), "goods_qty is missing"),
        (lambda item: item["product"].pop("goods_name"), "has no goods_name"),
        (lambda item: item.update(quantity=True), "is not a whole number"),
    ],
)
def test_bad_items_fail_with_the_item_and_field_named(change: Any, expected: str) -> None:
    order = sample_orders(1)[0]
    data = detail_data(order)
    change(data["orderInfo"]["orderGoodsList"][0])

    with pytest.raises(PageParseError, match=expected):
        parse_order_detail(shein_page(data, size=20_000), summary(order), SITE)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (None, "no gbRawData.orderInfo object"),
        ({"billno": "OTHER"}, "the page is for order 'OTHER'"),
        ({"billno": "GSH000000ZA"}, "no orderGoodsList array"),
        ({"orderGoodsList": ["x"]}, "item 1 is not an object"),
        ({"addTime": "soon", "orderGoodsList": []}, "orderInfo.addTime 'soon' is not a time"),
    ],
)
def test_bad_order_pages(info: dict[str, Any] | None, expected: str) -> None:
    order = sample_orders(1)[0]

    with pytest.raises(PageParseError, match=expected):
        parse_order_detail(shein_page({"orderInfo": info}, size=5_000), summary(order), SITE)


@pytest.mark.parametrize(
    ("billno", "encoded"),
    [
        ("GSH123", "GSH123"),
        ("a/b", "a%2Fb"),
        ("x?y=1#z", "x%3Fy%3D1%23z"),
        ("../../admin", "..%2F..%2Fadmin"),
        ("https://evil.example/steal", "https%3A%2F%2Fevil.example%2Fsteal"),
        ("100%", "100%25"),
    ],
)
def test_order_numbers_are_one_encoded_path_segment(billno: str, encoded: str) -> None:
    assert path_segment(billno, "order number") == encoded


@pytest.mark.parametrize("billno", ["..", ".", "", "  ", "a\nb", "x" * 201])
def test_order_numbers_that_cannot_be_a_segment_are_refused(billno: str) -> None:
    with pytest.raises(UnsafeUrlError, match="order number"):
        path_segment(billno, "order number")


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/user/orders/list",
        "http://shein.com/user/orders/list",
        "https://shein.com:8443/user",
        "https://shein.com.evil.example/",
        "https://user@evil.example/",
    ],
)
def test_the_site_refuses_urls_elsewhere(url: str) -> None:
    with pytest.raises(UnsafeUrlError, match=r"outside the configured site https://shein\.com"):
        SITE.check(url)


def test_the_site_accepts_its_own_urls_and_respects_a_base_path() -> None:
    SITE.check("https://shein.com/user/orders/detail/A%2FB")
    prefixed = Site.parse("https://za.shein.com/za/")
    assert prefixed.url("/user/orders/list") == "https://za.shein.com/za/user/orders/list"
    with pytest.raises(UnsafeUrlError):
        prefixed.check("https://za.shein.com/other")


@pytest.mark.parametrize("base", ["ftp://shein.com", "shein.com", "https://shein.com/?a=1"])
def test_bad_base_urls_are_refused(base: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        Site.parse(base)


@pytest.mark.timeout(10)  # `int(Decimal("1E+1000000"))` took minutes before the range check
@pytest.mark.parametrize(
    "value",
    [Decimal("1E+1000000"), 253_402_300_800, "9" * 90, Decimal("253402300799.5")],
)
def test_unix_times_beyond_the_year_9999_are_refused_before_conversion(value: object) -> None:
    with pytest.raises(PageParseError, match=r"out of range for a time \(years 1970-9999\)"):
        shein_fields.unix_time(value, "orderInfo.addTime")


def test_the_last_second_of_9999_is_a_time() -> None:
    last = shein_fields.unix_time("253402300799", "addTime")

    assert last == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.timeout(10)
def test_an_absurd_number_anywhere_in_the_order_fails_that_page_readably() -> None:
    order = sample_orders(1)[0]
    text = json.dumps(detail_data(order)).replace('"payment_method"', '"unused": 1e1000000, "x"')

    with pytest.raises(PageParseError, match="gbRawData holds the number 1e1000000"):
        parse_order_detail(shein_page(text, size=5_000), summary(order), SITE)


def test_an_item_code_longer_than_staging_holds_fails_the_order() -> None:
    order = sample_orders(1)[0]
    data = detail_data(order)
    data["orderInfo"]["orderGoodsList"][0]["product"]["goods_sn"] = "S" * 201

    with pytest.raises(PageParseError) as caught:
        parse_order_detail(shein_page(data, size=5_000), summary(order), SITE)

    assert str(caught.value) == (
        f"item 1 goods_sn {'S' * 20!r}... is 201 characters long; staging holds at most 200"
    )


def test_an_item_code_as_long_as_the_column_is_kept() -> None:
    order = sample_orders(1)[0]
    data = detail_data(order)
    data["orderInfo"]["orderGoodsList"][0]["product"]["goods_sn"] = "S" * 200

    parsed = parse_order_detail(shein_page(data, size=5_000), summary(order), SITE)

    assert parsed.items[0].supplier_reference == "S" * 200


def test_raw_json_keeps_every_number_exactly_as_the_page_wrote_it() -> None:
    order = sample_orders(1)[0]
    exact = '"amount": 132.10, "weight": 0.1000000000000000055, "big": 1E+30, "tiny": 1e-7'
    text = json.dumps(detail_data(order)).replace('"amount": "100.09"', exact)

    parsed = parse_order_detail(shein_page(text, size=5_000), summary(order), SITE)

    raw = parsed.items[0].raw_json
    assert '"amount":132.10,' in raw
    assert '"weight":0.1000000000000000055,' in raw
    assert '"big":1E+30,' in raw and '"tiny":1E-7' in raw
    decoded = json.loads(raw, parse_float=Decimal)
    assert decoded["unitPrice"]["amount"] == Decimal("132.10")
    assert json.loads(parsed.raw_json)["billno"] == order.billno


def test_raw_json_is_standard_json_for_every_other_value() -> None:
    value = {"s": 'é "q" \\ \n', "i": -12, "t": True, "f": False, "n": None, "l": [[], {}]}

    assert to_raw_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "path",
    [
        "/za/%2e%2e/evil",
        "/za/%2E%2E/evil",
        "/za/.%2e/evil",
        "/za/x/..%2F..%2Fevil",
        "/za/..%5Cevil",
        "/za%2Fevil",
    ],
)
def test_the_base_path_check_decodes_percent_escapes(path: str) -> None:
    prefixed = Site.parse("https://shein.com/za")

    with pytest.raises(UnsafeUrlError, match="outside the configured site"):
        prefixed.check(f"https://shein.com{path}")


@pytest.mark.parametrize(
    "path", ["/za", "/za/", "/za/user/orders/detail/A%2FB", "/za/x/..%2Fy", "/za/%41"]
)
def test_escapes_that_stay_under_the_base_path_are_accepted(path: str) -> None:
    Site.parse("https://shein.com/za").check(f"https://shein.com{path}")
