"""Module constants in the loop's identity: run, SIGKILL, edit a constant, re-run.

The re-run must start from zero (with a warning, the old log archived) and write exactly
what an uninterrupted run with the new constant writes: no unit of the old value mixed in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.safety.test_safety import STRICT, Program, _warned

CONSTANTS = """
import json

from ckfixture import score

MODEL = "small"
SCALE = 3


def label(n):
    return score(n) * SCALE  # a constant read by a helper the loop calls


def run(name):
    results = []
    for n in range(10):
        results.append(label(n) if MODEL == "small" else -label(n))
    with open("out-%s.json" % name, "w") as out:
        json.dump(results, out)


run("a")
"""


def _edit(program: Program, old: str, new: str) -> None:
    for script in (program.original, program.rewritten):
        text = script.read_text()
        assert old in text
        script.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    "old, new", [('MODEL = "small"', 'MODEL = "large"'), ("SCALE = 3", "SCALE = 4")], ids=["body", "helper"]
)
def test_an_edited_module_constant_starts_fresh_with_a_warning(old: str, new: str, tmp_path: Path) -> None:
    program = Program(tmp_path, CONSTANTS)
    assert 'constants={"MODEL": MODEL, "SCALE": SCALE}' in program.rewritten.read_text()
    program.kill_after(4)
    assert len(program.logs()) == 1
    _edit(program, old, new)
    expected = program.expected()
    done = program.run(program.rewritten)
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected  # no unit computed with the old value
    warned = _warned(done)
    assert len(warned) == 1 and "changed since" in warned[0] and old.split()[0] in warned[0], done.stderr
    assert "resuming" not in done.stderr
    assert program.logs() == []  # nothing left but the archive of the old run
    assert len(list((tmp_path / ".checkpointify").glob("*.ckpt.stale"))) == 1


def test_an_unchanged_constant_resumes(tmp_path: Path) -> None:
    program = Program(tmp_path, CONSTANTS)
    program.kill_after(4)
    expected = program.expected()
    done = program.run(program.rewritten)
    assert done.returncode == 0 and "resuming" in done.stderr, done.stderr
    assert _warned(done) == []
    assert program.outputs() == expected


def test_an_edited_constant_in_strict_mode_raises(tmp_path: Path) -> None:
    program = Program(tmp_path, CONSTANTS)
    program.kill_after(4)
    _edit(program, 'MODEL = "small"', 'MODEL = "large"')
    done = program.run(program.rewritten, env=STRICT)
    assert done.returncode != 0 and "StaleCheckpointError" in done.stderr and "MODEL" in done.stderr
    assert len(program.logs()) == 1  # kept for the user to decide
