"""The explicit table of pattern variants and hazards.

Every variant has a code, a one-line summary and a rationale in Ruff's doc-block shape
(what it does, why it is bad, example, use instead, fix safety). ``scan`` prints the
summary, the rule pages (docs/rules, `checkpointify rule`) and SARIF print the rationale, and ``tests/fixtures/<variant>/`` holds
its positive and no-op cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from checkpointify.types import Hazard, Safety

#: Where the project lives, and its documentation site (the repository's GitHub Pages
#: site, built from docs/ by mkdocs). pyproject.toml's [project.urls] and mkdocs.yml say
#: the same (tests/output/test_formats.py checks), and SARIF's helpUri links a rule's page.
REPOSITORY_URL = "https://github.com/checkpointify/checkpointify"
DOCS_URL = "https://checkpointify.github.io/checkpointify/"


def rule_url(code: str) -> str:
    """The documentation page of a code (``docs/rules/CKP001.md`` on the site)."""
    return "%srules/%s/" % (DOCS_URL, code)


@dataclass(frozen=True)
class Variant:
    name: str
    code: str
    summary: str
    rationale: str


COLLECT_LOOP = Variant(
    name="collect-loop",
    code="CKP001",
    summary="results are collected in a loop and saved only after it",
    rationale="""\
## What it does
Finds a loop that grows an accumulator (a list, dict, set, number or string bound just
before it; or a pandas frame bound to anything and filled through `df.at[...]`/`df.loc[...]`
or grown by `df = pd.concat([df, part])`) with the results of real work, followed in the
same block by a statement that
persists the accumulator or a value built from it (`json.dump`, `pickle.dump`, `np.save`,
`DataFrame.to_csv`, a csv writer, `file.write`, `Path.write_text`, or a call named
`save*`/`dump*`/`write*`/`store*`/`persist*`/`export*`/`upload*`).

## Why is this bad?
Every completed unit lives only in memory until the loop ends. A crash, an OOM kill, a
pre-empted VM or a Ctrl-C one item before the end loses all of it, and the re-run starts
from zero.

## Example
```python
results = []
for item in items:
    results.append(expensive_operation(item))
save_results(results)
```

## Use instead
```python
results = []
ckpt = checkpoint("job.py::<module>::results", items, lambda: (results,))
[results] = ckpt.restore()
for item in ckpt:
    results.append(expensive_operation(item))
save_results(results)
ckpt.complete()
```
Each unit's effect on the accumulator is appended to a checksummed log before the next
unit starts; a re-run restores the accumulator and skips the completed items; the log is
removed once the final save has returned.

A frame is a journal instead: each `pd.concat` call's parts (never the grown frame) or each
`.at`/`.loc` write is recorded, and a re-run replays them onto the frame the code before
the loop built again, so its values, dtypes and index are an uninterrupted run's:
```python
df = pd.DataFrame(columns=["id", "label"])
df_parts = frame_concat(df, pd.concat)
ckpt = checkpoint("job.py::<module>::df", items, lambda: (df_parts.journal,))
[df_parts.journal] = ckpt.restore()
df = df_parts.replay()
for item in ckpt:
    part = pd.DataFrame([{"id": item, "label": classify(item)}])
    df = df_parts.concat([df, part], ignore_index=True)
df.to_csv("labels.csv", index=False)
ckpt.complete()
```

## Fix safety
Safe when a resumed run provably reproduces an uninterrupted one. Each hazard listed
with the finding says what could make it differ; any of them makes the fix unsafe, and
some (an accumulator mutated beyond accumulation, an exit between the loop and the save)
mean no fix is offered at all.
""",
)

COLLECT_COMPREHENSION = Variant(
    name="collect-comprehension",
    code="CKP001",
    summary="results are built by a comprehension and saved only after it",
    rationale="""\
## What it does
Finds a list, set or dict comprehension whose element does real work, assigned to a
name that is later persisted (`vectors = [embed(x) for x in xs]` ... `json.dump(vectors, f)`).

## Why is this bad?
A comprehension is a loop: a crash before it finishes loses every element computed so
far, and the re-run recomputes them all.

## Example
```python
vectors = [embed(x) for x in texts]
json.dump(vectors, f)
```

