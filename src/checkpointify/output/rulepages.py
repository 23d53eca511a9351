"""The documentation page of each rule, rendered from :mod:`checkpointify.rules`.

One page per code (``CKP001``...), Ruff-style: the code's summary, then each variant's
doc block (what it does, why is this bad, example, use instead, fix safety), then the
hazards that can weaken or withhold a fix. ``checkpointify rule CODE`` prints it; the docs
site's ``docs/rules/`` holds the same pages, generated (``python -m tests.regen_docs``)
and checked current by the tests, which also run every example through ``fix``.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

from checkpointify.rules import CODES, HAZARDS, VARIANTS, Variant

__all__ = ["codes", "index", "page", "variants_of"]


def codes() -> List[str]:
    """Every rule code, in order."""
    return sorted(CODES)


def variants_of(code: str) -> Tuple[Variant, ...]:
    return tuple(v for v in VARIANTS if v.code == code)


def page(code: str) -> str:
    """The Markdown page of ``code``; ``KeyError`` for an unknown code."""
    name, summary = CODES[code]
    parts = ["# %s: %s" % (code, name), "", summary[0].upper() + summary[1:] + ".", ""]
    for variant in variants_of(code):
        parts += ["## `%s`: %s" % (variant.name, variant.summary), ""]
        parts.append(re.sub(r"^## ", "### ", variant.rationale, flags=re.M).rstrip() + "\n")
    parts += ["## Hazards", "", _hazard_table(), ""]
    return "\n".join(parts)


def index() -> str:
    """The rules overview: a table of codes and variants, linking each page."""
    rows = ["# Rules", "", "| code | name | variant | what it finds |", "|---|---|---|---|"]
    for code in codes():
        name, _ = CODES[code]
        for variant in variants_of(code):
            rows.append(
                "| [%s](%s.md) | %s | `%s` | %s |" % (code, code, name, variant.name, variant.summary)
            )
    rows += [
        "",
        "Each finding carries a fix safety: **safe** fixes are applied by `fix`, **unsafe** ones",
        "only with `--unsafe-fixes` (the hazards say why), and some findings have no fix at all.",
        "`checkpointify rule CODE` prints a rule's page in the terminal.",
        "",
    ]
    return "\n".join(rows)


def _hazard_table() -> str:
    rows = ["| hazard | strongest fix | why |", "|---|---|---|"]
    for hazard, doc in HAZARDS.items():
        cap = doc.caps_fix_at.value if doc.caps_fix_at is not None else "none"
        rows.append("| `%s` | %s | %s |" % (hazard.value, cap, doc.explanation))
    return "\n".join(rows)


def pages() -> Dict[str, str]:
    """Every generated file of ``docs/rules/``: name -> text."""
    files = {"index.md": index()}
    files.update({"%s.md" % code: page(code) for code in codes()})
    return files
