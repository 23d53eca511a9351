"""The staged path finds exactly what the full LibCST path finds.

``process_source(..., staged=True)`` (text stage, ``ast`` stage, then LibCST on candidate
lines only) against ``staged=False`` (LibCST on every file with ``for``/``while``), on:

* every fixture, for ``scan`` and ``fix`` (byte-identical rewrites);
* hand-written cases aimed at each condition of ``checkpointify.prefilter`` (aliases,
  ``with`` chains, derived values, odd callees, CKP002 and CKP003, non-UTF-8 and non-ASCII
  files...), each checked to produce a finding, so none passes vacuously;
* the small real corpus, when it is on disk (the core corpus: ``pytest -m slow``,
  tests/test_corpus.py).

And the decisions around it: a file the stages rule out is still reported when it does not
decode; a syntax error is reported only in a file that could hold a finding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from checkpointify import prefilter
from checkpointify.api import process_source
from checkpointify.types import FileResult, Options
from tests.support.fixture_cases import cases

ALL = cases()


def both(source: bytes, options: Optional[Options] = None, rewrite: bool = False) -> FileResult:
    """Run both paths; assert they agree; return the staged result."""
    options = options or Options()
    staged = process_source(source, "job.py", options, rewrite, staged=True)
    full = process_source(source, "job.py", options, rewrite, staged=False)
    assert staged.findings == full.findings
    assert staged.new_source == full.new_source
    assert staged.error == full.error
    return staged


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_fixture_staged_equals_full(case: object) -> None:
    options = case.options()  # type: ignore[attr-defined]
    source = case.source  # type: ignore[attr-defined]
    for rewrite in (False, True):
        both(source, options, rewrite)


# --------------------------------------------------------------------- targeted cases

WORK = "from remote import fetch\n"

#: (id, source, extra sinks); every one has at least one finding on the full path
CASES = [
    (
        "qualified-sink-through-alias",
        "from pickle import dump as persist_nothing\nimport os\nacc = []\nfor x in os.listdir('.'):\n"
        "    acc.append(fetch(x))\npersist_nothing(acc, open('a', 'wb'))\n",
        (),
    ),
    (
        "qualified-sink-alias-not-a-verb",
        "from numpy import save as sv\nacc = []\nfor x in range(9):\n    acc.append(fetch(x))\nsv('a.npy', acc)\n",
        (),
    ),
    (
        "module-alias",
        "import numpy as np\nacc = []\nfor x in range(9):\n    acc.append(fetch(x))\nnp.save('a.npy', acc)\n",
        (),
    ),
    (
        "accumulator-before-with-sink-after",
        "import json\nrows = []\nwith open('in') as f:\n    for line in f:\n        rows.append(fetch(line))\n"
        "json.dump(rows, open('out', 'w'))\n",
        (),
    ),
    (
        "nested-withs",
        "import json\nrows = {}\nwith open('in') as f:\n    with lock:\n        for line in f:\n"
        "            rows[line] = fetch(line)\n    json.dump(rows, open('out', 'w'))\n",
        (),
    ),
    (
        "derived-value",
        "import json\ndef main():\n    out = []\n    for x in xs:\n        out.append(fetch(x))\n"
        "    payload = {'results': out}\n    doc = dict(data=payload)\n    json.dump(doc, open('o', 'w'))\n",
        (),
    ),
    (
        "derived-by-update",
        "import json\nsummary = {}\nout = []\nfor x in xs:\n    out.append(fetch(x))\n"
        "summary.update(results=out)\njson.dump(summary, open('o', 'w'))\n",
        (),
    ),
    (
        "method-self-accumulator",
        "class Job:\n    def run(self):\n        self.rows = []\n        for x in self.items:\n"
        "            self.rows.append(fetch(x))\n        self.save_rows(self.rows)\n",
        (),
    ),
    (
        "while-loop",
        "import json\nacc = []\nwhile more():\n    acc.append(fetch(next_item()))\njson.dump(acc, open('o', 'w'))\n",
        (),
    ),
    (
        "async-for",
        "import json\nasync def main():\n    acc = []\n    async for x in stream():\n        acc.append(await fetch(x))\n"
        "    json.dump(acc, open('o', 'w'))\n",
        (),
    ),
    (
        "comprehension",
        "import json\nvectors = [fetch(x) for x in xs]\njson.dump(vectors, open('o', 'w'))\n",
        (),
    ),
    (
        "annotated-comprehension",
        "import json\nvectors: list = [fetch(x) for x in xs]\njson.dump(vectors, open('o', 'w'))\n",
        (),
    ),
    (
        "growth-by-concatenation",
        "import json\ntotal = ''\nfor x in xs:\n    total = total + fetch(x)\njson.dump(total, open('o', 'w'))\n",
        (),
    ),
    (
        "growth-by-augmented-assignment",
        "import json\ntotal = 0\nfor x in xs:\n    total += fetch(x)\njson.dump(total, open('o', 'w'))\n",
        (),
    ),
    (
        "counter-through-alias",
        "import json\nfrom collections import Counter as C\nc = C()\nfor x in xs:\n    c.update(fetch(x))\n"
        "json.dump(c, open('o', 'w'))\n",
        (),
    ),
    (
        "parenthesised-callee-and-comment-before-the-call",
        "import json\nacc = []\nfor x in xs:\n    acc.append(fetch(x))\n(json.dump  # the save\n)(acc, f)\n",
        (),
    ),
    (
        "continuation-between-name-and-call",
        "import json\nacc = []\nfor x in xs:\n    acc.append(fetch(x))\njson.dump \\\n    (acc, f)\n",
        (),
    ),
    (
        "verb-named-sink",
        "acc = []\nfor x in xs:\n    acc.append(fetch(x))\n__saveAll2(acc)\n",
        (),
    ),
    (
        "sink-method-on-a-call",
        "import pandas as pd\nrows = []\nfor x in xs:\n    rows.append(fetch(x))\npd.DataFrame(rows).to_csv('o.csv')\n",
        (),
    ),
    (
        "extra-sink-bare",
        "acc = []\nfor x in xs:\n    acc.append(fetch(x))\npush(acc)\n",
        ("push",),
    ),
    (
        "extra-sink-qualified-through-alias",
        "from mylib.io import persist_table as pt\nacc = []\nfor x in xs:\n    acc.append(fetch(x))\npt(acc)\n",
        ("mylib.io.persist_table",),
    ),
    (
        "db-commit",
        "import sqlite3\nconn = sqlite3.connect('db')\ncur = conn.cursor()\nfor row in rows:\n"
        "    cur.execute('INSERT INTO t VALUES (?)', (fetch(row),))\nconn.commit()\n",
        (),
    ),
    (
        "queue-ack-batch",
        "ids = []\nfor m in queue.receive_messages():\n    handle(m)\n    ids.append(m.id)\n"
        "queue.delete_message_batch(Entries=ids)\n",
        (),
    ),
    (
        "queue-basic-ack-multiple",
        "for method, props, body in channel.consume('q'):\n    handle(body)\n    tag = method.delivery_tag\n"
        "channel.basic_ack(delivery_tag=tag, multiple=True)\n",
        (),
    ),
    (
        "kafka-commit",
        "from confluent_kafka import Consumer\nconsumer = Consumer({})\nfor msg in consumer:\n"
        "    handle(msg)\nconsumer.commit()\n",
        (),
    ),
    (
        "a-print-like-name-with-another-method",  # tqdm.write is not a sink, tqdm.writelines is
        "acc = []\nfor x in xs:\n    acc.append(fetch(x))\ntqdm.writelines(acc)\n",
        (),
    ),
    (
        "a-stream-named-like-an-attribute",  # self.stdout.write is logging, stdout.write is not
        "acc = []\nfor x in xs:\n    acc.append(fetch(x))\nstdout.write(''.join(acc))\n",
        (),
    ),
    (
        "a-logger-name-inside-a-longer-name",
        "acc = []\nfor x in xs:\n    acc.append(fetch(x))\nélogger.write(''.join(acc))\n",
        (),
    ),
    (
        "a-qualified-sink-on-a-logger-name",  # the qualified name wins over is_logging
        "import json as logger\nacc = []\nfor x in xs:\n    acc.append(fetch(x))\nlogger.dump(acc, f)\n",
        (),
    ),
    (
        "helper-returns-caller-saves",
        "import json\ndef run(xs):\n    out = []\n    for x in xs:\n        out.append(fetch(x))\n    return out\n"
        "def main():\n    json.dump(run(items), open('o', 'w'))\n",
        (),
    ),
    (
        "helper-returns-derived-caller-assigns",
        "def run(df):\n    preds = []\n    for x in df:\n        preds.append(fetch(x))\n    df['p'] = preds\n"
        "    return df\nif __name__ == '__main__':\n    out = run(frame)\n    out.to_csv('o.csv')\n",
        (),
    ),
    (
        "helper-comprehension-returned-method-caller",
        "import json\nclass Job:\n    def tag(self, xs):\n        tags = [fetch(x) for x in xs]\n        return tags\n"
        "    def run(self):\n        tags = self.tag(self.items)\n        json.dump(tags, open('o', 'w'))\n",
        (),
    ),
    (
        "accumulator-before-try-jsonl-write-loop",
        "import json\nrows = []\ntry:\n    for x in xs:\n        rows.append(fetch(x))\n"
        "    with open('o', 'w') as f:\n        for r in rows:\n            f.write(json.dumps(r) + '\\n')\n"
        "except KeyError:\n    pass\n",
        (),
    ),
    (
        "accumulator-before-if-else-branch",
        "import json\nrows = []\nif dry:\n    pass\nelse:\n    for x in xs:\n        rows.append(fetch(x))\n"
        "    json.dump(rows, open('o', 'w'))\n",
        (),
    ),
    (
        "accumulator-bound-under-if",
        "import json\ndef f(xs, d):\n    if d:\n        rows = []\n    for x in xs:\n        r = fetch(x)\n"
        "        if d:\n            rows.append(r)\n    if d:\n        json.dump(rows, open(d, 'w'))\n",
        (),
    ),
    (
        "parallel-map-without-a-loop-keyword",
        "import json\nfrom concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor(4) as ex:\n"
        "    rows = list(ex.map(fetch, xs))\njson.dump(rows, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-imap-loop-with-a-cheap-body",
        "import pickle\nimport multiprocessing as mp\nout = []\nwith mp.Pool(3) as pool:\n"
        "    for r in pool.imap_unordered(fetch, xs):\n        out.append(r)\npickle.dump(out, open('o', 'wb'))\n",
        (),
    ),
    (
        "parallel-gather-through-an-alias",
        "import json\nfrom asyncio import gather as all_of\nasync def main(xs):\n"
        "    pages = await all_of(*[fetch(x) for x in xs])\n    json.dump(pages, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-futures-appended-in-a-loop",
        "import json\nimport concurrent.futures as cf\nanswers = []\nwith cf.ProcessPoolExecutor() as ex:\n"
        "    futures = []\n    for x in xs:\n        futures.append(ex.submit(fetch, x, 3))\n"
        "    for fut in cf.as_completed(futures):\n        answers.append(fut.result())\n"
        "json.dump(sorted(answers), open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-apply-async-handles-waited-by-get",
        "import json\nfrom multiprocessing import Pool\npool = Pool(2)\n"
        "handles = [pool.apply_async(fetch, (x,)) for x in xs]\nvalues = [h.get() for h in handles]\n"
        "json.dump(values, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-joblib-through-aliases",
        "import json\nfrom joblib import Parallel as Par, delayed as later\n"
        "rows = Par(n_jobs=2)(later(fetch)(x) for x in xs)\njson.dump(rows, open('o', 'w'))\n",
        (),
    ),
    (
        "async-shared-gather-through-an-alias-no-loop-keyword",
        "import asyncio, json\nfrom asyncio import gather as all_of\nres = []\n"
        "async def one(x):\n    res.append(await fetch(x))\n"
        "async def main(xs):\n    await all_of(*[one(x) for x in xs])\n"
        "asyncio.run(main(xs))\njson.dump(res, open('o', 'w'))\n",
        (),
    ),
    (
        "async-shared-taskgroup-in-a-method",
        "import asyncio, json\nROWS = []\nasync def one(x):\n    ROWS.append(await fetch(x))\n"
        "class Job:\n    async def run(self, xs):\n        async with asyncio.TaskGroup() as tg:\n"
        "            tg.create_task(one(xs))\n        json.dump(ROWS, open('o', 'w'))\n",
        (),
    ),
    (
        "async-shared-as-completed-list-passed-down",
        "import asyncio, json\nasync def one(x, out):\n    out.append(await fetch(x))\n"
        "async def run(xs, out=None):\n    for c in asyncio.as_completed([one(x, out) for x in xs]):\n"
        "        await c\nif __name__ == '__main__':\n    found = []\n    asyncio.run(run(xs, out=found))\n"
        "    json.dump(sorted(found), open('o', 'w'))\n",
        (),
    ),
    (
        "async-shared-handoff-without-an-asyncio-import",
        "import pandas as pd\nraw = []\nasyncio.run(job(xs, shared_list=raw))\n"
        "pd.DataFrame(raw).to_csv('o.csv')\n",
        (),
    ),
    (
        "none-init-grown-by-concatenate",
        "import numpy as np\npreds = None\nfor x in xs:\n    out = fetch(x)\n"
        "    preds = out if preds is None else np.concatenate([preds, out])\nnp.save('p.npy', preds)\n",
        (),
    ),
    (
        "none-init-grown-by-torch-cat-in-branch",
        "import torch\nacc = None\nfor b in xs:\n    y = fetch(b)\n    if acc is None:\n        acc = y\n"
        "    else:\n        acc = torch.cat((acc, y), dim=0)\ntorch.save(acc, 'p.pt')\n",
        (),
    ),
    (
        "frame-grown-by-from-import-concat-bound-to-a-call",
        "from pandas import concat, read_csv\ndf = read_csv('in.csv')\nfor x in xs:\n"
        "    df = concat((fetch(x), df), axis=1)\ndf.to_csv('o.csv')\n",
        (),
    ),
    (
        "frame-grown-by-concat-of-a-starred-list",
        "import pandas as pd\ndf = pd.DataFrame()\nfor x in xs:\n"
        "    df = pd.concat([*parts, df, fetch(x)])\ndf.to_csv('o.csv')\n",
        (),
    ),
    (
        "none-init-grown-by-np-append",
        "import numpy as np\nacc = None\nfor b in xs:\n    acc = np.append(acc, fetch(b))\nnp.save('p.npy', acc)\n",
        (),
    ),
    (
        "bulk-write-then-commit",
        "import sqlite3\ncon = sqlite3.connect('d.db')\ncur = con.cursor()\nrows = []\nfor x in xs:\n"
        "    rows.append(fetch(x))\ncur.executemany('INSERT INTO t VALUES (?)', rows)\ncon.commit()\n",
        (),
    ),
    (
        "helper-caller-in-a-settings-loop-saves-after-it",
        "import json\nSPLITS = ['train', 'test']\ndef run(xs):\n    out = []\n"
        "    for x in xs:\n        out.append(fetch(x))\n    return out\n"
        "def main(data):\n    res = {}\n    for split in SPLITS:\n"
        "        res[split] = run(data[split])\n    json.dump(res, open('o', 'w'))\n",
        (),
    ),
    (
        "helper-caller-in-an-if-saves-after-it",
        "import json\ndef run(xs):\n    out = []\n    for x in xs:\n"
        "        out.append(fetch(x))\n    return out\ndef main(xs, fast):\n"
        "    if fast:\n        preds = run(xs[:9])\n    else:\n        preds = run(xs)\n"
        "    json.dump(preds, open('o', 'w'))\n",
        (),
    ),
    (
        "helper-caller-in-a-try-keeps-by-append",
        "import json\ndef run(xs):\n    out = []\n    for x in xs:\n"
        "        out.append(fetch(x))\n    return out\ndef main(xs):\n    results = []\n"
        "    try:\n        results.append(run(xs))\n    except KeyError:\n        pass\n"
        "    json.dump(results, open('o', 'w'))\n",
        (),
    ),
    (
        "helper-caller-at-module-level-in-a-with",
        "import json\ndef run(xs):\n    out = []\n    for x in xs:\n"
        "        out.append(fetch(x))\n    return out\nwith open('in') as f:\n"
        "    preds = run(f.read().split())\njson.dump(preds, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-map-on-a-pool-held-by-self",
        "import json\nfrom multiprocessing import Pool\nclass Job:\n"
        "    def __init__(self):\n        self.pool = Pool(2)\n    def run(self, xs):\n"
        "        rows = self.pool.map(fetch, xs)\n"
        "        json.dump(rows, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-imap-in-tqdm-in-list",
        "import json\nfrom multiprocessing import Pool\nfrom tqdm import tqdm\n"
        "with Pool(2) as pool:\n"
        "    rows = list(tqdm(pool.imap(fetch, xs), total=len(xs)))\n"
        "json.dump(rows, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-task-results-in-a-comprehension",
        "import asyncio\nimport json\nasync def main(xs):\n"
        "    async with asyncio.TaskGroup() as tg:\n"
        "        tasks = [tg.create_task(fetch(x)) for x in xs]\n"
        "    rows = [t.result() for t in tasks]\n    json.dump(rows, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-as-completed-through-an-alias",
        "import json\n"
        "from concurrent.futures import ThreadPoolExecutor, as_completed as done\n"
        "out = []\nwith ThreadPoolExecutor() as ex:\n"
        "    futs = {ex.submit(fetch, x): x for x in xs}\n    for f in done(futs):\n"
        "        out.append(f.result())\njson.dump(out, open('o', 'w'))\n",
        (),
    ),
    (
        "parallel-joblib-comprehension-passed-by-keyword",
        "import json\nfrom joblib import Parallel, delayed\n"
        "rows = Parallel(n_jobs=2)(iterable=(delayed(fetch)(x) for x in xs))\njson.dump(rows, open('o', 'w'))\n",
        (),
    ),
    (
        "helper-named-like-a-full-width-name",  # ast folds `ｒun` to `run`; for LibCST they differ
        "import json\ndef run(xs):\n    out = []\n    for x in xs:\n        out.append(fetch(x))\n"
        "    return out\nｒun = 3\ndef main(xs):\n    json.dump(run(xs), open('o', 'w'))\n",
        (),
    ),
    (
        "item-writes-by-index",  # the list is bound to a call: no accumulator value
        "import json\nwith open('q.json') as f:\n    data = json.load(f)\nfor i in range(len(data)):\n"
        "    data[i]['answer'] = fetch(data[i]['q'])\njson.dump(data, open('o', 'w'))\n",
        (),
    ),
    (
        "item-writes-through-an-alias",  # item.update(...) on the loop target of enumerate(tqdm(...))
        "import json\nfrom tqdm import tqdm\ndata = load_records('q.jsonl')\n"
        "for n, item in enumerate(tqdm(data)):\n    item.update({'answer': fetch(item['q']), 'n': n})\n"
        "json.dump(data, open('o', 'w'))\n",
        (),
    ),
    (
        "item-writes-nested-path",  # flagged without a fix
        "import json\nrecords = read_all()\nfor rec in records:\n    rec['scores']['bleu'] = fetch(rec)\n"
        "json.dump(records, open('o', 'w'))\n",
        (),
    ),
    (
        "non-ascii-identifiers",
        "import json\nrésultats = []\nfor élément in xs:\n    résultats.append(fetch(élément))\n"
        "json.dump(résultats, open('o', 'w'))\n",
        (),
    ),
]


@pytest.mark.parametrize("name, source, extra", CASES, ids=[c[0] for c in CASES])
def test_targeted_case_staged_equals_full(name: str, source: str, extra: tuple) -> None:  # type: ignore[type-arg]
    options = Options(extra_sinks=extra, root=Path("."))
    data = (WORK + source).encode("utf-8")
    for encoded in (data, data.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + data):
        result = both(encoded, options)
        assert result.findings, "%s: the full path finds nothing, so this case proves nothing" % name
        both(encoded, options, rewrite=True)


def test_latin1_file_is_transcoded_for_the_text_stage() -> None:
    source = (
        "# -*- coding: latin-1 -*-\nimport json\nrésultats = []\nfor x in xs:\n"
        "    résultats.append(fetch(x))\njson.dump(résultats, open('o', 'w'))\n"
    ).encode("latin-1")
    assert both(source).findings


NO_SITE = [
    b"def add(a, b):\n    return a + b\n",
    b"for x in xs:\n    print(x)\n",  # a loop, but nothing that saves
    b"import json\nfor x in xs:\n    y = x\njson.dump(y, f)\n",  # a save, but nothing grown
    b"import json\nacc = load()\nfor x in xs:\n    acc.append(x)\njson.dump(acc, f)\n",  # not a literal
    b"import json\nacc = []\nfor x in xs:\n    acc.append(x.strip())\njson.dump(acc, f)\n",  # no work
    b"import json\nacc = []\nfor x in xs:\n    acc.append(fetch(x))\n    f.write(x)\njson.dump(acc, f)\n",
    b"import json\nacc = []\nfor x in ('a', 'b'):\n    acc.append(fetch(x))\njson.dump(acc, f)\n",
    b"import json\ndef gen():\n    acc = []\n    for x in xs:\n        acc.append(fetch(x))\n"
    b"    json.dump(acc, f)\n    yield 1\n",
    b"import sys\nacc = []\nfor x in xs:\n    acc.append(fetch(x))\nsys.stdout.write(''.join(acc))\n",
    b"acc = []\nfor x in xs:\n    acc.append(fetch(x))\nself.stderr.write(''.join(acc))\n",
    b"import json\nrows = list(map(fetch, xs))\njson.dump(rows, f)\n",  # the builtin map: no pool
    b"import asyncio\nasync def m(xs):\n    r = await asyncio.gather(*(fetch(x) for x in xs))\n    print(r)\n",
    # helper handed to a pool
    b"import json\ndef run(xs):\n    out = []\n    for x in xs:\n"
    b"        out.append(fetch(x))\n    return out\ndef main(pool, xs):\n"
    b"    json.dump(pool.map(run, xs), open('o', 'w'))\n",
    # helper result only printed
    b"import sys\ndef run(xs):\n    out = []\n    for x in xs:\n"
    b"        out.append(fetch(x))\n    return out\ndef main(xs):\n"
    b"    preds = run(xs)\n    sys.stdout.write(str(preds))\n",
    # helper local to a function
    b"import json\ndef main(xs):\n    def run(ys):\n        out = []\n"
    b"        for y in ys:\n            out.append(fetch(y))\n        return out\n"
    b"    json.dump(run(xs), open('o', 'w'))\n",
    # a dict get comprehension is not a wait
    b"import json\nrows = [d.get('k') for d in load()]\njson.dump(rows, open('o', 'w'))\n",
    # a map on something not a pool
    b"import json\nrows = list(frame.map(fetch))\njson.dump(rows, open('o', 'w'))\n",
    # helper called under a lambda
    b"import json\ndef run(xs):\n    out = []\n    for x in xs:\n"
    b"        out.append(fetch(x))\n    return out\ndef main(groups):\n"
    b"    json.dump(list(map(lambda g: run(g), groups)), open('o', 'w'))\n",
]


@pytest.mark.parametrize("source", NO_SITE, ids=range(len(NO_SITE)))
def test_files_without_a_site_are_ruled_out_before_libcst(source: bytes) -> None:
    assert not both(source).findings
    assert not prefilter.may_match(source, "utf-8", ())


def test_candidate_lines_are_where_sites_start() -> None:
    source = (
        b"import json\n\nacc = []\n# a comment\nfor x in xs:\n    acc.append(fetch(x))\njson.dump(acc, f)\n"
    )
    assert prefilter.candidate_lines(source, "utf-8", ()) == {5}
    [finding] = both(source).findings
    assert finding.line == 5


def test_unparsable_by_ast_falls_through_to_libcst() -> None:
    source = b"import json\nacc = []\nfor x in (:\n    acc.append(fetch(x))\njson.dump(acc, f)\n"
    assert prefilter.candidate_lines(source, "utf-8", ()) is None
    result = both(source)
    assert result.error is not None and result.error.startswith("syntax error at line 3")


# ------------------------------------------------------------------- around the stages


def test_undecodable_file_is_reported_even_when_it_cannot_hold_a_finding() -> None:
    source = b"x = '\xff\xfe'\n"  # nothing for the stages to look at, and not UTF-8
    assert not prefilter.may_match(b"x = 1\n", "utf-8", ())
    for staged in (True, False):
        result = process_source(source, "bad.py", Options(), False, staged=staged)
        assert result.error is not None and result.error.startswith("not valid utf-8")


@pytest.mark.parametrize(
    "source, reported",
    [
        (b"for x in (:\n    pass\n", False),  # cannot hold a finding: not parsed
        (b"for x in (:\n    save(x)\n", True),  # could: parsed, and the error reported
        (b"def f(:\n    pass\n", False),  # no loop at all: not parsed (as before staging)
    ],
)
def test_syntax_errors_are_reported_where_a_finding_could_hide(source: bytes, reported: bool) -> None:
    result = process_source(source, "broken.py", Options(), False)
    assert (result.error is not None) is reported


# ------------------------------------------------------------------------ real corpus


def local_corpus(set_name: str) -> Optional[Path]:
    """A corpus already on disk ($CHECKPOINTIFY_CORPUS_ROOT or fetch.sh's default folder)."""
    roots = [
        os.environ.get("CHECKPOINTIFY_CORPUS_ROOT"),
        str(Path.home() / ".cache" / "checkpointify-corpus"),
    ]
    for root in roots:
        if root and (Path(root) / set_name).is_dir():
            return Path(root) / set_name
    return None


def scan_json(root: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-m", "checkpointify", "scan", "--format", "json", "--no-cache", "-q", *extra, "."],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def assert_same_findings(root: Path, jobs: str) -> None:
    full = scan_json(root, "-j", jobs, "--no-prefilter")
    staged = scan_json(root, "-j", jobs)
    assert staged["findings"] == full["findings"]
    # the staged path parses fewer files, so it can report fewer syntax errors, never others
    assert all(error in full["errors"] for error in staged["errors"])


def test_small_corpus_staged_equals_full() -> None:
    root = local_corpus("small")
    if root is None:
        pytest.skip("the small corpus is not on disk (../shared/corpus/fetch.sh DEST small)")
    assert_same_findings(root, "1")
