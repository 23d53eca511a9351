"""The rewrite of a collect-async-shared plan (``detect/asyncshared.py``), call by call.

``process(x, sem)`` -> ``par.appends(results, process, x, sem)`` (form ``appends:results``:
the list the call appends to, as the gathering function names it) and, inside the
coroutine, ``results.append(v)`` -> ``par.append(results, v)`` (form ``append``). The
handle (``par = shared_appends(...)``) goes before the list's binding and
``par.complete()`` after the save, as for every parallel plan (``rewrite/transformer.py``).
"""

from __future__ import annotations

import libcst as cst

#: the runtime function that opens the handle
FUNCTION = "shared_appends"


def is_shared_form(form: str) -> bool:
    return form == "append" or form.startswith("appends:")


def wrap(var: str, form: str, node: cst.Call) -> cst.Call:
    """``node`` rewritten for ``form`` with handle ``var`` (see the module docstring)."""
    # the layout of the call's own first comma: one line, or one argument a line
    first = node.args[0].comma if node.args else None
    space = first.whitespace_after if isinstance(first, cst.Comma) else cst.SimpleWhitespace(" ")
    comma = cst.Comma(whitespace_after=space)
    handle = cst.Name(var)
    if form == "append":
        assert isinstance(node.func, cst.Attribute)
        return cst.Call(
            cst.Attribute(handle, cst.Name("append")),
            args=[cst.Arg(node.func.value, comma=comma), *node.args],
        )
    target = form.split(":", 1)[1]
    lead = [
        cst.Arg(cst.Name(target), comma=comma),
        cst.Arg(node.func, comma=comma if node.args else cst.MaybeSentinel.DEFAULT),
    ]
    return cst.Call(
        cst.Attribute(handle, cst.Name("appends")),
        args=[*lead, *node.args],
        whitespace_before_args=node.whitespace_before_args,
    )
