"""The pre-commit hooks and the GitHub Action: parsed, checked against the CLI, and run.

* ``.pre-commit-hooks.yaml`` runs under a real ``pre-commit try-repo`` (which builds a
  virtualenv and pip-installs this repository, so it needs the package index). try-repo
  takes the repository's committed files plus uncommitted changes to tracked files; a
  new file must be at least ``git add``-ed to be part of what it installs.
* ``action.yml`` cannot run GitHub's own actions here, but its shell steps can: they are
  run with bash exactly as written, with the inputs in the environment the way the
  runner passes them, and their outputs checked (SARIF file, exit code, patch).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import click
import pytest
import yaml

from checkpointify.cli import cli
from tests.support.programs import SCRIPT

REPO = Path(__file__).resolve().parents[2]


GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def load(name: str) -> Any:
    return yaml.safe_load((REPO / name).read_text())


def check_command(words: List[str]) -> None:
    """``checkpointify SUB --opt ...`` names a real subcommand and only real options."""
    assert words[0] == "checkpointify", words
    command = cli.commands.get(words[1])
    assert isinstance(command, click.Command), "no subcommand %r" % words[1]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in words[2:]:
        if word.startswith("-") and word != "-":
            assert word.split("=")[0] in known, "checkpointify %s has no option %s" % (words[1], word)


def commands_in(script: str) -> List[List[str]]:
    found = []
    for line in script.splitlines():
        line = line.strip()
        if line.startswith("checkpointify "):
            found.append(shlex.split(line.split("#")[0]))
    return found


# --------------------------------------------------------------------------- pre-commit


def test_pre_commit_hooks_manifest() -> None:
    hooks = {hook["id"]: hook for hook in load(".pre-commit-hooks.yaml")}
    assert set(hooks) == {"checkpointify", "checkpointify-fix"}
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["types"] == ["python"]
        words = shlex.split(hook["entry"])
        check_command(words)
        assert "--interactive" not in words and "-i" not in words
    assert shlex.split(hooks["checkpointify"]["entry"])[1] == "scan"
    assert shlex.split(hooks["checkpointify-fix"]["entry"])[1] == "fix"


def _pre_commit(args: List[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_pre_commit_try_repo_runs_both_hooks(tmp_path: Path) -> None:
    """Scan fails on a finding, fix rewrites it; after that both hooks pass."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs this repository as a git checkout")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (project / "job.py").write_bytes(SCRIPT)
    (project / "notes.txt").write_text("not python\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "seed"], cwd=project, check=True, env={**os.environ, **GIT_ENV})
    home = tmp_path / "pre-commit-home"

    started = time.monotonic()
    first = _pre_commit(["try-repo", str(REPO), "--all-files"], project, home)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    scan_part, fix_part = output.split("checkpointify fix..", 1)
    assert re.search(r"checkpointify scan\.+Failed", scan_part), output
    assert "job.py:4:1: CKP001 `results` is collected in this loop" in scan_part
    assert "notes.txt" not in scan_part  # types: [python]
    assert re.search(r"^\.+Failed", fix_part, re.M) and "files were modified by this hook" in fix_part
    assert "checkpointify rewrote 1 loop in 1 file." in fix_part
    fixed = (project / "job.py").read_bytes()
    assert b'ckpt = checkpoint("job.py::<module>::results"' in fixed

    second = _pre_commit(["try-repo", str(REPO), "--all-files"], project, home)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert re.search(r"checkpointify scan\.+Passed", output) and re.search(
        r"checkpointify fix\.+Passed", output
    )
    assert (project / "job.py").read_bytes() == fixed
    print("pre-commit try-repo, two runs: %.1f s" % (time.monotonic() - started))


# -------------------------------------------------------------------------------- action


def test_action_manifest_is_a_composite_action_over_real_commands() -> None:
    action = load("action.yml")
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert {"mode", "paths", "args", "sarif-file"} <= set(inputs)
    assert inputs["mode"]["default"] == "scan"
    steps = action["runs"]["steps"]
    uses = [step["uses"].split("@")[0] for step in steps if "uses" in step]
    assert uses == [
        "actions/setup-python",
        "github/codeql-action/upload-sarif",
        "reviewdog/action-setup",
        "actions/upload-artifact",
    ]
    commands = [words for step in steps for words in commands_in(step.get("run", ""))]
    assert [words[1] for words in commands] == ["scan", "scan", "fix"]
    for words in commands:
        check_command(words)
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"
            assert "${{" not in step["run"], "inputs go through env, not into the script: %s" % step["name"]


def _step(name: str) -> Dict[str, Any]:
    [step] = [s for s in load("action.yml")["runs"]["steps"] if s.get("name") == name]
    return step


def _run_step(
    step: Dict[str, Any], inputs: Dict[str, str], cwd: Path, outputs: Path, extra: Dict[str, str]
) -> int:
    """Run a `run:` step with bash the way the runner does: `${{ inputs.X }}` env values filled in."""
    env = {**os.environ, **GIT_ENV, "GITHUB_OUTPUT": str(outputs), **extra}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    for key, value in step.get("env", {}).items():
        match = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", value)
        if match:
            env[key] = inputs[match.group(1)]
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, env=env)
    return done.returncode


