"""The source lines of a finding, with the accumulator, the loop and the sink marked.

What ``scan``'s text output shows under each finding (like ruff's full output)::

       |
    19 | rows = []
       | ^^^^ accumulator
    20 | for p in os.listdir("x"):
       | ^^^^^^^^^^^^^^^^^^^^^^^^^ loop
    21 |     rows.append(load(p))
    22 | json.dump(rows, open("o.json", "w"))
       | ^^^^^^^^^ sink
       |

A finding carries the loop's lines, the accumulators' names and the sink's name; the
accumulators' lines are their nearest bindings above the loop, the
sink's the first line after the loop that names the sink. A long loop body is elided in
the middle. Pure: lines in, lines out; a position it cannot find is simply not marked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from checkpointify.types import Finding

#: how far above the loop the accumulator's binding, and below it the sink, are looked for
_REACH = 30
#: loop body lines shown at most (first and last ones; the middle is elided)
_BODY = 6


@dataclass(frozen=True)
class Line:
    """One line of a snippet: ``kind`` is "code" (a numbered source line), "mark" (the
    markers under it), "elided" or "edge" (the empty gutter above and below)."""

    text: str
    kind: str


def _binding(lines: Sequence[str], name: str, loop: int) -> Optional[Tuple[int, int]]:
    """(0-based line, column) of the last binding of ``name`` in the lines above ``loop``."""
    pattern = re.compile(r"^(\s*)(%s)\s*(?::[^=]*)?=(?!=)" % re.escape(name))
    for index in range(loop - 1, max(-1, loop - 1 - _REACH), -1):
        match = pattern.match(lines[index])
        if match:
            return index, match.start(2)
    return None


def _sink(lines: Sequence[str], sink: str, end: int) -> Optional[Tuple[int, int, int]]:
    """(0-based line, start, end column) of the first mention of the sink after the loop."""
    words = [w for w in (sink, sink.rsplit(".", 1)[-1]) if w]
    for index in range(end, min(len(lines), end + _REACH)):
        for word in words:
            found = re.search(r"(?<!\w)%s\b" % re.escape(word), lines[index])
            if found:
                return index, found.start(), found.end()
    return None


def snippet(finding: Finding, lines: Sequence[str]) -> List[Line]:
    """The snippet of ``finding`` in a file of ``lines`` (no line endings); empty for a
    notebook finding or when the loop is not where the finding says."""
    loop = finding.line - 1
    if finding.cell is not None or not 0 <= loop < len(lines):
        return []
    end = min(max(finding.end_line, finding.line), len(lines))  # the loop's last line, 1-based
    marks: Dict[int, Tuple[int, int, str]] = {}
    header = lines[loop]
    start = max(finding.column - 1, len(header) - len(header.lstrip()))
    marks[loop] = (start, len(header.rstrip()), "loop")
    top = loop
    for name in finding.accumulators:
        bound = _binding(lines, name, loop)
        if bound is not None and bound[0] not in marks:
            marks[bound[0]] = (bound[1], bound[1] + len(name), "accumulator")
            top = min(top, bound[0])
    bottom = end - 1
    sunk = _sink(lines, finding.sink, end) if finding.sink else None
    if sunk is not None:
        marks[sunk[0]] = (sunk[1], sunk[2], "sink")
        bottom = sunk[0]
    shown = list(range(top, bottom + 1))
    body = list(range(loop + 1, end))
    if len(body) > _BODY:
        hidden = set(body[_BODY // 2 : len(body) - _BODY // 2])
        shown = [i for i in shown if i not in hidden or i in marks]
    width = len(str(bottom + 1))
    gutter = " " * width + " |"
    out = [Line(gutter, "edge")]
    previous = None
    for index in shown:
        if previous is not None and index != previous + 1:
            out.append(Line(" " * width + " :", "elided"))
        out.append(Line(("%*d | %s" % (width, index + 1, lines[index])).rstrip(), "code"))
        if index in marks:
            first, last, label = marks[index]
            out.append(Line("%s %s%s %s" % (gutter, " " * first, "^" * max(1, last - first), label), "mark"))
        previous = index
    out.append(Line(gutter, "edge"))
    return out
