"""``checkpointify rule CODE`` / ``--all``: a rule's documentation page in the terminal."""

from __future__ import annotations

import sys
from typing import Optional

import click

from checkpointify.cli.app import CliError, cli
from checkpointify.output import rulepages
from checkpointify.output.report import Exit


@cli.command("rule")
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="Print every rule's page.")
def rule(code: Optional[str], show_all: bool) -> int:
    """Print the documentation of a rule (CKP001...): what it finds, why, an example and its
    fix, fix safety and hazards. Rendered on a terminal, Markdown when piped."""
    if show_all == (code is not None):
        raise CliError("give one rule code (%s) or --all" % ", ".join(rulepages.codes()))
    wanted = rulepages.codes() if show_all else [code.upper() if code else ""]
    unknown = [c for c in wanted if c not in rulepages.codes()]
    if unknown:
        raise CliError("unknown rule %s (known: %s)" % (unknown[0], ", ".join(rulepages.codes())))
    text = "\n\n".join(rulepages.page(c) for c in wanted)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return Exit.OK
