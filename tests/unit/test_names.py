"""The confusable skeleton of names (r3): which names look alike, and which do not."""

from __future__ import annotations

import pytest

from node.wire.names import is_valid_name, looks_alike, skeleton


@pytest.mark.parametrize(
    "lookalike",
    ["SaIly", "Sa1ly", "5ally", "sally", "SALLY", "Sa11y", "5a1Iy", "sAlLy"],
)
def test_lookalikes_of_sally_share_its_skeleton(lookalike: str) -> None:
    assert skeleton(lookalike) == skeleton("Sally")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Bob", "8ob"),
        ("Zoe", "2oe"),
        ("Otto", "0tt0"),
        ("Mom", "Rnom"),
        ("Will", "vvill"),
        ("john_doe", "john.doe"),
        ("john-doe", "john_doe"),
        ("Ivy", "lvy"),
    ],
)
def test_classes_and_sequences(a: str, b: str) -> None:
    assert looks_alike(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Sally", "Sandy"), ("Bob", "Rob"), ("Anna", "Ann"), ("m", "n"), ("sam", "sarn_")],
)
def test_different_names_do_not_look_alike(a: str, b: str) -> None:
    assert not looks_alike(a, b)


def test_one_name_in_two_spellings_is_not_a_lookalike_of_itself() -> None:
    # Sally and sally are one name (case-insensitive), not two names that look alike
    assert not looks_alike("Sally", "sally")
    assert skeleton("Sally") == skeleton("sally")


def test_skeleton_is_total_and_idempotent() -> None:
    for name in ["a", "0", "rnrn", "vvv", "a_-.", "A" * 32]:
        assert is_valid_name(name)
        assert skeleton(skeleton(name)) == skeleton(name)
