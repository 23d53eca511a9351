"""Rule pages: generated from the rule table, current in docs/, printed by `checkpointify
rule`, and every example's fix shown exactly as `fix` makes it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from checkpointify import api
from checkpointify.cli import main
from checkpointify.output import rulepages
from checkpointify.rules import VARIANTS, Variant

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _block(variant: Variant, title: str) -> str:
    section = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), variant.rationale, re.S | re.M)
    assert section is not None, "%s has no '## %s' section" % (variant.name, title)
    code = re.search(r"```python\n(.*?)```", section.group(1), re.S)
    assert code is not None, "%s: '## %s' has no python block" % (variant.name, title)
    return code.group(1)


def test_the_generated_pages_in_docs_are_current() -> None:
    for name, text in rulepages.pages().items():
        path = DOCS / "rules" / name
        assert path.is_file() and path.read_text(encoding="utf-8") == text, (
            "docs/rules/%s is out of date: run `python -m tests.regen_docs` and review" % name
        )


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_each_example_is_found_and_fixed_exactly_as_the_page_shows(variant: Variant) -> None:
    example, shown = _block(variant, "Example"), _block(variant, "Use instead")
    named = re.search(r"[\"']([^\"':]+)::", shown)
    path = named.group(1) if named else "job.py"
    result = api.process_source(example.encode(), path, api.Options(unsafe_fixes=True), rewrite=True)
    assert [f.code for f in result.findings] == [variant.code] and result.error is None
    assert result.new_source is not None
    fixed = result.new_source.decode()
    # the page leaves out the import the fix adds at the top
    [imported, blank, rest] = fixed.split("\n", 2)
    assert imported.startswith("from checkpointify.runtime import ") and blank == ""
    assert rest == shown


def test_rule_prints_one_page_and_all_pages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rule", "ckp002"]) == 0
    assert capsys.readouterr().out == rulepages.page("CKP002")
    assert main(["rule", "--all"]) == 0
    out = capsys.readouterr().out
    assert all(rulepages.page(code) in out for code in rulepages.codes())


def test_rule_with_an_unknown_code_or_nothing_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rule", "CKP999"]) == 2
    assert "unknown rule CKP999 (known: CKP001, CKP002, CKP003)" in capsys.readouterr().err
    assert main(["rule"]) == 2
    assert "give one rule code" in capsys.readouterr().err


def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    """mkdocs-material with --strict: a broken link or a page missing from the site fails."""
    pytest.importorskip("material", reason="mkdocs-material is a test dependency")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=DOCS.parent,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for code in rulepages.codes():
        assert (tmp_path / "site" / "rules" / code / "index.html").is_file()
