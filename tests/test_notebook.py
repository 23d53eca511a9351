"""The notebook leaf: cells to one module and back, masks, positions in the file."""

from __future__ import annotations

import json

import pytest

from checkpointify import notebook
from checkpointify.fileio import SourceError


def _book(*sources: object, **extra: object) -> bytes:
    cells = [
        {
            "cell_type": "code",
            "id": str(i),
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": s,
        }
        for i, s in enumerate(sources)
    ]
    return json.dumps(
        {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5, **extra}, indent=1
    ).encode()


def test_magics_are_masked_line_for_line_and_come_back() -> None:
    data = _book(
        ["!pip install x\n", "files = !ls\n", "%time y = 1\n", "obj?\n", "for a in b:\n", "    %time f(a)"]
    )
    book = notebook.read(data)
    module = book.source.decode()
    assert module.splitlines() == [
        "# checkpointify-cell 0",
        "pass  # checkpointify-magic 0",
        "files = ...  # checkpointify-magic 1",
        "pass  # checkpointify-magic 2",
        "pass  # checkpointify-magic 3",
        "for a in b:",
        "    pass  # checkpointify-magic 4",
    ]
    compile(module, "nb", "exec")
    assert notebook.splice(book, book.source) == data  # nothing changed: the same bytes


def test_a_cell_magic_that_is_not_python_is_left_out() -> None:
    book = notebook.read(_book("%%bash\nfor f in *; do echo $f; done", "%%capture\nx = 1"))
    assert [c.python for c in book.cells] == [False, True]
    assert "for f in" not in book.source.decode()


def test_positions_map_to_cells_and_to_the_lines_of_the_file() -> None:
    data = _book(["a = 1\n"], ["b = 2\nc = 3\n", "d = 4"])  # one element holding two lines
    book = notebook.read(data)
    assert book.position(4) == (1, 1) and book.position(6) == (1, 3)
    text = data.decode().splitlines()
    assert text[book.file_line(1, 2) - 1].strip() == '"b = 2\\nc = 3\\n",'
    assert text[book.file_line(1, 3) - 1].strip() == '"d = 4"'


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"[1, 2]", "no list of cells"),
        (b'{"nbformat": 3, "cells": []}', "nbformat 3"),
        (b'{"nbformat": 4, "cells": [{"cell_type": "code"}]}', "a cell without a source"),
    ],
)
def test_what_is_not_a_notebook_is_one_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        notebook.read(data)


def test_a_large_output_does_not_matter_to_reading() -> None:
    """Outputs are skipped by the scanner, not walked line by line (megabytes of images)."""
    cells = [
        {
            "cell_type": "code",
            "id": str(i),
            "metadata": {},
            "execution_count": 1,
            "source": ["x = %d\n" % i, "y = x"],
            "outputs": [
                {"output_type": "display_data", "metadata": {}, "data": {"image/png": "A" * 200_000}}
            ],
        }
        for i in range(50)
    ]
    data = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1).encode()
    book = notebook.read(data)
    assert len(book.cells) == 50 and book.position(book.source.count(b"\n")) == (49, 2)


def test_a_cell_magic_header_stays_the_first_line_of_its_cell() -> None:
    """The runtime import goes at the top of the module: in a ``%%capture`` cell that would
    put it above the header, which IPython then no longer reads as a cell magic."""
    from checkpointify.api import Options, process_source

    data = _book(
        "%%capture\n!pip install -q tqdm\nimport json\nout = []",
        "for x in range(3):\n    out.append(work(x))\njson.dump(out, open('o.json', 'w'))",
    )
    result = process_source(data, "nb.ipynb", Options(), rewrite=True)
    assert result.error is None and result.new_source is not None
    first = "".join(json.loads(result.new_source)["cells"][0]["source"])
    assert first.startswith("%%capture\n") and "from checkpointify.runtime import checkpoint" in first
    again = process_source(result.new_source, "nb.ipynb", Options(), rewrite=True)
    assert again.error is None and not again.changed and not again.findings


def test_top_level_await_is_python_in_a_notebook() -> None:
    """IPython runs ``await`` at the top level of a cell; the rewrite's compile check allows it."""
    from checkpointify.api import Options, process_source

    data = _book(
        "import asyncio, json\nout = []\nfor x in range(3):\n    out.append(await fetch(x))",
        "json.dump(out, open('o.json', 'w'))",
    )
    result = process_source(data, "nb.ipynb", Options(), rewrite=True)
    assert result.error is None and result.changed, result.error