## Use instead
The comprehension is unrolled into a checkpointed loop:
```python
vectors = []
ckpt = checkpoint("job.py::<module>::vectors", texts, lambda: (vectors,))
[vectors] = ckpt.restore()
for x in ckpt:
    vectors.append(embed(x))
json.dump(vectors, f)
ckpt.complete()
```

## Fix safety
As for CKP001 loops. In addition, a comprehension has its own scope: unrolling it binds
its loop variables in the enclosing scope, so the fix is offered only when those names
are not used anywhere else in that scope (hazard `scope-leak`).
""",
)

HELPER_RETURN = Variant(
    name="helper-return",
    code="CKP001",
    summary="a helper collects results in a loop and returns them; its caller saves them",
    rationale="""\
## What it does
Finds a loop (or comprehension) inside a function that grows an accumulator with the
results of real work and returns it (or a value built from it: `df["pred"] = preds;
return df`, `return cors, acc, probs`), when every call of that function in the same
file persists what it returned (`json.dump(run_model(xs), f)`, `preds = predict(df)` ...
`df.to_csv(...)`, `results.append(evaluate(p))` ... `json.dump(results, f)`).

## Why is this bad?
The helper's completed units live only in its local list until it returns and the
caller saves: a crash one item before the end of the helper (or between its return and
the caller's save) loses all of them.

## Example
```python
def run_model(samples):
    out = []
    for s in samples:
        out.append(model(s))
    return out


def main():
    save_predictions(run_model(load()))


if __name__ == "__main__":
    main()
```

## Use instead
```python
def run_model(samples):
    out = []
    ckpt = checkpoint(
        "job.py::run_model::out", samples, lambda: (out,), key=(samples,), deferred=True
    )
    [out] = ckpt.restore()
    for s in ckpt:
        out.append(model(s))
    return out


def main():
    save_predictions(run_model(load()))
    complete_deferred("job.py::run_model::out")


if __name__ == "__main__":
    main()
```
The helper's checkpoint outlives the call (`deferred=True`); each caller completes it
after its save. A crash inside the helper resumes its loop; a crash after it returned
and before the save re-runs it from a complete log (no unit runs again). The function's
arguments are the key, so calls with other arguments (per split, per model) never share
a log, and a second call with the same arguments in one run gets a log of its own. When
the save sits in a `for` loop of the caller, the completion goes after that loop, so a
re-run restores every earlier call from its log instead of redoing it.

## Fix safety
As for CKP001 loops. The helper is reported only when its name is used in its file for
nothing but calls and every one of those calls saves the result; a caller in another
file is not seen, so the runtime also completes a finished call's log when the
interpreter exits normally (an uncaught exception or a kill keeps it for the re-run).
A caller whose loop already skips done items (`if x in done: continue`) is the unit of
its own resume: its helper is not reported.
""",
)

DB_COMMIT = Variant(
    name="db-commit",
    code="CKP002",
    summary="rows are written in a loop and committed only after it",
    rationale="""\
## What it does
Finds a loop that writes to a database per item (`cursor.execute(...)`,
`connection.executemany(...)`, `session.add(...)`) with no commit in its body, followed in
the same block by one `commit()` of that connection or session.

## Why is this bad?
Nothing is durable until the final commit: a crash one row before the end rolls back every
row, and the re-run writes them all again.

## Example
```python
conn = sqlite3.connect("warehouse.db")
for row in rows:
    conn.execute("INSERT INTO scores VALUES (?, ?)", (row.id, score(row)))
conn.commit()
```

## Use instead
```python
conn = sqlite3.connect("warehouse.db")
ckpt = checkpoint("load.py::<module>::conn", rows, transaction=conn)
ckpt.restore()
for row in ckpt:
    conn.execute("INSERT INTO scores VALUES (?, ?)", (row.id, score(row)))
conn.commit()
ckpt.complete()
```
Each unit is committed together with its progress record, in the same transaction, so a
re-run skips exactly the committed units.

## Fix safety
Safe when the connection is a DB-API connection (`sqlite3.connect`, `psycopg2.connect`,
...) or a SQLAlchemy `Session` bound before the loop: the progress record shares the
unit's transaction (exactly once). When the connection comes from elsewhere, the runtime
still uses the same transaction if the object turns out to be a DB-API connection or a
session; otherwise it commits the unit, then records it, and a crash between the two
runs that unit again (at-least-once): unsafe. Statements before the loop that change the
database run again on resume, which makes the fix unsafe too. Readers see the loop's rows
as they are committed, not all at once at the end.
""",
)

QUEUE_ACK = Variant(
    name="queue-ack",
    code="CKP003",
    summary="messages are processed in a loop and acknowledged only after it",
    rationale="""\
## What it does
Finds a loop over received messages followed, right after it, by one acknowledgement of
the whole batch: SQS `delete_message_batch(Entries=...)`, Pub/Sub
`acknowledge(ack_ids=...)`, a generic `ack(ids)`, RabbitMQ `basic_ack(..., multiple=True)`
or a confluent-kafka `commit()`.

## Why is this bad?
A crash after processing all but one message acknowledges none of them: the broker
redelivers the whole batch and every message is processed again.

## Example
```python
entries = []
for message in response["Messages"]:
    handle(message["Body"])
    entries.append({"Id": message["MessageId"], "ReceiptHandle": message["ReceiptHandle"]})
sqs.delete_message_batch(QueueUrl=url, Entries=entries)
```

## Use instead
```python
entries = []
acks = acknowledge_each(
    response["Messages"],
    lambda new: sqs.delete_message_batch(QueueUrl=url, Entries=new),
    grown=lambda: entries,
)
for message in acks:
    handle(message["Body"])
    entries.append({"Id": message["MessageId"], "ReceiptHandle": message["ReceiptHandle"]})
```
Each message is acknowledged as soon as its unit completes (a unit that raises is not);
the broker is the progress marker, so nothing else is stored.

## Fix safety
Safe: a message is acknowledged only after its unit completed, exactly as the batch ack
would have after the loop. The message in flight at a crash is redelivered (at-least-once,
as before). No fix when the loop can `break` (the last message would stay
unacknowledged), when the block may exit before the ack, or when the loop also collects
results that are saved after it (acknowledging before they are saved would lose them).
""",
)

COLLECT_PARALLEL = Variant(
    name="collect-parallel",
    code="CKP001",
    summary="results of work run in a pool or an event loop are saved only after all of it",
    rationale="""\
## What it does
Finds work handed to a pool or an event loop whose results are saved only after every input
is done: `executor.submit` then `as_completed`, `executor.map`, a `multiprocessing` pool's
`map`/`imap`/`imap_unordered`/`starmap`/`apply_async`, `joblib.Parallel(...)(delayed(f)(x) ...)`,
`await asyncio.gather(*(f(x) for x in xs))`,
`asyncio.as_completed`, tasks of an `asyncio.TaskGroup`, followed by a save of the results.

## Why is this bad?
The results live only in memory (in futures and lists) until the save. A crash one input
before the end loses all of them, and the re-run submits every input again.

## Example
```python
rows = []
with ThreadPoolExecutor(8) as ex:
    futures = [ex.submit(fetch, x) for x in xs]
    for fut in as_completed(futures):
        rows.append(fut.result())
json.dump(rows, f)
```

## Use instead
The call that hands each input to the pool records its result, keyed by the input, when it
arrives (from whichever thread delivers it); a re-run does not submit the inputs already
done and gets their results back as completed futures, in the order the program reads them:
```python
rows = []
with ThreadPoolExecutor(8) as ex:
    par = parallel("job.py::<module>::rows")
    futures = [par.submit(ex, fetch, x) for x in xs]
    for fut in as_completed(futures):
        rows.append(fut.result())
json.dump(rows, f)
par.complete()
```

## Fix safety
Safe: no future, task or pool is stored, only the values they delivered, keyed by the
fingerprint of the call's arguments (and its occurrence among equal calls). No fix is
offered when the input is not among the call's arguments (`submit(lambda: f(x))`,
`submit(partial(f, x))`: hazard `unsupported-shape`), since the calls could not be told
apart.
""",
)


COLLECT_ASYNC_SHARED = Variant(
    name="collect-async-shared",
    code="CKP001",
    summary="coroutines run concurrently append to a shared list that is saved only after all of them",
    rationale="""\
