"""The scan cache's key covers every module that decides a result (not only engine/)."""

from __future__ import annotations

from pathlib import Path

from checkpointify.engine import cache

PACKAGE = Path(cache.__file__).resolve().parents[1]


def test_the_code_fingerprint_covers_detection_rewrite_and_screening() -> None:
    covered = {p.relative_to(PACKAGE).as_posix() for p in cache._code_files()}
    for module in (
        "detect/matcher.py",
        "detect/parallel.py",
        "rewrite/transformer.py",
        "rewrite/layout.py",
        "prefilter/tree.py",
        "catalogue.py",
        "rules.py",
        "engine/pipeline.py",
    ):
        assert module in covered, module
    assert not any(name.startswith("runtime/") for name in covered)


def test_editing_a_detection_module_changes_the_fingerprint(tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "checkpointify"
    for path in cache._code_files():
        target = copy / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    monkeypatch.setattr(cache, "__file__", str(copy / "engine" / "cache.py"))
    before = cache._code_fingerprint()
    matcher = copy / "detect" / "matcher.py"
    matcher.write_bytes(matcher.read_bytes() + b"\n# edited\n")
    assert cache._code_fingerprint() != before
