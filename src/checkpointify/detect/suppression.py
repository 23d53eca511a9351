"""Inline suppression comments: ``# checkpointify: ignore`` and ``# noqa: CKP001``.

A comment on the loop's first line or on the line of the save suppresses the finding
(and its fix). ``# checkpointify: ignore`` and a bare ``# noqa`` suppress every code;
``# checkpointify: ignore[CKP001]`` and ``# noqa: CKP001, E501`` only the codes named.
"""

from __future__ import annotations

import io
import re
import tokenize
from typing import AbstractSet, Dict, FrozenSet, Optional

_IGNORE = re.compile(r"#\s*checkpointify:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_CODE = re.compile(r"[A-Z]+[0-9]+")
#: what every suppression comment contains (a necessary condition, checked before tokenizing)
_WORDS = re.compile(r"checkpointify|noqa", re.IGNORECASE)


def suppression_comments(
    code: str, lines: Optional[AbstractSet[int]] = None
) -> Dict[int, Optional[FrozenSet[str]]]:
    """Line number -> the codes a comment there suppresses (None: all of them).

    With ``lines``, only those lines matter to the caller: when none of them holds the
    word of a suppression comment, the module is not tokenized and nothing is returned.
    """
    found: Dict[int, Optional[FrozenSet[str]]] = {}
    if lines is not None and not _mentioned(code, lines):
        return found
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return found
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        for pattern in (_IGNORE, _NOQA):
            match = pattern.search(token.string)
            if match:
                codes = match.group("codes")
                found[token.start[0]] = frozenset(_CODE.findall(codes.upper())) if codes else None
                break
    return found


def _mentioned(code: str, lines: AbstractSet[int]) -> bool:
    """Whether one of ``lines`` holds ``checkpointify`` or ``noqa``. Lines are counted as
    tokenize counts them here (``io.StringIO.readline`` ends a line at ``\\n`` only), and a
    comment never spans two lines, so a comment that suppresses something on line L makes
    this true for L."""
    line, counted = 1, 0
    for match in _WORDS.finditer(code):
        line += code.count("\n", counted, match.start())
        counted = match.start()
        if line in lines:
            return True
    return False
