"""Data, not code: every word list and table both detection stages use.

The matcher (:mod:`checkpointify.detect`) asks its questions of a call from these tables:
is it a *sink* (it persists its arguments or receiver), is it a *per-item persist* (a loop
that already does this inside its body is left alone), is it *cheap* (a loop body made
only of cheap calls does no work worth checkpointing) or *heavy*, does it *grow* an
accumulator, write to a database, acknowledge a batch. The screening stages
(:mod:`checkpointify.prefilter`) must admit everything the matcher can report, so they read
the very same tables: there is one copy of each, here, and ``tests/test_layers.py`` fails
when a stage defines a word list of its own.

Stdlib only: the prefilter imports this module in the main process, where LibCST is never
loaded.
"""

from __future__ import annotations

import re
from typing import Dict, FrozenSet, Tuple

#: fully qualified functions that write their argument somewhere durable
QUALIFIED_SINKS: FrozenSet[str] = frozenset(
    {
        "json.dump",
        "pickle.dump",
        "marshal.dump",
        "dill.dump",
        "cloudpickle.dump",
        "joblib.dump",
        "numpy.save",
        "numpy.savez",
        "numpy.savez_compressed",
        "numpy.savetxt",
        "torch.save",
        "yaml.dump",
        "yaml.safe_dump",
        "yaml.dump_all",
        "toml.dump",
        "tomli_w.dump",
        "scipy.io.savemat",
        "h5py.File",
        "pyarrow.parquet.write_table",
        "pandas.to_pickle",
        "shutil.copyfileobj",
    }
)

#: methods that persist their receiver (``df.to_csv(path)``) or argument (``f.write(s)``),
#: whatever the receiver's type
METHOD_SINKS: FrozenSet[str] = frozenset(
    {
        "to_csv",
        "to_parquet",
        "to_json",
        "to_pickle",
        "to_excel",
        "to_feather",
        "to_hdf",
        "to_sql",
        "to_netcdf",
        "to_orc",
        "to_stata",
        "write_text",
        "write_bytes",
        "writerow",
        "writerows",
        "write",
        "writelines",
        "savefig",
        "save",
        "dump",
    }
)

#: pandas methods that call a function once per row or element (``df["x"] = s.apply(f)``);
#: ``progress_apply`` is tqdm's (``tqdm.pandas()``)
ROW_APPLY_METHODS: FrozenSet[str] = frozenset({"apply", "progress_apply", "map"})

#: the verb a persisting function's name starts with (``save_results``, ``writeJson``)
SINK_VERBS = ("save", "dump", "write", "store", "persist", "export", "upload")
_SINK_NAME = re.compile(r"^_*(?:save|dump|write|store|persist|export|upload)(?:$|[_0-9A-Z])")

#: names that look like sinks but return a value instead (``json.dumps``) or only log
NOT_SINKS: FrozenSet[str] = frozenset(
    {
        "json.dumps",
        "pickle.dumps",
        "marshal.dumps",
        "dill.dumps",
        "cloudpickle.dumps",
        "yaml.dump_to_string",
        "sys.stdout.write",
        "sys.stderr.write",
        "sys.stdout.writelines",
        "sys.stderr.writelines",
        "builtins.print",
    }
)

#: calls that mean "this unit is already made durable or acknowledged"; a loop whose body
#: makes one of them is not a collect-then-save loop (on top of every sink above)
PER_ITEM_PERSIST_METHODS: FrozenSet[str] = frozenset(
    {
        "commit",
        "flush",
        "fsync",
        "ack",
        "acknowledge",
        "basic_ack",
        "delete_message",
        "checkpoint",
        "sync",
    }
)

#: builtins whose calls do no work worth checkpointing
CHEAP_BUILTINS: FrozenSet[str] = frozenset(
    {
        "abs",
        "all",
        "any",
        "bool",
        "bytes",
        "chr",
        "dict",
        "divmod",
        "enumerate",
        "float",
        "format",
        "frozenset",
        "getattr",
        "hasattr",
        "hash",
        "id",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "list",
        "max",
        "min",
        "next",
        "ord",
        "pow",
        "print",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "str",
        "sum",
        "tuple",
        "type",
        "zip",
    }
)

