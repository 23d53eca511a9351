"""The variant and hazard tables are complete: every code and hazard is documented."""

from __future__ import annotations

from checkpointify.rules import CODES, HAZARDS, VARIANTS, fix_safety
from checkpointify.types import Hazard, Safety


def test_every_variant_has_a_documented_code() -> None:
    for variant in VARIANTS:
        assert variant.code in CODES, variant.name
        for section in (
            "## What it does",
            "## Why is this bad?",
            "## Example",
            "## Use instead",
            "## Fix safety",
        ):
            assert section in variant.rationale, (variant.name, section)


def test_every_hazard_is_documented() -> None:
    assert set(HAZARDS) == set(Hazard)


def test_fix_safety_takes_the_strongest_cap() -> None:
    assert fix_safety(()) is Safety.SAFE
    assert fix_safety((Hazard.NESTED_LOOP,)) is Safety.SAFE
    assert fix_safety((Hazard.NESTED_LOOP, Hazard.UNORDERED_ITERABLE)) is Safety.UNSAFE
    assert fix_safety((Hazard.UNORDERED_ITERABLE, Hazard.COLLECTIVE_OPERATION)) is None
