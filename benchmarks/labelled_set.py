"""Measure checkpointify against the hand-labelled set of real user code.

The labels live in ``docs/labelled-set/labels.csv`` (see the README next to
it).  The third-party files they point at are never committed; this script
finds each one either in a cache directory laid out as
``<cache>/<owner>+<name>/<commit>/<path>`` or in a bare git mirror under
``/work/.mirror/<owner>+<name>*`` (read with ``git --git-dir=... show
<commit>:<path>``).  Files found in neither place are listed as "not
available", never skipped silently.

The files are copied into a temporary tree ``<tmp>/<owner>+<name>/<path>``,
scanned once with ``checkpointify scan --format json --no-cache -q <tmp>``
and every finding is matched to the labels:

* a finding matches a positive label of the same file (and the same cell for
  notebooks) when its line lies within the label's [line, end_line], or the
  label's line lies within the finding's [line, end_line];
* each label is matched at most once; every other finding is a false
  positive (on a labelled negative, on an unlabelled loop, or a duplicate of
  an already matched positive).

Stdlib only.  Usage::

    python benchmarks/labelled_set.py                      # checkpointify on PATH
    python benchmarks/labelled_set.py --checkpointify ".venv/bin/checkpointify"
    python benchmarks/labelled_set.py --json > result.json
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LABELS = ROOT / "docs" / "labelled-set" / "labels.csv"
DEFAULT_CACHE = "/work/labelled-cache"
DEFAULT_MIRRORS = "/work/.mirror"
SHAPES = (
    "collect-loop",
    "db-commit",
    "queue-ack",
    "helper-return",
    "executor",
    "asyncio",
    "pandas-apply",
    "nonliteral-accumulator",
    "block-structure",
)
KINDS = ("py", "ipynb")


@dataclass
class Label:
    id: str
    repo: str
    commit: str
    path: str
    kind: str
    cell: int | None
    line: int
    end_line: int
    shape: str
    label: str
    why: str
    matched_by: dict | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.repo, self.path)

    def where(self) -> str:
        cell = f"[cell {self.cell}]" if self.cell is not None else ""
        return f"{self.repo}/{self.path}{cell}:{self.line}-{self.end_line}"


@dataclass
class FileEntry:
    repo: str
    commit: str
    path: str
    kind: str
    labels: list[Label] = field(default_factory=list)
    source: str = ""  # "cache", "mirror" or "" (not available)
    findings: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def tmp_rel(self) -> str:
        return f"{self.repo.replace('/', '+', 1)}/{self.path}"


def read_labels(path: Path) -> list[Label]:
    labels = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cell = row["cell"].strip()
            labels.append(
                Label(
                    id=row["id"],
                    repo=row["repo"],
                    commit=row["commit"],
                    path=row["path"],
                    kind=row["kind"],
                    cell=int(cell) if cell else None,
                    line=int(row["line"]),
                    end_line=int(row["end_line"]),
                    shape=row["shape"],
                    label=row["label"],
                    why=row["why"],
                )
            )
    return labels


def group_files(labels: list[Label]) -> list[FileEntry]:
    files: dict[tuple[str, str], FileEntry] = {}
    for lab in labels:
        entry = files.get(lab.key)
        if entry is None:
            entry = files[lab.key] = FileEntry(lab.repo, lab.commit, lab.path, lab.kind)
        elif entry.commit != lab.commit:
            raise SystemExit(f"{lab.id}: {lab.repo}/{lab.path} labelled at two commits")
        entry.labels.append(lab)
    return list(files.values())


def _mirror_git_dirs(mirrors: str, repo: str) -> list[str]:
    owner_name = repo.replace("/", "+", 1)
    found = []
    for cand in sorted(glob.glob(os.path.join(mirrors, glob.escape(owner_name) + "*"))):
        for git_dir in (
            os.path.join(cand, "repo", ".git"),
            os.path.join(cand, "repo"),
            os.path.join(cand, ".git"),
            cand,
        ):
            if os.path.isfile(os.path.join(git_dir, "HEAD")) and os.path.isdir(
                os.path.join(git_dir, "objects")
            ):
                found.append(git_dir)
                break
    return found


def materialise(entry: FileEntry, cache: str, mirrors: str, dest_root: Path) -> None:
    dest = dest_root / entry.tmp_rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    cached = Path(cache) / entry.repo.replace("/", "+", 1) / entry.commit / entry.path
    if cached.is_file():
        shutil.copyfile(cached, dest)
        entry.source = "cache"
        return
    for git_dir in _mirror_git_dirs(mirrors, entry.repo):
        proc = subprocess.run(
            ["git", f"--git-dir={git_dir}", "show", f"{entry.commit}:{entry.path}"],
            capture_output=True,
        )
        if proc.returncode == 0:
            dest.write_bytes(proc.stdout)
            entry.source = "mirror"
            return
    entry.source = ""


def tool_command(spec: str | None) -> list[str]:
    if spec:
        return shlex.split(spec)
    exe = shutil.which("checkpointify")
    if exe:
        return [exe]
    return [sys.executable, "-m", "checkpointify"]


def run_scan(cmd: list[str], target: Path) -> tuple[dict | None, str]:
    full = cmd + ["scan", "--format", "json", "--no-cache", "-q", str(target)]
    try:
        proc = subprocess.run(full, capture_output=True, text=True)
    except OSError as exc:
        return None, f"could not run {shlex.join(full)}: {exc}"
    try:
        return json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        return None, (
            f"{shlex.join(full)} exited {proc.returncode} without JSON on stdout\n"
            f"stdout: {proc.stdout[:2000]}\nstderr: {proc.stderr[:2000]}"
        )


_PROBE_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["probe\n"]},
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": [
                "import json\n",
                "results = []\n",
                "for item in items:\n",
                "    results.append(expensive_operation(item))\n",
                "with open('out.json', 'w') as f:\n",
                "    json.dump(results, f)\n",
            ],
        },
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def notebooks_supported(cmd: list[str]) -> bool:
    """Does this version of the tool report findings inside notebooks?"""
    with tempfile.TemporaryDirectory(prefix="ckp-nb-probe-") as tmp:
        (Path(tmp) / "probe.ipynb").write_text(json.dumps(_PROBE_NOTEBOOK), encoding="utf-8")
        report, _ = run_scan(cmd, Path(tmp))
    return bool(report and report.get("findings"))


def _rel(path: str, root: Path) -> str | None:
    p = Path(path)
    if not p.is_absolute():
        p = Path.cwd() / p
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _overlaps(finding: dict, lab: Label) -> bool:
    f_start = int(finding.get("line") or 0)
    f_end = int(finding.get("end_line") or f_start)
    return lab.line <= f_start <= lab.end_line or f_start <= lab.line <= f_end


def _finding_cell(finding: dict) -> int | None:
    cell = finding.get("cell")
    return int(cell) if cell is not None else None


def match_file(entry: FileEntry) -> list[dict]:
    """Mark matched positive labels; return the false positives of this file."""
    fps = []
    for finding in sorted(entry.findings, key=lambda f: (_finding_cell(f) or 0, f.get("line", 0))):
        cell = _finding_cell(finding)

        def same_place(lab: "Label", cell: "object" = cell, finding: "dict" = finding) -> bool:
            return (entry.kind != "ipynb" or lab.cell == cell) and _overlaps(finding, lab)

        candidates = [lab for lab in entry.labels if lab.label == "positive" and same_place(lab)]
        free = [lab for lab in candidates if lab.matched_by is None]
        if free:
            best = min(
                free, key=lambda lab: (abs(lab.line - int(finding.get("line", 0))), lab.end_line - lab.line)
            )
            best.matched_by = finding
            continue
        negatives = [lab for lab in entry.labels if lab.label == "negative" and same_place(lab)]
        if negatives:
            neg = negatives[0]
            reason, shape, why, label_id = "on labelled negative", neg.shape, neg.why, neg.id
        elif candidates:
            pos = candidates[0]
            reason, shape, why, label_id = "duplicate of matched positive", pos.shape, pos.why, pos.id
        else:
            reason, shape, why, label_id = "on unlabelled code", "(unlabelled)", "", ""
        fps.append(
            {
                "repo": entry.repo,
                "path": entry.path,
                "kind": entry.kind,
                "cell": cell,
                "line": finding.get("line"),
                "end_line": finding.get("end_line"),
                "reason": reason,
                "shape": shape,
                "label": label_id,
                "why": why,
                "message": finding.get("message", ""),
                "sink": finding.get("sink"),
            }
        )
    return fps


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def summarise(labels: list[Label], fps: list[dict], scanned: set[tuple[str, str]]) -> dict:
    """Counts per (kind, shape) over the scanned files only."""
    table: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"positives": 0, "tp": 0, "fn": 0, "fp": 0, "negatives": 0}
    )
    for lab in labels:
        if lab.key not in scanned:
            continue
        for kind in (lab.kind, "all"):
            for shape in (lab.shape, "ALL"):
                row = table[(kind, shape)]
                if lab.label == "positive":
                    row["positives"] += 1
                    row["tp" if lab.matched_by else "fn"] += 1
                else:
                    row["negatives"] += 1
    for fp in fps:
        for kind in (fp["kind"], "all"):
            for shape in (fp["shape"], "ALL"):
                table[(kind, shape)]["fp"] += 1
    out = {}
    for (kind, shape), row in table.items():
        row = dict(row)
        row["precision"] = _ratio(row["tp"], row["tp"] + row["fp"])
        row["recall"] = _ratio(row["tp"], row["tp"] + row["fn"])
        out.setdefault(kind, {})[shape] = row
    return out


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:5.2f}"


def print_report(result: dict, out=sys.stdout) -> None:
    w = lambda s="": print(s, file=out)  # noqa: E731
    w(f"labels: {result['labels']}  files: {result['files']}  repos: {result['repos']}")
    w(f"tool: {result['command']}")
    w(f"notebooks scanned by this version: {'yes' if result['notebooks_supported'] else 'no'}")
    w()
    order = list(SHAPES) + ["(unlabelled)", "ALL"]
    for kind in ("all", "py", "ipynb"):
        rows = result["summary"].get(kind)
        if not rows:
            continue
        w(f"== {kind} (scanned files only)")
        w(
            f"{'shape':24s} {'pos':>4s} {'TP':>4s} {'FN':>4s} {'FP':>4s} {'neg':>4s} {'prec':>6s} {'recall':>6s}"
        )
        for shape in order:
            r = rows.get(shape)
            if not r:
                continue
            w(
                f"{shape:24s} {r['positives']:4d} {r['tp']:4d} {r['fn']:4d} {r['fp']:4d} {r['negatives']:4d} "
                f"{_fmt(r['precision']):>6s} {_fmt(r['recall']):>6s}"
            )
        w()
    allrow = result["all_labels"]
    w(
        "all labelled positives, unscanned/unavailable files counted as missed: "
        f"{allrow['tp']}/{allrow['positives']} found (recall {_fmt(allrow['recall']).strip()})"
    )
    w()
    if result["not_available"]:
        w(f"== not available ({len(result['not_available'])} files; no cache copy, no mirror)")
        for f in result["not_available"]:
            w(f"  {f['repo']}/{f['path']} @ {f['commit'][:12]}")
        w()
    if result["not_scanned"]:
        w(f"== not scanned by this version ({len(result['not_scanned'])} notebooks)")
        for f in result["not_scanned"]:
            w(f"  {f['repo']}/{f['path']}  ({f['positives']} positive labels)")
        w()
    w(f"== false negatives ({len(result['false_negatives'])})")
    for fn in result["false_negatives"]:
        cell = f"[cell {fn['cell']}]" if fn["cell"] is not None else ""
        w(
            f"  {fn['repo']}/{fn['path']}{cell}:{fn['line']}-{fn['end_line']}  {fn['shape']}  {fn['id']}: {fn['why']}"
        )
    w()
    w(f"== false positives ({len(result['false_positives'])})")
    for fp in result["false_positives"]:
        cell = f"[cell {fp['cell']}]" if fp["cell"] is not None else ""
        tag = f" {fp['label']}" if fp["label"] else ""
        w(
            f"  {fp['repo']}/{fp['path']}{cell}:{fp['line']}-{fp['end_line']}  {fp['shape']}  {fp['reason']}{tag}"
        )
        if fp["why"]:
            w(f"      label: {fp['why']}")
        w(f"      tool:  {fp['message']}")
    w()
    if result["tool_errors"]:
        w(f"== tool errors ({len(result['tool_errors'])} files)")
        for e in result["tool_errors"]:
            w(f"  {e['file']}: {e['error']}")
        w()
    if result.get("stderr"):
        w("== tool stderr")
        w(result["stderr"].rstrip())


def evaluate(args: argparse.Namespace) -> dict:
    labels = read_labels(Path(args.labels))
    files = group_files(labels)
    cmd = tool_command(args.checkpointify)
    with tempfile.TemporaryDirectory(prefix="ckp-labelled-") as tmp:
        root = Path(tmp)
        for entry in files:
            materialise(entry, args.cache, args.mirrors, root)
        available = [e for e in files if e.source]
        report, stderr = run_scan(cmd, root) if available else ({"findings": [], "errors": []}, "")
        if report is None:
            raise RuntimeError(stderr)
        by_rel = {e.tmp_rel: e for e in available}
        unknown = []
        for finding in report.get("findings", []):
            rel = _rel(str(finding.get("path", "")), root)
            entry = by_rel.get(rel or "")
            (entry.findings if entry else unknown).append(finding)
        for err in report.get("errors", []):
            if isinstance(err, dict):
                rel = _rel(str(err.get("path", "")), root)
                text = err.get("message") or err.get("error") or json.dumps(err)
            else:
                rel, text = None, str(err)
            entry = by_rel.get(rel or "")
            if entry:
                entry.errors.append(str(text))
            else:
                unknown.append({"error": str(text)})
    nb_findings = any(
        _finding_cell(f) is not None for e in available if e.kind == "ipynb" for f in e.findings
    )
    nb_supported = nb_findings or (any(e.kind == "ipynb" for e in available) and notebooks_supported(cmd))
    scanned = {(e.repo, e.path) for e in available if e.kind == "py" or nb_supported}
    fps = []
    for entry in available:
        if (entry.repo, entry.path) in scanned:
            fps.extend(match_file(entry))
    positives = [lab for lab in labels if lab.label == "positive"]
    tp_all = sum(1 for lab in positives if lab.matched_by)
    result = {
        "labels": len(labels),
        "files": len(files),
        "repos": len({e.repo for e in files}),
        "command": shlex.join(cmd),
        "notebooks_supported": nb_supported,
        "summary": summarise(labels, fps, scanned),
        "all_labels": {
            "positives": len(positives),
            "tp": tp_all,
            "recall": _ratio(tp_all, len(positives)),
        },
        "not_available": [
            {"repo": e.repo, "path": e.path, "commit": e.commit} for e in files if not e.source
        ],
        "not_scanned": [
            {
                "repo": e.repo,
                "path": e.path,
                "positives": sum(1 for lab in e.labels if lab.label == "positive"),
            }
            for e in available
            if (e.repo, e.path) not in scanned
        ],
        "false_negatives": [
            {
                "id": lab.id,
                "repo": lab.repo,
                "path": lab.path,
                "kind": lab.kind,
                "cell": lab.cell,
                "line": lab.line,
                "end_line": lab.end_line,
                "shape": lab.shape,
                "why": lab.why,
            }
            for lab in positives
            if lab.key in scanned and not lab.matched_by
        ],
        "false_positives": fps,
        "tool_errors": [{"file": f"{e.repo}/{e.path}", "error": err} for e in available for err in e.errors]
        + [{"file": "(unmatched)", "error": json.dumps(u)[:500]} for u in unknown],
        "stderr": stderr.strip(),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", default=str(DEFAULT_LABELS), help="labels CSV (default: %(default)s)")
    parser.add_argument(
        "--cache", default=DEFAULT_CACHE, help="cache of third-party files (default: %(default)s)"
    )
    parser.add_argument(
        "--mirrors", default=DEFAULT_MIRRORS, help="folder of fetched git mirrors (default: %(default)s)"
    )
    parser.add_argument(
        "--checkpointify",
        metavar="CMD",
        default=None,
        help="command to run the tool (default: checkpointify on PATH, else python -m checkpointify)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)
    try:
        result = evaluate(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