def _defaults(**overrides: str) -> Dict[str, str]:
    inputs = {name: str(spec.get("default", "")) for name, spec in load("action.yml")["inputs"].items()}
    inputs.update(overrides)
    return inputs


def _outputs(path: Path) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def _git_project(tmp_path: Path) -> Path:
    project = tmp_path / "checkout"
    (project / "src").mkdir(parents=True)
    (project / "src" / "job.py").write_bytes(SCRIPT)
    (project / "other.py").write_bytes(SCRIPT)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-qm", "seed"], cwd=project, check=True, env={**os.environ, **GIT_ENV})
    return project


def test_action_scan_step_writes_sarif_and_records_the_exit_code(tmp_path: Path) -> None:
    project = _git_project(tmp_path)
    outputs = tmp_path / "github_output"
    inputs = _defaults(paths="src")
    assert _run_step(_step("checkpointify scan"), inputs, project, outputs, {}) == 0  # never fails itself
    assert _outputs(outputs) == {"exit-code": "1"}
    sarif = json.loads((project / "checkpointify.sarif").read_text())
    [result] = sarif["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/job.py"
    assert result["fixes"]
    final = _step("Exit with checkpointify's exit code")
    code = subprocess.run(
        ["bash", "-c", final["run"]],
        env={**os.environ, "CHECKPOINTIFY_EXIT": "1", "CHECKPOINTIFY_MODE": "scan"},
    ).returncode
    assert code == 1

    outputs.unlink()
    inputs = _defaults(paths="src", args="--exit-zero")
    assert _run_step(_step("checkpointify scan"), inputs, project, outputs, {}) == 0
    assert _outputs(outputs) == {"exit-code": "0"}


def test_action_fix_step_leaves_a_patch_that_applies_to_a_clean_checkout(tmp_path: Path) -> None:
    project = _git_project(tmp_path)
    outputs = tmp_path / "github_output"
    assert _run_step(_step("checkpointify fix"), _defaults(mode="fix"), project, outputs, {}) == 0
    assert _outputs(outputs) == {"exit-code": "0", "changed": "true"}
    patch = project / "checkpointify.patch"
    clean = tmp_path / "clean"
    subprocess.run(["git", "clone", "-q", str(project), str(clean)], check=True)
    subprocess.run(["git", "apply", "--check", str(patch)], cwd=clean, check=True)
    subprocess.run(["git", "apply", str(patch)], cwd=clean, check=True)
    for name in ["src/job.py", "other.py"]:
        assert (clean / name).read_bytes() == (project / name).read_bytes()


def test_action_fix_step_with_exit_non_zero_on_fix_records_1(tmp_path: Path) -> None:
    project = _git_project(tmp_path)
    outputs = tmp_path / "github_output"
    inputs = _defaults(mode="fix", args="--exit-non-zero-on-fix", paths="src")
    assert _run_step(_step("checkpointify fix"), inputs, project, outputs, {}) == 0
    assert _outputs(outputs) == {"exit-code": "1", "changed": "true"}
    assert (project / "other.py").read_bytes() == SCRIPT  # only the paths given


def test_action_review_step_writes_rdjson_that_reviewdog_reads(tmp_path: Path) -> None:
    """The review mode's shell steps: the payload, valid against reviewdog's schema, and the
    reviewdog command line that reads it. reviewdog itself and the pull request it posts to
    exist only on GitHub: that step is checked as text here, not run."""
    import jsonschema

    project = _git_project(tmp_path)
    outputs = tmp_path / "github_output"
    inputs = _defaults(mode="review", paths="src")
    assert _run_step(_step("checkpointify review"), inputs, project, outputs, {}) == 0
    assert _outputs(outputs) == {"exit-code": "1"}
    document = json.loads((project / "checkpointify.rdjson").read_text())
    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "schemas" / "reviewdog-rdjson.schema.json").read_text()
    )
    jsonschema.Draft4Validator(schema).validate(document)
    [diagnostic] = document["diagnostics"]
    assert diagnostic["location"]["path"] == "src/job.py" and diagnostic["suggestions"]
    post = _step("Post the suggestions with reviewdog")
    words = shlex.split(post["run"].replace("\\\n", " "))
    assert words[:4] == ["reviewdog", "-f=rdjson", "-name=checkpointify", "-reporter=$CHECKPOINTIFY_REPORTER"]
    assert words[-2:] == ["<", "$CHECKPOINTIFY_RDJSON"]
    assert post["env"]["CHECKPOINTIFY_RDJSON"] == "${{ inputs.rdjson-file }}"
    assert _defaults()["reviewdog-reporter"] == "github-pr-review"
    final = _step("Exit with checkpointify's exit code")
    code = subprocess.run(
        ["bash", "-c", final["run"]],
        env={**os.environ, "CHECKPOINTIFY_EXIT": "1", "CHECKPOINTIFY_MODE": "review"},
    ).returncode
    assert code == 1
