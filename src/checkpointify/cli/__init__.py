"""The command line: ``scan``, ``diff`` and ``fix`` over one engine run, and
``checkpoints`` over the logs the rewritten programs leave.

``main(argv) -> int`` is the testable entry point; ``entry_point`` is the console script.
The three rewrite commands differ only in what they print and write; their exit codes
all come from :func:`checkpointify.output.report.exit_code`.

Modules: :mod:`.app` (the click group, errors, notes and data output), :mod:`.options`
(shared click options), :mod:`.commands` (scan, diff, fix), :mod:`.review` (``fix -i``),
:mod:`.checkpoints` and :mod:`.inventory` (the ``checkpoints`` group).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import List, Optional, Sequence

import click

from checkpointify.cli import checkpoints, commands, rule  # noqa: F401  (they register their commands)
from checkpointify.cli.app import CliError, cli
from checkpointify.output.report import Exit, say

__all__ = ["cli", "entry_point", "main"]


class Terminated(BaseException):
    """SIGTERM, as an exception: every ``finally`` runs (no temporary file is left behind)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    SIGTERM is turned into an exception while it runs (exit 143, like Ctrl-C's 130), so that
    an interrupted ``fix`` cleans up as it does on Ctrl-C."""
    args = list(sys.argv[1:] if argv is None else argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(args)
    except Terminated:
        say("Terminated.")
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(args: List[str]) -> int:
    try:
        result = cli.main(args=args, prog_name="checkpointify", standalone_mode=False)
    except click.UsageError as exc:
        say("checkpointify: error: %s" % exc.format_message(), style="red")
        if exc.ctx is not None:
            say(exc.ctx.get_usage())
        return Exit.USAGE
    except CliError as exc:
        say("checkpointify: error: %s" % exc.format_message(), style="red")
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        say("Aborted.")
        return 130
    except KeyboardInterrupt:
        say("Interrupted.")
        return 130
    return int(result) if isinstance(result, int) else Exit.OK


def entry_point() -> None:
    sys.exit(main())
