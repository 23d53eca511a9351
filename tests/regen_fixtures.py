"""Regenerate expected.py and findings.json for fixture cases (then REVIEW every diff).

    python -m tests.regen_fixtures [CASE-ID-SUBSTRING ...]

The test suite never calls this: a fixture's expectation is what a person checked.
"""

from __future__ import annotations

import json
import sys

from tests.support.fixture_cases import cases, finding_summary


def main(argv: list) -> int:
    for case in cases():
        if argv and not any(arg in case.id for arg in argv):
            continue
        result = case.process(case.source)
        if result.error:
            print("%s: error: %s" % (case.id, result.error))
            continue
        expected = case.expected_path
        if result.changed:
            assert result.new_source is not None
            expected.write_bytes(result.new_source)
        elif expected.exists():
            expected.unlink()
        findings = case.path / "findings.json"
        if result.findings:
            findings.write_text(json.dumps([finding_summary(f) for f in result.findings], indent=2) + "\n")
        elif findings.exists():
            findings.unlink()
        print(
            "%s: %d findings, %s"
            % (
                case.id,
                len(result.findings),
                "rewritten" if result.changed else "unchanged",
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
