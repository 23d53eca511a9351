"""``rewrite_selected``: the rewrite of a chosen subset of findings (review, SARIF fixes)."""

from __future__ import annotations

import pytest

from checkpointify.api import process_source, rewrite_selected
from checkpointify.types import Options
from tests.support.fixture_cases import Case, cases

FIXABLE = [c for c in cases() if any(f["fix"] for f in c.expected_findings)]


@pytest.mark.parametrize("case", FIXABLE, ids=[c.id for c in FIXABLE])
def test_each_fix_alone_neighbouring_pairs_and_what_fix_applies(case: Case) -> None:
    """Each fix alone and each pair of neighbours verifies; selecting exactly what ``fix``
    applies gives ``fix``'s bytes, the fixture's expected file (one reference fix for all)."""
    options = case.options()
    path = str(case.path / "input.py")
    full = process_source(case.source, path, options, rewrite=True)
    fixable = [f for f in full.findings if f.fix is not None]
    for finding in fixable:
        alone = rewrite_selected(case.source, path, options, [finding])
        assert alone.error is None, alone.error
        assert alone.applied == (finding,) and alone.changed
        assert alone.source == case.source
        # the other findings are still there, the chosen one is gone
        again = process_source(alone.new_source or b"", path, options, rewrite=False)
        assert len(again.findings) == len(full.findings) - 1
    for pair in zip(fixable, fixable[1:]):  # neighbours: the rewrites most likely to interact
        both = rewrite_selected(case.source, path, options, pair)
        assert both.error is None and set(both.applied) == set(pair)
    if full.applied:  # else only unsafe fixes here: fix applies nothing
        chosen = rewrite_selected(case.source, path, options, full.applied)
        assert chosen.new_source == full.new_source == case.expected
    else:
        assert full.new_source is None and all(f.fix is not None and f.fix.value == "unsafe" for f in fixable)


def test_unsafe_fix_is_applied_when_selected_whatever_the_options() -> None:
    source = (
        b"import json, os\nnames = ''\nfor n in os.listdir('.'):\n    names += f(n)\njson.dump(names, out)\n"
    )
    options = Options(unsafe_fixes=False)
    [finding] = process_source(source, "u.py", options, rewrite=False).findings
    assert finding.fix is not None and finding.fix.value == "unsafe"
    assert process_source(source, "u.py", options, rewrite=True).new_source is None
    chosen = rewrite_selected(source, "u.py", options, [finding])
    assert chosen.applied == (finding,) and b"checkpoint(" in (chosen.new_source or b"")


def test_nothing_selected_or_stale_selection_changes_nothing() -> None:
    source = b"import json\nr = []\nfor x in xs:\n    r.append(f(x))\njson.dump(r, out)\n"
    options = Options()
    [finding] = process_source(source, "a.py", options, rewrite=False).findings
    assert not rewrite_selected(source, "a.py", options, []).changed
    moved = b"\n" + source  # the finding is now one line lower: it is not the same finding
    result = rewrite_selected(moved, "a.py", options, [finding])
    assert not result.changed and result.error is None and len(result.findings) == 1


def test_bad_input_is_an_error_not_an_exception() -> None:
    result = rewrite_selected(b"def f(:\n", "bad.py", Options(), [])
    assert result.error is not None and result.error.startswith("syntax error") and not result.internal
