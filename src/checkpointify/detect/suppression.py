"""Inline suppression comments: ``# checkpointify: ignore`` and ``# noqa: CKP001``.

A comment on the loop's first line or on the line of the save suppresses the finding
(and its fix). ``# checkpointify: ignore`` and a bare ``# noqa`` suppress every code;
``# checkpointify: ignore[CKP001]`` and ``# noqa: CKP001, E501`` only the codes named.
"""

from __future__ import annotations

import io
import re
import tokenize
from typing import Dict, FrozenSet, Optional

_IGNORE = re.compile(r"#\s*checkpointify:\s*ignore(?:\[(?P<codes>[^\]]*)\])?", re.IGNORECASE)
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
_CODE = re.compile(r"[A-Z]+[0-9]+")


def suppression_comments(code: str) -> Dict[int, Optional[FrozenSet[str]]]:
    """Line number -> the codes a comment there suppresses (None: all of them)."""
    found: Dict[int, Optional[FrozenSet[str]]] = {}
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