#: methods that are cheap whatever they are called on: string, container, path, regex and
#: in-memory array helpers (a body made only of these reshapes data, it does no work)
CHEAP_METHODS: FrozenSet[str] = frozenset(
    # str and bytes
    {
        "capitalize",
        "casefold",
        "center",
        "count",
        "decode",
        "encode",
        "endswith",
        "expandtabs",
        "find",
        "format",
    }
    | {"index", "isalnum", "isalpha", "isdigit", "isidentifier", "islower", "isnumeric", "isspace", "isupper"}
    | {"join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind"}
    | {"rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase"}
    | {"title", "translate", "upper", "zfill", "hex", "isoformat", "strftime", "timestamp", "hexdigest"}
    # containers
    | {"append", "extend", "add", "update", "get", "items", "keys", "values", "setdefault", "copy", "pop"}
    | {"popitem", "remove", "discard", "insert", "sort", "reverse", "clear", "union", "intersection"}
    | {"difference", "issubset", "issuperset", "isdisjoint", "most_common", "elements", "__getitem__"}
    # regex matches and paths
    | {
        "group",
        "groups",
        "groupdict",
        "span",
        "start",
        "end",
        "match",
        "fullmatch",
        "search",
        "sub",
        "findall",
    }
    | {"exists", "is_file", "is_dir", "with_suffix", "with_name", "with_stem", "joinpath", "relative_to"}
    | {"as_posix", "resolve", "absolute", "expanduser", "is_absolute", "stat"}
    # in-memory arrays and frames
    | {"reshape", "transpose", "astype", "tolist", "item", "flatten", "ravel", "squeeze", "view", "to_list"}
    | {"to_dict", "to_numpy", "rename", "reset_index", "set_index", "fillna", "dropna", "round", "clip"}
    # joining frames the loop already holds (``df = pd.concat([df, part])``) is not its work
    | {"concat"}
)

#: plain functions from these modules (qualified-name prefixes) are cheap
CHEAP_QUALIFIED_PREFIXES = (
    "os.path.",
    "posixpath.",
    "ntpath.",
    "re.",
    "shlex.",
    "string.",
    "textwrap.",
    "math.",
    "operator.",
    "itertools.",
    "functools.",
    "copy.",
    "datetime.",
    "html.",
    "urllib.parse.",
    "fnmatch.",
    "random.",
    "json.dumps",
    "json.loads",
    "time.time",
    "time.monotonic",
    "time.perf_counter",
    "time.strftime",
    "time.gmtime",
    "time.localtime",
    "uuid.",
    "gettext.",
    "decimal.",
    "fractions.",
    "collections.",
    "dataclasses.",
    "enum.",
    "typing.",
    "builtins.",
)

#: bare function names that only convert or translate (``to_bytes``, ``as_text``, ``_``)
CHEAP_NAME_PREFIXES = ("to_", "as_")
CHEAP_NAMES: FrozenSet[str] = frozenset({"_", "gettext", "ngettext", "pgettext"})

#: receivers whose calls only log or display (``logger.info``, ``display.warning``)
LOGGER_NAMES: FrozenSet[str] = frozenset(
    {
        "logger",
        "log",
        "logging",
        "LOGGER",
        "LOG",
        "display",
        "console",
        "warnings",
        "click",
        "pbar",
        "progress",
    }
)

#: calls whose result is not data derived from their arguments (a process, a socket...)
NOT_DERIVING_PREFIXES = (
    "subprocess.",
    "os.",
    "select.",
    "socket.",
    "threading.",
    "multiprocessing.",
    "signal.",
)

#: logging-style calls: reading the accumulator in them is not a use that matters
LOGGING_METHODS: FrozenSet[str] = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
)


def name_says_sink(name: str) -> bool:
    """True when a function or method name reads as persisting (``save_results``, ``dump``).

    ``dumps``-style names return a value instead of persisting, so they are not sinks.
    """
    if name.endswith("dumps") or name.endswith("_str") or name.endswith("_string"):
        return False
    # the verb must end the word: save, save_all, saveAll, SaveAll; not saved, writer, storage
    return bool(_SINK_NAME.match(name) or _SINK_NAME.match(name[:1].lower() + name[1:]))


