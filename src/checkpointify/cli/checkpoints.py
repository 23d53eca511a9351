"""``checkpointify checkpoints``: list (the default), show and clear the logs rewritten programs leave."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Union

import click

from checkpointify.cli import inventory as checkpoints
from checkpointify.cli.app import cli
from checkpointify.output.report import Exit, color_for, error, say


def _location(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Union[Path, str, None]:
    """A folder (a Path), or an object-store URL (kept as text: ``s3://bucket/prefix``)."""
    if value is None:
        return None
    return value.rstrip("/") if checkpoints.is_url(value) else Path(value)


_dir = click.option(
    "--dir",
    "directory",
    type=str,
    callback=_location,
    default=None,
    help="Checkpoint directory or object-store URL such as s3://bucket/prefix "
    "(default: $CHECKPOINTIFY_DIR, else ./.checkpointify).",
)

Where = Union[Path, str]


def _checkpoint_dir(directory: Optional[Where]) -> Where:
    if directory is not None:
        return directory
    parent = click.get_current_context().find_object(_CheckpointsDir)
    return parent.path if parent is not None and parent.path is not None else checkpoints.default_dir()


class _CheckpointsDir:
    def __init__(self, path: Optional[Where]) -> None:
        self.path = path


def _foreign_note(foreign: List[Path]) -> None:
    if foreign:
        names = ", ".join(p.name for p in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        say(
            "checkpointify: ignored %d file%s that %s not checkpointify logs (%s)."
            % (len(foreign), "" if len(foreign) == 1 else "s", "is" if len(foreign) == 1 else "are", names)
        )


def _list_checkpoints(directory: Where) -> int:
    foreign: List[Path] = []
    entries = checkpoints.load(directory, foreign)
    _foreign_note(foreign)
    if not entries:
        say("No checkpoints in %s." % checkpoints.shown(directory))
        return Exit.OK
    checkpoints.render_table(checkpoints.rows(entries), sys.stdout, color_for(sys.stdout))
    sys.stdout.flush()
    for line in checkpoints.shard_summary(entries):
        say(line)
    busy = sum(1 for e in entries if e.info is not None and e.info.writer is not None)
    say(
        "%d checkpoint%s in %s%s."
        % (
            len(entries),
            "" if len(entries) == 1 else "s",
            checkpoints.shown(directory),
            ", %d in use" % busy if busy else "",
        )
    )
    return Exit.OK


@cli.group("checkpoints", invoke_without_command=True)
@_dir
@click.pass_context
def checkpoints_group(ctx: click.Context, directory: Optional[Where]) -> Optional[int]:
    """List (the default), show or clear the checkpoints rewritten programs leave behind."""
    ctx.obj = _CheckpointsDir(directory)
    if ctx.invoked_subcommand is None:
        return _list_checkpoints(_checkpoint_dir(directory))
    return None


@checkpoints_group.command("list")
@_dir
def checkpoints_list(directory: Optional[Where]) -> int:
    """A table of the checkpoints: loop, source, units done, size, age, state."""
    return _list_checkpoints(_checkpoint_dir(directory))


def _selected(directory: Where, ident: str) -> List[checkpoints.Entry]:
    foreign: List[Path] = []
    chosen = checkpoints.select(checkpoints.load(directory, foreign), ident)
    named = [p for p in foreign if ident.strip() in (p.name, p.name[: -len(".ckpt")])]
    if not chosen and named:
        error(ident, "%s is not a checkpointify log; left alone" % checkpoints.shown(named[0]))
    elif not chosen:
        error(
            ident,
            "no such checkpoint in %s (see `checkpointify checkpoints list`)" % checkpoints.shown(directory),
        )
    return chosen


@checkpoints_group.command("show")
@click.argument("ident", metavar="ID")
@_dir
def checkpoints_show(ident: str, directory: Optional[Where]) -> int:
    """Everything about one checkpoint: ID, file name, hash or loop id. Exit 1 if not found."""
    chosen = _selected(_checkpoint_dir(directory), ident)
    for index, entry in enumerate(chosen):
        if index:
            sys.stdout.write("\n")
        checkpoints.render_details(checkpoints.details(entry), sys.stdout)
    return Exit.OK if chosen else Exit.FAILED


@checkpoints_group.command("clear")
@click.argument("ident", metavar="[ID]", required=False)
@_dir
@click.option(
    "-y", "--yes", is_flag=True, help="Remove all checkpoints without asking (needed without a terminal)."
)
def checkpoints_clear(ident: Optional[str], directory: Optional[Where], yes: bool) -> int:
    """Remove one checkpoint (ID, file name, hash or loop id) or all of them, so that the
    loops start from zero. Removing all asks first on a terminal and needs --yes otherwise.
    Only checkpointify logs are touched (another tool's *.ckpt stays), and a checkpoint a
    running process uses is left alone (exit 1)."""
    where = _checkpoint_dir(directory)
    if ident is None:
        foreign: List[Path] = []
        chosen = checkpoints.load(where, foreign)
        _foreign_note(foreign)
        if chosen and not yes and not _confirmed(chosen, where):
            return Exit.USAGE if not _terminal() else Exit.FAILED
    else:
        chosen = _selected(where, ident)
        if not chosen:
            return Exit.FAILED
    removed, refused = checkpoints.clear(chosen)
    if ident is None and isinstance(where, Path):
        checkpoints.remove_orphan_locks(where)
    for path in removed:
        say("removed %s" % checkpoints.shown(path))
    for reason in refused:
        say("checkpointify: error: %s" % reason, style="red")
    if ident is None and not chosen:
        say("No checkpoints in %s." % checkpoints.shown(where))
    return Exit.FAILED if refused else Exit.OK


def _terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _confirmed(chosen: List[checkpoints.Entry], where: Where) -> bool:
    """Ask on a terminal before removing every checkpoint; without one, refuse (--yes)."""
    count = "%d checkpoint%s" % (len(chosen), "" if len(chosen) == 1 else "s")
    if not _terminal():
        error(
            checkpoints.shown(where),
            "clearing all %s needs --yes when not run from a terminal; nothing removed" % count,
        )
        return False
    if click.confirm("Remove all %s in %s?" % (count, checkpoints.shown(where)), default=False, err=True):
        return True
    say("Nothing removed.")
    return False
