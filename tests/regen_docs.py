"""Regenerate the docs site's generated pages (then review the diff).

    python -m tests.regen_docs

``docs/rules/`` is rendered from ``checkpointify.rules`` by
:mod:`checkpointify.output.rulepages`; ``tests/output/test_rulepages.py`` fails while a
generated page is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from checkpointify.output import rulepages

RULES = Path(__file__).resolve().parents[1] / "docs" / "rules"


def main() -> int:
    RULES.mkdir(parents=True, exist_ok=True)
    for name, text in rulepages.pages().items():
        (RULES / name).write_text(text, encoding="utf-8")
        print("wrote", RULES / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