# ------------------------------------------------------------------ growth and flow

#: calls that build a model object whose methods run the model (qualified-name prefixes):
#: ``model = SentenceTransformer(name)`` then ``model.encode(batch)`` is a model forward,
#: although ``encode`` is a cheap method on a string. Tokenizers are not listed (their
#: ``encode`` is cheap).
MODEL_OBJECT_PREFIXES: Tuple[str, ...] = ("sentence_transformers.", "FlagEmbedding.")
#: module functions that return their first argument's arrays joined: ``preds = torch.cat((preds,
#: out))``, ``np.concatenate([preds, out])``, ``np.append(preds, out)`` grow ``preds`` (an
#: accumulator that may start as ``None``: kind "array", restored from a snapshot)
CONCAT_FUNCTIONS: FrozenSet[str] = frozenset(
    {"cat", "concat", "concatenate", "vstack", "hstack", "row_stack", "column_stack", "dstack", "append"}
)
#: methods that grow an accumulator in a loop body (``acc.append(v)``)
GROWING_METHODS: FrozenSet[str] = frozenset({"append", "extend", "add", "update", "setdefault"})
#: methods that grow an accumulator, by the kind of its initial value
GROWTH_METHODS: Dict[str, FrozenSet[str]] = {
    "list": frozenset({"append", "extend"}),
    "deque": frozenset({"append", "extend"}),
    "dict": frozenset({"update", "setdefault"}),
    "set": frozenset({"add", "update"}),
    "number": frozenset(),
    "string": frozenset(),
    "frame": frozenset(),
    "concat": frozenset(),
    "array": frozenset(),
}
#: a frame filled through these indexers (``df.at[i, "col"] = v``, ``df.loc[len(df)] = row``)
#: is an accumulator whose writes are journaled and replayed (runtime ``frame_writes``)
FRAME_INDEXERS: FrozenSet[str] = frozenset({"at", "loc", "iat", "iloc"})
#: methods that grow a container held inside an accumulator (``acc[k].append(v)``)
ELEMENT_GROWTH_METHODS: FrozenSet[str] = frozenset(
    {"append", "extend", "add", "insert", "appendleft", "setdefault"}
)
#: methods that change the container they are called on, besides growing it (lists, dicts,
#: sets, deques, counters): on an accumulator they reorder or drop results (``detect.hazards``)
CONTAINER_MUTATING_METHODS: FrozenSet[str] = frozenset(
    {"pop", "popitem", "remove", "discard", "clear", "sort", "reverse", "insert"}
    | {"appendleft", "extendleft", "rotate", "subtract"}
    | {"difference_update", "intersection_update", "symmetric_difference_update"}
)
#: every method that changes the container it is called on: on an item of a loaded list
#: they are writes into it (``detect.items``; its prefilter twin)
ITEM_CHANGING_METHODS: FrozenSet[str] = GROWING_METHODS | ELEMENT_GROWTH_METHODS | CONTAINER_MUTATING_METHODS
#: growth that stores its arguments as elements (what the log must be able to pickle)
ELEMENT_ADDING_METHODS: FrozenSet[str] = frozenset({"append", "extend", "add"})
#: methods whose arguments flow into their receiver (``out.append(row)`` derives ``out`` from ``row``)
DERIVING_METHODS: FrozenSet[str] = frozenset({"append", "extend", "update", "add", "insert"})
#: calls that make an empty (or default-valued) accumulator, by qualified name
ACCUMULATOR_CALLS: FrozenSet[str] = frozenset(
    {"builtins.list", "builtins.dict", "builtins.set", "collections.OrderedDict", "collections.Counter"}
    | {"collections.defaultdict", "collections.deque"}
)
#: a loop over a literal of at most this many plain constants does no work worth a checkpoint
TINY_LITERAL_LOOP = 5
#: methods that are never a sink whatever their receiver: progress bars and counters
#: (``pbar.update(1)``, ``seen.add(x)``), not a save
NEVER_SINK_METHODS: FrozenSet[str] = frozenset({"update", "add"})
#: print-like calls that write a line somewhere (a sink when they write to a file)
PRINT_LIKE_CALLS: FrozenSet[str] = frozenset({"tqdm.write", "pbar.write", "console.print"})
#: attributes on a receiver chain that make ``.write``/``.info`` logging (``sys.stderr.write``)
LOGGING_RECEIVERS: FrozenSet[str] = frozenset({"stdout", "stderr", "logger", "log"})
#: ``self.<method>(...)`` calls that are logging
SELF_LOGGING_METHODS: FrozenSet[str] = frozenset({"log", "debug", "info", "warning", "error"})

