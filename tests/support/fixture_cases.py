"""Fixture cases under tests/fixtures/<variant>/<case>/, shared by the tests and the regen script.

A case holds ``input.py`` (or, for a notebook, ``input.ipynb``: then ``expected.ipynb``) and
optionally:

* ``expected.py``: what ``fix`` writes (absent: the file must stay byte-identical);
* ``findings.json``: the findings ``scan`` reports (absent: none);
* ``fixture.json``: ``{"unsafe_fixes": bool, "run": bool, "redo": int, "kill_after": int,
  "python": [3, 12]}`` ("python": the oldest Python whose syntax the program needs; it runs
  under an interpreter of that version found on the machine, see :meth:`Case.python`;
  "kill_test": "slow": its kill-and-resume run is left to ``-m slow``. Set on pandas
  programs, which import pandas in each of their six runs, where a sibling fixture with the
  same runtime handle (``frame_concat``, ``frame_writes``, ``checkpoint_rows``, a plain
  ``checkpoint`` before ``to_csv``) is killed and resumed by default; their rewrite is
  checked byte for byte by default like every fixture's);
* ``data/``: files the program reads, copied next to it when it runs.
"""

from __future__ import annotations

import glob
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from checkpointify.api import process_source
from checkpointify.types import FileResult, Finding, Options

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SUPPORT = FIXTURES / "_support"


@dataclass(frozen=True)
class Case:
    path: Path

    @property
    def id(self) -> str:
        return "%s/%s" % (self.path.parent.name, self.path.name)

    @property
    def meta(self) -> Dict[str, Any]:
        meta_file = self.path / "fixture.json"
        return json.loads(meta_file.read_text()) if meta_file.exists() else {}

    @property
    def suffix(self) -> str:
        return ".ipynb" if (self.path / "input.ipynb").exists() else ".py"

    @property
    def notebook(self) -> bool:
        return self.suffix == ".ipynb"

    @property
    def source(self) -> bytes:
        return (self.path / ("input" + self.suffix)).read_bytes()

    @property
    def expected_path(self) -> Path:
        return self.path / ("expected" + self.suffix)

    @property
    def expected(self) -> bytes:
        expected = self.expected_path
        return expected.read_bytes() if expected.exists() else self.source

    @property
    def rewrites(self) -> bool:
        return self.expected_path.exists()

    @property
    def expected_findings(self) -> List[Dict[str, Any]]:
        findings = self.path / "findings.json"
        return json.loads(findings.read_text()) if findings.exists() else []

    @property
    def newer_syntax(self) -> bool:
        """The program needs a newer Python than the one running the tests."""
        return tuple(self.meta.get("python", (3,))) > sys.version_info[:2]

    def python(self) -> Optional[str]:
        """An interpreter that runs the program (this one, unless it needs newer syntax:
        then ``python3.X`` on PATH or in pyenv's versions), or None when none is found."""
        if not self.newer_syntax:
            return sys.executable
        major, minor = self.meta["python"]
        name = "python%d.%d" % (major, minor)
        found = shutil.which(name)
        if found and "/shims/" not in found:  # a pyenv shim may refuse to run
            return found
        candidates = sorted(
            glob.glob(str(Path.home() / ".pyenv" / "versions" / ("%d.%d.*" % (major, minor))))
        )
        for root in reversed(candidates):
            path = Path(root) / "bin" / name
            if path.exists():
                return str(path)
        return None

    def options(self) -> Options:
        return Options(root=self.path, unsafe_fixes=bool(self.meta.get("unsafe_fixes", False)))

    def process(self, source: bytes) -> FileResult:
        return process_source(source, str(self.path / ("input" + self.suffix)), self.options(), rewrite=True)


def cases() -> List[Case]:
    return sorted(
        (
            Case(p.parent)
            for p in FIXTURES.glob("*/*/input.*")
            if p.suffix in (".py", ".ipynb") and not p.parent.parent.name.startswith("_")
        ),
        key=lambda c: c.id,
    )


def finding_summary(finding: Finding) -> Dict[str, Any]:
    """The parts of a finding a fixture pins down (the message is covered by the CLI tests)."""
    where = {} if finding.cell is None else {"cell": finding.cell, "file_line": finding.file_line}
    return {
        **where,
        "line": finding.line,
        "column": finding.column,
        "end_line": finding.end_line,
        "code": finding.code,
        "variant": finding.variant,
        "accumulators": list(finding.accumulators),
        "sink": finding.sink,
        "hazards": [h.value for h in finding.hazards],
        "fix": finding.fix.value if finding.fix else None,
    }
