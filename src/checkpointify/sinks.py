"""Data, not code: the catalogue of calls that persist, and of calls that do no real work.

The matcher asks three questions of a call, all answered from these tables:
is it a *sink* (it persists its arguments or receiver), is it a *per-item persist* (a loop
that already does this inside its body is left alone), and is it *cheap* (a loop body
made only of cheap calls does no work worth checkpointing).
"""

from __future__ import annotations

import re
from typing import FrozenSet

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