# ------------------------------------------------------------ databases and queues

#: per-item database writes (a loop of these with one ``commit()`` after it is CKP002)
#: methods that write a whole collection of rows at once (``cur.executemany(sql, rows)``,
#: ``session.add_all(objs)``): after the loop, with a ``commit()`` later in the same block,
#: they are the save of what the loop collected (flow.find_sink)
DB_BULK_WRITE_METHODS: FrozenSet[str] = frozenset(
    {"executemany", "add_all", "bulk_save_objects", "bulk_insert_mappings", "insert_many"}
)
DB_WRITE_METHODS: FrozenSet[str] = frozenset(
    {"execute", "executemany", "add", "add_all", "merge", "bulk_save_objects", "bulk_insert_mappings"}
    | {"bulk_update_mappings", "delete", "insert_one", "insert_many"}
)
#: acknowledgements of a whole batch that read the grown name (CKP003)
BATCH_ACK_METHODS: FrozenSet[str] = frozenset(
    {"delete_message_batch", "acknowledge", "ack", "ack_messages", "modify_ack_deadline"}
)
#: ``channel.basic_ack(tag, multiple=True)``: acknowledges every message up to ``tag``
BASIC_ACK = "basic_ack"
#: a Kafka consumer's ``commit()`` acknowledges everything consumed so far
KAFKA_COMMIT = "commit"
#: every call that can acknowledge a batch after the loop (CKP003's candidates)
ACK_CALLS: FrozenSet[str] = BATCH_ACK_METHODS | {BASIC_ACK, KAFKA_COMMIT}
#: Kafka consumers whose ``commit()`` acknowledges everything consumed so far
KAFKA_CONSUMERS: FrozenSet[str] = frozenset(
    {"confluent_kafka.Consumer", "kafka.KafkaConsumer", "aiokafka.AIOKafkaConsumer"}
)
#: every name of :data:`KAFKA_CONSUMERS` contains this, so the text stage can look for it
KAFKA_TEXT = b"kafka"
assert all(KAFKA_TEXT.decode() in name.lower() for name in KAFKA_CONSUMERS)

# --------------------------------------------------------------------------- work

#: verbs whose calls are evidence of real work (prefix of the function or method name)
HEAVY_VERBS = re.compile(
    r"^_*(fetch|download|upload|request|query|execute|predict|infer|inference|generate|embed|transform"
    r"|forward|invoke|complete|completion|chat|create|wait|load|read|preprocess|process|setup"
    r"|train|fit|evaluate|score|run|call|sleep|communicate|urlopen|retrieve|scrape|crawl|classify"
    r"|summari[sz]e|analy[sz]e|detect|recogni[sz]e|transcribe|segment"
    r"|post|put|patch|send|poll|receive|consume|get_object)(?![a-z])",
)
#: qualified-name prefixes that are heavy whatever they are called
HEAVY_QUALIFIED: Tuple[str, ...] = (
    "requests.",
    "httpx.",
    "urllib.request.",
    "aiohttp.",
    "boto3.",
    "botocore.",
    "openai.",
    "anthropic.",
    "subprocess.",
    "os.system",
    "os.popen",
    "time.sleep",
    "asyncio.sleep",
    "builtins.open",
    "builtins.input",
    "numpy.load",
    "numpy.loadtxt",
    "numpy.genfromtxt",
    "numpy.fromfile",
    "pandas.read_",
    "json.load",
    "pickle.load",
    "torch.load",
    "PIL.",
    "cv2.",
    "shutil.",
    "socket.",
    "smtplib.",
    "ftplib.",
    "sqlite3.",
    "urllib3.",
    "paramiko.",
    "docker.",
    "psycopg2.",
    "pymysql.",
    "sqlalchemy.",
    "transformers.",
    "sentence_transformers.",
    "tensorflow.",
    "torch.",
    "jax.",
    "sklearn.",
    "xgboost.",
    "lightgbm.",
)