## What it does
Finds `async def` coroutines that append to a list they do not own (a global, or a list
passed in as an argument, possibly through several functions), called concurrently
(`asyncio.gather(*...)`, `create_task`, a `TaskGroup`, `asyncio.as_completed`, often under a
semaphore) and run by `asyncio.run(...)`, the list saved only afterwards. Also, without a
fix, `asyncio.run(job(..., results))` followed by a save of `results` when `job` is not
defined in the file.

## Why is this bad?
Every result lives only in the list until the event loop has finished. A crash, a rate
limit that raises, or a kill one call before the end loses every call already paid for,
and the re-run makes all of them again.

## Example
```python
results = []

async def process(item, sem):
    async with sem:
        results.append(await call_llm(item))

async def main(items):
    sem = asyncio.Semaphore(8)
    await asyncio.gather(*(process(x, sem) for x in items))

asyncio.run(main(items))
json.dump(results, open("out.json", "w"))
```

## Use instead
Each call is a unit; what it appended is recorded when it completes. A re-run appends the
recorded values of the completed calls instead of making them, and makes only the others:
```python
par = shared_appends("job.py::<module>::results")
results = []

async def process(item, sem):
    async with sem:
        par.append(results, await call_llm(item))

async def main(items):
    sem = asyncio.Semaphore(8)
    await asyncio.gather(*(par.appends(results, process, x, sem) for x in items))

asyncio.run(main(items))
json.dump(results, open("out.json", "w"))
par.complete()
```

