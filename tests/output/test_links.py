"""One documentation URL: SARIF's helpUri is the rule's page, pyproject and mkdocs agree, no placeholders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from checkpointify.output.sarif import sarif_document
from checkpointify.rules import CODES, DOCS_URL, REPOSITORY_URL, rule_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ROOT = Path(__file__).resolve().parents[2]


def test_sarif_help_uri_is_the_rule_page_on_the_docs_site() -> None:
    document = __import__("json").loads(sarif_document([], {}, ROOT))
    driver = document["runs"][0]["tool"]["driver"]
    assert driver["informationUri"] == REPOSITORY_URL
    assert {r["id"]: r["helpUri"] for r in driver["rules"]} == {code: rule_url(code) for code in CODES}
    for code in CODES:
        # the page the URL names is a page of the site (docs/rules/<code>.md, directory URLs)
        page = rule_url(code)[len(DOCS_URL) :].rstrip("/") + ".md"
        assert (ROOT / "docs" / page).is_file(), page


def test_pyproject_and_mkdocs_name_the_same_urls() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Documentation"] == DOCS_URL and urls["Repository"] == REPOSITORY_URL
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    assert "site_url: %s\n" % DOCS_URL in mkdocs and "repo_url: %s\n" % REPOSITORY_URL in mkdocs


def test_no_placeholder_owner_is_left_anywhere() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    placeholder = "OW" + "NER"  # spelled apart, so this file does not match itself
    found = subprocess.run(
        ["git", "grep", "-n", "-I", placeholder, "--", ".", ":!tests/fixtures"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 1, found.stdout