# ------------------------------------------------------------- state and structure

#: methods that change the state of their receiver: random draws, advancing an iterator,
#: container mutation. A name read in a loop body through one of them is state the loop
#: carries (restored with the accumulators), never part of the checkpoint's key.
STATE_CHANGING_METHODS: FrozenSet[str] = frozenset(
    {"random", "randint", "randrange", "choice", "choices", "sample", "shuffle", "uniform", "gauss"}
    | {"normalvariate", "getrandbits", "randbytes", "betavariate", "expovariate", "triangular"}
    | {"normal", "integers", "standard_normal", "permutation", "rand", "randn", "binomial", "poisson"}
    | {"exponential", "beta", "gamma", "multinomial", "dirichlet", "bytes", "random_sample"}
    | {"__next__", "send", "pop", "popitem", "popleft", "remove", "discard", "clear", "insert"}
    | {"append", "extend", "add", "update", "setdefault", "appendleft", "extendleft", "rotate"}
)
#: calls whose first argument is changed in place (``random.shuffle(order)``, ``next(it)``)
STATE_CHANGING_CALLS: FrozenSet[str] = frozenset({"builtins.next", "random.shuffle", "numpy.random.shuffle"})
#: how a per-item task is handed to a pool (``executor.submit(task, x)``, ``pool.map(task, xs)``,
#: ``Thread(target=task)``): a loop inside ``task`` is one task's unit of work, persisted
#: by the task; the pool runs many instances of it at once
POOL_TASK_METHODS: FrozenSet[str] = frozenset(
    {"submit", "map", "imap", "imap_unordered", "starmap", "apply_async", "map_async"}
    | {"starmap_async", "amap", "uimap", "apipe"}
)
POOL_TASK_KEYWORDS: FrozenSet[str] = frozenset({"target", "func", "fn"})
#: iterating over these yields futures whose work already runs in a pool (``as_completed``)
FUTURES_ITERABLES: FrozenSet[str] = frozenset({"concurrent.futures.as_completed", "asyncio.as_completed"})
#: calls that return a handle of work running elsewhere (a future, a task, a ray ObjectRef):
#: such handles do not outlive the process, so a checkpoint cannot restore them
FUTURE_MAKING_CALLS: FrozenSet[str] = frozenset(
    {"submit", "remote", "apply_async", "map_async", "starmap_async", "create_task", "ensure_future"}
    | {"amap", "apipe", "run_coroutine_threadsafe"}
)
#: methods of a future that wait for its result
FUTURE_RESULT_METHODS: FrozenSet[str] = frozenset({"result", "exception"})
#: reading a local file is not work worth a checkpoint: a re-run reads it again quickly.
#: parsers of a value already in memory, which the ``HEAVY_QUALIFIED`` prefixes ``json.load``
#: and ``pickle.load`` would otherwise take for file reads: cheap; and sklearn's sampling
#: helpers, which the ``sklearn.`` prefix would take for training (stratified sampling of a
#: frame grown by ``pd.concat``: labelled negatives L046, L051)
IN_MEMORY_PARSES: FrozenSet[str] = frozenset(
    {"json.loads", "pickle.loads", "sklearn.utils.resample", "sklearn.utils.shuffle"}
)
#: Qualified names of such reads (a loop whose only calls are these and cheap ones is not a job)
LOCAL_READ_QUALIFIED: FrozenSet[str] = frozenset(
    {"builtins.open", "io.open", "json.load", "pickle.load", "yaml.safe_load", "yaml.load"}
    | {"numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "tomllib.load"}
    | {"pandas.read_csv", "pandas.read_json", "pandas.read_parquet", "pandas.read_pickle"}
    | {"pandas.read_table", "pandas.read_feather", "pandas.read_excel", "pandas.read_fwf"}
    | {"os.path.exists", "os.path.isfile", "os.path.getsize", "os.listdir"}
)
#: methods that read through a file handle (local when the loop opened it: ``f.read()``)
HANDLE_READ_METHODS: FrozenSet[str] = frozenset({"read", "readline", "readlines"})
#: methods that read a local file from a path (``p.read_text()``)
PATH_READ_METHODS: FrozenSet[str] = frozenset({"read_text", "read_bytes"})
#: progress bars: their state is display, not results (never carried state, never in key=)
PROGRESS_BAR_PREFIXES: Tuple[str, ...] = ("tqdm.", "rich.progress.", "alive_progress.", "progressbar.")


# ------------------------------------------------------------------ helper-return (detect/helper.py)

#: a call whose result only names a file (``"out_%s.json".format(x)``, ``os.path.join(d, x)``):
#: a save whose only read of a helper's result is such a name does not persist the result
FILE_NAME_CALL_SUFFIXES: Tuple[str, ...] = (".format", "path.join", "Path")
FILE_NAME_CALLS: FrozenSet[str] = frozenset({"str", "Path"})
#: ``if os.path.exists(out): continue``: a loop that already skips what is done
DONE_CHECK_SUFFIXES: Tuple[str, ...] = ("exists", "isfile", "is_file")
#: ``results.append(helper(x))``: methods that keep a helper's result in a container
KEEPING_METHODS: FrozenSet[str] = frozenset({"append", "extend"})
#: collect-parallel (detect/parallel.py, prefilter twin in prefilter/tree.py): how pools are made
#: (the last part of the constructor's name: ``concurrent.futures.ThreadPoolExecutor``,
#: ``multiprocessing.Pool``, ``ctx.Pool``, ``multiprocessing.pool.ThreadPool``)
POOL_CONSTRUCTORS: FrozenSet[str] = frozenset(
    {"ThreadPoolExecutor", "ProcessPoolExecutor", "Pool", "ThreadPool"}
)
#: pool methods that run a function over inputs and hand the results back (rewritten to
#: ``par.map(pool, "<method>", f, xs)``)
PARALLEL_MAP_METHODS: FrozenSet[str] = frozenset({"map", "imap", "imap_unordered", "starmap"})
#: pool methods that run one call and return a handle of it (``par.submit`` / ``par.apply_async``)
PARALLEL_SUBMIT_METHODS: FrozenSet[str] = frozenset({"submit", "apply_async"})
#: awaiting every coroutine of a list at once (``results = await asyncio.gather(*coros)``)
GATHER_CALLS: FrozenSet[str] = frozenset({"asyncio.gather"})
#: wrapping a coroutine into a task (``asyncio.create_task(c)``, ``tg.create_task(c)``)
TASK_METHODS: FrozenSet[str] = frozenset({"create_task", "ensure_future"})
#: stage 1 admits a file without a loop keyword when one of these words is in it (a
#: ``results = list(pool.map(f, xs))`` site has no ``for``)
PARALLEL_TEXT_WORDS: Tuple[bytes, ...] = (
    b"map",
    b"imap",
    b"imap_unordered",
    b"starmap",
    b"gather",
    b"create_task",
    b"TaskGroup",
    b"asyncio.run",
)
#: collect-async-shared (detect/asyncshared.py): what runs a coroutine to completion
ASYNC_RUNNERS: FrozenSet[str] = frozenset({"asyncio.run"})
#: ... what waits for coroutines called concurrently (by qualified name; ``gather`` by any owner,
#: ``tqdm.asyncio.tqdm_asyncio.gather`` included), and the context manager whose tasks it waits for
ASYNC_WAITS: FrozenSet[str] = frozenset({"asyncio.gather", "asyncio.wait", "asyncio.as_completed"})
ASYNC_WAIT_NAMES: FrozenSet[str] = frozenset({"gather"})
TASK_GROUP = "TaskGroup"
#: how a parallel site's consumer waits for one handle (``fut.result()``, ``async_result.get()``)
PARALLEL_RESULT_METHODS: FrozenSet[str] = frozenset({"result", "get"})
#: joblib: ``Parallel(n_jobs=4)(delayed(f)(x) for x in xs)`` (rewritten to ``par.joblib(Parallel(...), ...)``)
JOBLIB_PARALLEL: FrozenSet[str] = frozenset({"joblib.Parallel"})
JOBLIB_DELAYED: FrozenSet[str] = frozenset({"joblib.delayed"})