## Fix safety
Safe up to order: the list is in completion order, which varies from run to run in the
original too; a resumed run holds the completed calls' values first. Where the program
sorts before saving, or the order does not matter, the output is the same. No fix when
the shape is unclear (hazard `unsupported-shape`): the list is also read or changed inside
the coroutine or by other code before the run, the coroutine is also called one at a time
or returns a value that is used, or the list is made in a function other than the one
that gathers the calls.
""",
)


ROW_APPLY = Variant(
    name="row-apply",
    code="CKP001",
    summary="a column is computed row by row with pandas' apply or map and saved only after it",
    rationale="""\
## What it does
Finds `target = receiver.apply(func, ...)` (also `progress_apply`, tqdm's, and `map`)
whose function does real work (an API or model call, a request, a helper of the same file
that makes one), followed by a save of the target's frame (`df.to_csv(...)`,
`to_json`, `to_parquet`, `to_pickle`, `to_excel`...), in a notebook possibly in a later cell.

## Why is this bad?
`apply` is a loop: every row's result lives only inside pandas until the last row is
done. A crash, a rate limit that raises, or a closed notebook one row before the end loses
every call already paid for.

## Example
```python
PROMPT = "Label the sentiment:"
df = pd.read_csv("articles.csv")
df["label"] = df["text"].apply(lambda t: classify(t, prompt=PROMPT))
df.to_csv("labelled.csv", index=False)
```

## Use instead
```python
PROMPT = "Label the sentiment:"
df = pd.read_csv("articles.csv")
rows = checkpoint_rows('label.py::<module>::df["label"]', key=(PROMPT,))
df["label"] = rows(df["text"]).apply(lambda t: classify(t, prompt=PROMPT))
df.to_csv("labelled.csv", index=False)
rows.complete()
```
Each call of the function is a unit: its argument's fingerprint and its result are
appended to the log before the next call. A re-run answers the recorded calls from the
log and calls the function for the rest; pandas builds the result as before, so its
dtype, index and shape are those of an uninterrupted run.

## Fix safety
As for CKP001 loops: safe unless a hazard is listed (an exit between the apply and the
save offers no fix). A function that is not a plain callable at run time (a ufunc, a
dict for `map`), or a receiver that is not a pandas object, runs unchecked with one
warning.
""",
)


ITEM_WRITES = Variant(
    name="item-writes",
    code="CKP001",
    summary="the items of a loaded list are filled in a loop and saved only after it",
    rationale="""\
## What it does
Finds a loop over a list bound before it (`data = json.load(f)`, a JSONL file read line by
line, `df.to_dict("records")`) that writes the results of real work into its own item
(`data[i]["answer"] = ...` in `for i in range(len(data))`, `item["answer"] = ...` or
`item.update({...})` in `for item in data` or `for i, item in enumerate(data)`, also
through `tqdm`), followed by a save of the list (`json.dump(data, f)`).

