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

#: methods that are cheap whatever they are called on (string and mapping helpers)
CHEAP_METHODS: FrozenSet[str] = frozenset(
    {
        "append",
        "capitalize",
        "casefold",
        "copy",
        "count",
        "decode",
        "encode",
        "endswith",
        "extend",
        "find",
        "format",
        "get",
        "index",
        "isdigit",
        "items",
        "join",
        "keys",
        "ljust",
        "lower",
        "lstrip",
        "partition",
        "replace",
        "rjust",
        "rsplit",
        "rstrip",
        "setdefault",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "title",
        "upper",
        "values",
        "zfill",
        "add",
        "update",
    }
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
