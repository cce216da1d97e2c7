"""HandlerRegistration validation and the engine's registration-level rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from myapp.processing import HandlerRegistration, ProcessorPurpose, WorkItemProcessingEngine
from tests.unit.support import FakeHandler, HandlerState


def factory() -> FakeHandler:
    return FakeHandler(HandlerState("any"))


@pytest.mark.parametrize("name", ["", " ", "\t\n"])
def test_blank_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="name must not be blank") as raised:
        HandlerRegistration(factory, name=name)
    assert repr(name) in str(raised.value)


@pytest.mark.parametrize("quota", [0, -1, -100])
def test_quota_below_one_is_refused_naming_the_registration(quota: int) -> None:
    with pytest.raises(ValueError, match="max_items_per_cycle") as raised:
        HandlerRegistration(factory, name="Orders", max_items_per_cycle=quota)
    assert "'Orders'" in str(raised.value)
    assert str(quota) in str(raised.value)


def test_other_bad_options_are_refused_naming_the_registration() -> None:
    with pytest.raises(ValueError, match=r"'Orders'.*max_concurrency"):
        HandlerRegistration(factory, name="Orders", max_concurrency=0)
    with pytest.raises(ValueError, match=r"'Orders'.*item_timeout"):
        HandlerRegistration(factory, name="Orders", item_timeout=timedelta(0))
    with pytest.raises(ValueError, match=r"'Orders'.*callable"):
        HandlerRegistration("not callable", name="Orders")  # type: ignore[arg-type]


def test_defaults_match_the_seed() -> None:
    registration = HandlerRegistration(factory, name="Orders")
    assert registration.max_items_per_cycle == 10
    assert registration.purpose is ProcessorPurpose.INTERNAL
    assert registration.enabled


def test_purpose_given_as_int_becomes_the_enum() -> None:
    registration = HandlerRegistration(factory, name="Orders", purpose=2)
    assert registration.purpose is ProcessorPurpose.EXPORT


def test_purpose_values_are_pinned() -> None:
    assert [(p.name, int(p)) for p in ProcessorPurpose] == [
        ("INGESTION", 0),
        ("INTERNAL", 1),
        ("EXPORT", 2),
    ]


def test_registration_is_immutable() -> None:
    registration = HandlerRegistration(factory, name="Orders")
    with pytest.raises(AttributeError):
        registration.name = "Other"  # type: ignore[misc]


def test_engine_refuses_duplicate_names() -> None:
    registrations = [
        HandlerRegistration(factory, name="Orders"),
        HandlerRegistration(factory, name="Photos"),
        HandlerRegistration(factory, name="Orders"),
    ]
    with pytest.raises(ValueError, match="Orders"):
        WorkItemProcessingEngine(registrations, max_concurrency=4)


def test_engine_refuses_max_concurrency_below_one() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        WorkItemProcessingEngine([], max_concurrency=0)


def test_handler_names_by_purpose_keep_registration_order() -> None:
    names_and_purposes = [
        ("Zeta", ProcessorPurpose.INGESTION),
        ("Alpha", ProcessorPurpose.EXPORT),
        ("Mid", ProcessorPurpose.INGESTION),
        ("Beta", ProcessorPurpose.INTERNAL),
        ("Able", ProcessorPurpose.INGESTION),
    ]
    engine = WorkItemProcessingEngine(
        [HandlerRegistration(factory, name=n, purpose=p) for n, p in names_and_purposes],
        max_concurrency=4,
    )
    assert engine.get_handler_names_by_purpose(ProcessorPurpose.INGESTION) == [
        "Zeta",
        "Mid",
        "Able",
    ]
    assert engine.get_handler_names_by_purpose(ProcessorPurpose.EXPORT) == ["Alpha"]
    assert engine.get_handler_names_by_purpose(ProcessorPurpose.INTERNAL) == ["Beta"]


def test_engine_is_usable_on_its_own_without_a_container() -> None:
    engine = WorkItemProcessingEngine([HandlerRegistration(factory, name="A")], max_concurrency=4)
    assert engine.max_concurrency == 4
    assert [r.name for r in engine.registrations] == ["A"]