## Why is this bad?
Nothing is appended: each answer lives only inside the loaded list until the loop ends. A
crash, a rate limit that raises, or a closed laptop one item before the end loses every
call already paid for, and the re-run asks them all again.

## Example
```python
with open("questions.json") as f:
    data = json.load(f)
for item in data:
    item["answer"] = ask_llm(item["question"])
with open("answers.json", "w") as f:
    json.dump(data, f, indent=2)
```

## Use instead
```python
with open("questions.json") as f:
    data = json.load(f)
data_writes = item_writes(data)
ckpt = checkpoint(
    "label.py::<module>::data",
    data,
    lambda: (data_writes.journal,),
    constants={"data (as loaded)": data_writes.loaded},
)
[data_writes.journal] = ckpt.restore()
data_writes.replay()
for item in ckpt:
    data_writes.of(item)["answer"] = ask_llm(item["question"])
with open("answers.json", "w") as f:
    json.dump(data, f, indent=2)
ckpt.complete()
```
Each write goes to the item at once and is journaled as `(index, key, value)`, so a unit's
record holds only its own writes. A re-run loads the list again, and `replay()` applies the
completed units' writes to it: the list is exactly what an uninterrupted run would hold.
The list as loaded is part of the loop's identity (`constants=`): a re-run over another
input file, or over the output of a finished run that saved back into the file it read,
archives the old log with a warning and starts from zero, as the original would.

