"""``constants=``: another value archives the log of the old values; another key does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpointify.runtime import StaleCheckpointError, checkpoint


def _interrupted(folder: Path, key: object, constants: dict) -> None:
    """Run two units of a loop and leave its log behind, as a crash would."""
    out: list = []
    ckpt = checkpoint(
        "job.py::run::out", range(5), lambda: (out,), key=key, constants=constants, directory=folder
    )
    [out] = ckpt.restore()
    for n in ckpt:
        out.append(n)
        if n == 2:
            break
    ckpt.close()


def _finish(folder: Path, key: object, constants: dict, strict: bool = False) -> list:
    out: list = []
    ckpt = checkpoint(
        "job.py::run::out",
        range(5),
        lambda: (out,),
        key=key,
        constants=constants,
        directory=folder,
        strict=strict,
    )
    [out] = ckpt.restore()
    for n in ckpt:
        out.append(n)
    ckpt.complete()
    return out


def test_another_constant_archives_the_old_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _interrupted(tmp_path, ("a",), {"MODEL": "small"})
    assert len(list(tmp_path.glob("*.ckpt"))) == 1
    assert _finish(tmp_path, ("a",), {"MODEL": "large"}) == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "warning" in err and "MODEL changed" in err and "resuming" not in err
    assert list(tmp_path.glob("*.ckpt")) == [] and len(list(tmp_path.glob("*.ckpt.stale"))) == 1


def test_another_key_with_the_same_constants_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _interrupted(tmp_path, ("train",), {"MODEL": "small"})
    assert _finish(tmp_path, ("test",), {"MODEL": "small"}) == [0, 1, 2, 3, 4]
    assert "warning" not in capsys.readouterr().err
    assert len(list(tmp_path.glob("*.ckpt"))) == 1  # train's log, to be resumed by its own call
    assert _finish(tmp_path, ("train",), {"MODEL": "small"}) == [0, 1, 2, 3, 4]
    assert "resuming" in capsys.readouterr().err


def test_the_same_constants_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _interrupted(tmp_path, None, {"MODEL": "small", "N": 3})
    assert _finish(tmp_path, None, {"N": 3, "MODEL": "small"}) == [0, 1, 2, 3, 4]
    assert "resuming" in capsys.readouterr().err


def test_strict_mode_raises_and_keeps_the_log(tmp_path: Path) -> None:
    _interrupted(tmp_path, None, {"MODEL": "small"})
    with pytest.raises(StaleCheckpointError, match="MODEL"):
        _finish(tmp_path, None, {"MODEL": "large"}, strict=True)
    assert len(list(tmp_path.glob("*.ckpt"))) == 1