## Fix safety
Safe unless a hazard is listed. Not a finding at all when a unit reads another unit's item
(`data[i - 1]`), passes the whole list to a call, keeps the item object elsewhere
(`seen.append(item)`, `prev = item`), rebinds the item or the list, or grows the list. A
write below a key (`item["scores"]["bleu"] = ...`, `item["tags"].append(...)`) is flagged
without a fix (hazard `accumulator-mutated`). A callee that changes the item it is given
(`annotate(item)`) is not seen: such a change is not replayed on resume.
""",
)


VARIANTS: Tuple[Variant, ...] = (
    COLLECT_LOOP,
    COLLECT_COMPREHENSION,
    HELPER_RETURN,
    COLLECT_PARALLEL,
    COLLECT_ASYNC_SHARED,
    ROW_APPLY,
    ITEM_WRITES,
    DB_COMMIT,
    QUEUE_ACK,
)
VARIANTS_BY_NAME: Dict[str, Variant] = {v.name: v for v in VARIANTS}

#: what each code means across its variants (SARIF rule titles, --statistics)
CODES: Dict[str, Tuple[str, str]] = {
    # code: (rule name, one-line summary)
    "CKP001": ("CollectThenSave", "results are collected in a loop or comprehension and saved only after it"),
    "CKP002": ("CommitAfterLoop", "rows are written in a loop and committed only after it"),
    "CKP003": ("AckAfterBatch", "messages are processed in a loop and acknowledged only after it"),
}


@dataclass(frozen=True)
class HazardDoc:
    title: str
    explanation: str
    #: the strongest fix a finding with this hazard may carry (None: no fix at all)
    caps_fix_at: Optional[Safety]


HAZARDS: Dict[Hazard, HazardDoc] = {
    Hazard.UNORDERED_ITERABLE: HazardDoc(
        "iteration order may change between runs",
        "The loop iterates over os.listdir, glob, a set or similar; a re-run may see the "
        "items in another order, so a positional resume would pair results with the "
        "wrong items (the runtime's fingerprints then stop the run).",
        Safety.UNSAFE,
    ),
    Hazard.SINGLE_PASS_ITERABLE: HazardDoc(
        "iterable may not be reproducible on a re-run",
        "The loop consumes a generator, cursor, queue or data loader; a re-run may see "
        "other items, and skipping completed items still has to pull them through it.",
        Safety.UNSAFE,
    ),
    Hazard.ACCUMULATOR_MUTATED: HazardDoc(
        "accumulator mutated beyond accumulation",
        "Inside the loop the accumulator is sorted, popped, cleared, rebound or written at "
        "an index; the per-unit record of what was added cannot capture that.",
        None,
    ),
    Hazard.ACCUMULATOR_ESCAPES: HazardDoc(
        "accumulator passed to a call inside the loop",
        "The callee may mutate the accumulator in ways the checkpoint cannot see.",
        None,
    ),
    Hazard.LOOP_VARIABLE_USED_AFTER: HazardDoc(
        "loop variable used after the loop",
        "When every item was completed before a crash, the resumed loop body never runs, "
        "so the loop variable is not bound to the last item afterwards.",
        Safety.UNSAFE,
    ),
    Hazard.CARRIED_STATE: HazardDoc(
        "other state carried across iterations",
        "A variable assigned in the loop is also read before it or after the loop; it is "
        "checkpointed as a snapshot, which fails at run time if its value cannot be pickled.",
        Safety.UNSAFE,
    ),
    Hazard.SIDE_EFFECTS: HazardDoc(
        "per-item side effects outside the accumulator",
        "The loop body writes files, talks to a database or the network; completed units "
        "are not repeated on resume, but the unit in flight at a crash runs again.",
        Safety.UNSAFE,
    ),
    Hazard.UNSERIALISABLE_RESULTS: HazardDoc(
        "results may not be serialisable",
        "The accumulator holds values (open files, locks, generators, lambdas) that pickle "
        "cannot store; the checkpoint write would raise.",
        Safety.UNSAFE,
    ),
    Hazard.COLLECTIVE_OPERATION: HazardDoc(
        "collective operation in the loop",
        "The body calls a distributed collective (all_gather, barrier, dist.*); skipping an "
        "iteration on one rank deadlocks the others. Never auto-fixed.",
        None,
    ),
    Hazard.NESTED_LOOP: HazardDoc(
        "inner loop progress is redone",
        "The checkpointed unit is one iteration of the outer loop; after a crash the inner "
        "loop of the unit in flight starts again from its beginning.",
        Safety.SAFE,
    ),
    Hazard.EXIT_BEFORE_SAVE: HazardDoc(
        "the block may exit between the loop and the save",
        "A return, raise, break or continue between the loop and the save would leave the "
        "checkpoint behind after a successful run.",
        None,
    ),
    Hazard.SCOPE_LEAK: HazardDoc(
        "comprehension variable name used elsewhere",
        "Unrolling the comprehension would bind its loop variable in the enclosing scope, "
        "where the same name is already used.",
        None,
    ),
    Hazard.UNSUPPORTED_SHAPE: HazardDoc(
        "shape the rewrite does not support",
        "The loop or accumulator has a form the transformer cannot rewrite faithfully "
        "(the finding's note says which).",
        None,
    ),
    Hazard.AT_LEAST_ONCE: HazardDoc(
        "a committed unit may run again",
        "The commit and the progress record are not one transaction: if the process dies "
        "between them, the unit's writes are applied again on resume (at-least-once).",
        Safety.UNSAFE,
    ),
    Hazard.COMPLETED_AT_EXIT: HazardDoc(
        "callers in other files complete the helper's log only at exit",
        "The helper's module runs nothing of its own (no `__main__` guard, no top-level calls), "
        "so other files likely import and call it. Their calls' logs are removed when the "
        "interpreter exits normally, not after their own save: a long-lived process keeps "
        "them until it ends, and a re-run after a crash between such a call and its save "
        "resumes from the complete log (checked item by item, as any resume).",
        Safety.UNSAFE,
    ),
    Hazard.WRITES_BEFORE_LOOP: HazardDoc(
        "database writes before the loop run again",
        "Units are committed as they complete, so statements before the loop that change "
        "the database (DELETE, DROP, INSERT) run again on resume, over committed rows.",
        Safety.UNSAFE,
    ),
}


def fix_safety(hazards: Tuple[Hazard, ...]) -> Optional[Safety]:
    """The strongest fix allowed by a set of hazards: SAFE, UNSAFE, or None (no fix)."""
    result: Optional[Safety] = Safety.SAFE
    for hazard in hazards:
        cap = HAZARDS[hazard].caps_fix_at
        if cap is None:
            return None
        if cap is Safety.UNSAFE:
            result = Safety.UNSAFE
    return result
