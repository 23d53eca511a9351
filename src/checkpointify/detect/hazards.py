"""What could make a resumed run differ from an uninterrupted one, per site.

Each check adds ``(Hazard, note)`` pairs to a :class:`Hazards` list; the note is the one
line ``scan`` prints under the finding. :func:`checkpointify.rules.fix_safety` turns the
list into the fix's safety.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst

from checkpointify import catalogue
from checkpointify.detect.analysis import FileAnalysis
from checkpointify.detect.concat import concat_growth
from checkpointify.detect.cstutil import (
    COMPREHENSIONS,
    LOOPS,
    PRUNE,
    assigned_names,
    assignment_targets,
    callee_text,
    code_of,
    exits,
    is_self_concat,
    last_name,
    loads,
    names_in,
    read_after,
    single_assignment,
    target_name,
    walk,
)
from checkpointify.types import Hazard

_READ_METHODS = frozenset(
    {"get", "keys", "values", "items", "count", "index", "copy", "most_common"}
    | {"issubset", "issuperset", "isdisjoint", "union", "intersection", "difference"}
)
_MUTATING_METHODS = catalogue.CONTAINER_MUTATING_METHODS
_AUGMENTABLE = frozenset({"list", "number", "string", "set", "deque", "array"})
_UNORDERED_CALLS = frozenset({"os.listdir", "os.scandir", "os.walk", "glob.glob", "glob.iglob"})
_UNORDERED_METHODS = frozenset({"glob", "rglob", "iterdir"})
_SINGLE_PASS_CALLS = frozenset(
    {"builtins.iter", "builtins.map", "builtins.filter", "itertools.islice", "itertools.chain"}
    | {"torch.utils.data.DataLoader"}
)
_SINGLE_PASS_METHODS = frozenset({"fetchmany", "iter_rows", "consume", "poll", "receive_messages", "stream"})
_TRANSPARENT_CALLS = frozenset(
    {"builtins.enumerate", "builtins.zip", "builtins.reversed", "builtins.list", "builtins.tuple"}
)
_PROGRESS_BARS = frozenset({"tqdm", "trange", "track"})
_SIDE_EFFECT_CALLS = frozenset(
    {"requests.post", "requests.put", "requests.patch", "requests.delete"}
    | {"httpx.post", "httpx.put", "httpx.patch", "httpx.delete"}
    | {"os.remove", "os.unlink", "os.rename", "os.replace", "os.rmdir", "os.system"}
    | {"shutil.move", "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.rmtree"}
    | {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
    }
)
_SIDE_EFFECT_METHODS = frozenset(
    {"execute", "executemany", "send", "sendall", "sendmail", "publish", "put_object"}
    | {"post", "put", "patch", "delete"}
    | {"insert_one", "insert_many", "update_one", "update_many", "delete_one", "delete_many"}
)
_COLLECTIVE_METHODS = frozenset(
    {"all_gather", "all_reduce", "all_to_all", "barrier", "broadcast", "reduce_scatter"}
    | {"all_gather_object", "gather_object", "broadcast_object_list"}
    | {"allreduce", "allgather", "bcast", "Barrier", "wait_for_everyone"}
)
_UNPICKLABLE_CALLS = frozenset(
    {"builtins.open", "threading.Lock", "threading.RLock", "sqlite3.connect", "socket.socket"}
)
_CONSUMING_METHODS = catalogue.HANDLE_READ_METHODS | {"__next__", "send"}


class Hazards:
    """An ordered list of hazards, one note each (the first reason found)."""

    def __init__(self) -> None:
        self.items: List[Tuple[Hazard, str]] = []

    def add(self, hazard: Hazard, note: str) -> None:
        if all(h is not hazard for h, _ in self.items):
            self.items.append((hazard, note))

    def remove(self, hazard: Hazard) -> None:
        self.items = [(h, n) for h, n in self.items if h is not hazard]

    def extend(self, other: "Hazards") -> None:
        for hazard, note in other.items:
            self.add(hazard, note)

    @property
    def hazards(self) -> List[Hazard]:
        return [h for h, _ in self.items]

    @property
    def notes(self) -> List[str]:
        return [n for _, n in self.items]


def check_exits(found: Hazards, between: Iterable[cst.BaseStatement]) -> None:
    """A ``return``/``raise``/``break``/``continue`` between the loop and the save."""
    for stmt in between:
        reason = exits(stmt)
        if reason is not None:
            found.add(Hazard.EXIT_BEFORE_SAVE, "`%s` between the loop and the save" % reason)
            return


def growth_problem(name: str, kind: str, node: cst.CSTNode) -> Optional[str]:
    """Why ``node`` changes accumulator ``name`` in a way a per-unit record cannot capture."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        method = node.func.attr.value
        if target_name(node.func.value) == name:
            if method in _MUTATING_METHODS:
                return "`%s.%s()` inside the loop" % (name, method)
            if method in _READ_METHODS or method in catalogue.GROWTH_METHODS.get(kind, frozenset()):
                return None
            return "`%s.%s()` is not an accumulation of a %s" % (name, method, kind)
        if isinstance(node.func.value, cst.Subscript) and target_name(node.func.value.value) == name:
            # groups[k].append(x) grows a value of a dict (the runtime sees its length change);
            # groups[k].update(d) may overwrite inside it without changing its length, and
            # rows[-1].append(x) changes a row recorded by an earlier unit
            if kind == "dict" and method in catalogue.ELEMENT_GROWTH_METHODS:
                return None
            if method in _MUTATING_METHODS | catalogue.ELEMENT_GROWTH_METHODS | {"update"}:
                return "`%s[...].%s()` changes an element in place" % (name, method)
        return None
    if isinstance(node, cst.Del) and name in names_in(node.target):
        return "`del` on `%s` inside the loop" % name
    if isinstance(node, (cst.Assign, cst.AugAssign)):
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        for target in targets:
            problem = _store_problem(name, kind, node, target)
            if problem is not None:
                return problem or None
    return None


def _store_problem(name: str, kind: str, node: cst.CSTNode, target: cst.BaseExpression) -> Optional[str]:
    """ "" when the store is a fine accumulation, a reason when it is not, None when unrelated."""
    if target_name(target) == name:
        if isinstance(node, cst.AugAssign):
            return "" if kind in _AUGMENTABLE else "`%s +=` on a %s" % (name, kind)
        if (
            isinstance(node, cst.Assign)
            and is_self_concat(name, node.value)
            and kind in {"list", "number", "string"}
        ):
            return ""
        if kind == "concat" and isinstance(node, cst.Assign) and concat_growth(name, node.value):
            # df = pd.concat([df, part]): the call is journaled and replayed (detect/concat.py)
            return ""
        if kind == "array" and isinstance(node, cst.Assign):
            # preds = out (the first unit, from None) / preds = torch.cat((preds, out)): the
            # value is recorded whole after each unit, however it was computed
            return ""
        return "`%s` is rebound inside the loop" % name
    if isinstance(target, cst.Subscript):
        base = target.value
        if target_name(base) == name:
            return "" if kind == "dict" else "`%s[...] =` on a %s" % (name, kind)
        if isinstance(base, cst.Subscript) and target_name(base.value) == name:
            return "`%s[...][...] =` (nested store) cannot be recorded per unit" % name
    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Subscript):
        if target_name(target.value.value) == name:
            return "an element of `%s` is changed inside the loop" % name
    return None


def check_growth(found: Hazards, accumulators: Sequence[Tuple[str, str]], body: cst.CSTNode) -> None:
    """Every change to each ``(name, kind)`` accumulator is an accumulation the runtime can record."""
    for name, kind in accumulators:
        for node in walk(body):
            problem = growth_problem(name, kind, node)
            if problem:
                found.add(Hazard.ACCUMULATOR_MUTATED, problem)
                return


def check_iterable(
    found: Hazards,
    a: FileAnalysis,
    iterable: cst.BaseExpression,
    before: Sequence[cst.BaseStatement],
    body: Optional[cst.BaseSuite],
    depth: int = 0,
) -> None:
    """Whether a re-run iterates the same items in the same order, cheaply."""
    if depth > 4:
        return
    if isinstance(iterable, (cst.Set, cst.SetComp)):
        found.add(Hazard.UNORDERED_ITERABLE, "iterates over a set")
    elif isinstance(iterable, cst.GeneratorExp):
        found.add(
            Hazard.SINGLE_PASS_ITERABLE,
            "iterates over a generator expression; skipping completed items re-runs it",
        )
    elif isinstance(iterable, cst.Name):
        for stmt in reversed(before):
            assigned = single_assignment(stmt)
            if assigned and assigned[0] == iterable.value:
                check_iterable(found, a, assigned[1], before, None, depth + 1)
                break
        if body is not None and _consumed_in(body, iterable.value):
            found.add(Hazard.SINGLE_PASS_ITERABLE, "`%s` is also consumed inside the loop" % iterable.value)
    elif isinstance(iterable, cst.Call):
        _check_iterable_call(found, a, iterable, before, depth)


def _check_iterable_call(
    found: Hazards, a: FileAnalysis, call: cst.Call, before: Sequence[cst.BaseStatement], depth: int
) -> None:
    names = a.qualified(call.func)
    method = call.func.attr.value if isinstance(call.func, cst.Attribute) else None
    shown = callee_text(call.func)
    if "builtins.sorted" in names:
        return  # sorted(os.listdir(d)) has a stable order
    if names & (_UNORDERED_CALLS | {"builtins.set", "builtins.frozenset"}) or method in _UNORDERED_METHODS:
        found.add(Hazard.UNORDERED_ITERABLE, "iterates over %s(...), whose order may change" % shown)
    elif names & _SINGLE_PASS_CALLS or method in _SINGLE_PASS_METHODS:
        found.add(Hazard.SINGLE_PASS_ITERABLE, "iterates over %s(...)" % shown)
    elif isinstance(call.func, cst.Name) and a.module_generator(call.func.value):
        found.add(
            Hazard.SINGLE_PASS_ITERABLE,
            "iterates over the generator %s(); skipping completed items re-runs it" % shown,
        )
    elif (
        names & _TRANSPARENT_CALLS
        or (isinstance(call.func, cst.Name) and call.func.value in _PROGRESS_BARS)
        or any(n.startswith(("tqdm.", "rich.progress.")) for n in names)
    ):
        for arg in call.args:
            if arg.keyword is None:
                check_iterable(found, a, arg.value, before, None, depth + 1)


def _consumed_in(body: cst.BaseSuite, name: str) -> bool:
    """``next(f)`` or ``f.readline()`` inside the body: the iterator is advanced by the body too."""
    for node in walk(body):
        if not isinstance(node, cst.Call):
            continue
        func = node.func
        if (
            isinstance(func, cst.Name)
            and func.value == "next"
            and node.args
            and target_name(node.args[0].value) == name
        ):
            return True
        if (
            isinstance(func, cst.Attribute)
            and target_name(func.value) == name
            and func.attr.value in _CONSUMING_METHODS
        ):
            return True
    return False


def check_body(
    found: Hazards,
    a: FileAnalysis,
    body: cst.BaseSuite,
    accumulators: Set[str],
    immutable: FrozenSet[str] = frozenset(),
) -> None:
    """Collective operations, per-item side effects, unpicklable results, escaping accumulators.

    ``immutable`` accumulators (numbers, strings) cannot escape: a callee cannot change them.
    """
    on_self = sorted(n for n in accumulators if n.startswith("self."))
    has_inner_loop = False
    for node in walk(body):
        if isinstance(node, LOOPS):
            has_inner_loop = True
        if not isinstance(node, cst.Call):
            continue
        qualified = a.qualified(node.func)
        method = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
        owner = target_name(node.func.value) if isinstance(node.func, cst.Attribute) else None
        if any(q.startswith("torch.distributed.") for q in qualified) or method in _COLLECTIVE_METHODS:
            found.add(Hazard.COLLECTIVE_OPERATION, "calls %s()" % callee_text(node.func))
        elif qualified & _SIDE_EFFECT_CALLS or (method in _SIDE_EFFECT_METHODS and owner not in accumulators):
            found.add(Hazard.SIDE_EFFECTS, "calls %s()" % callee_text(node.func))
        elif method in catalogue.ELEMENT_ADDING_METHODS and owner in accumulators:
            for arg in node.args:
                if _makes_future(arg.value):
                    # handles.append(get_eval.remote(x))   (the work runs elsewhere; the handle dies with the run)
                    found.add(
                        Hazard.UNSUPPORTED_SHAPE,
                        "`%s` collects handles of work that runs elsewhere (%s()), which do not outlive the run"
                        % (owner, callee_text(_call_of(arg.value).func)),
                    )
                elif _unpicklable(a, arg.value):
                    found.add(Hazard.UNSERIALISABLE_RESULTS, "accumulates %s" % code_of(arg.value))
        else:
            _check_escape(found, node, accumulators - immutable)
        if on_self and owner == "self":
            # self.results.append(x) ... self.refresh()   (a method can change self.results behind our back)
            found.add(Hazard.ACCUMULATOR_ESCAPES, "`self.%s()` may change `%s`" % (method, on_self[0]))
    if has_inner_loop:
        found.add(Hazard.NESTED_LOOP, "an inner loop's progress within the unit in flight is redone")


def _call_of(value: cst.BaseExpression) -> cst.Call:
    assert isinstance(value, cst.Call)
    return value


def _makes_future(value: cst.BaseExpression) -> bool:
    """``executor.submit(f, x)``, ``f.remote(x)``, ``asyncio.create_task(c)``."""
    if not isinstance(value, cst.Call):
        return False
    return last_name(value.func) in catalogue.FUTURE_MAKING_CALLS


def _unpicklable(a: FileAnalysis, value: cst.BaseExpression) -> bool:
    if isinstance(value, (cst.Lambda, cst.GeneratorExp)):
        return True
    return isinstance(value, cst.Call) and bool(a.qualified(value.func) & _UNPICKLABLE_CALLS)


def _check_escape(found: Hazards, call: cst.Call, accumulators: Set[str]) -> None:
    func = call.func
    if isinstance(func, cst.Name) and func.value in catalogue.CHEAP_BUILTINS:
        return
    if isinstance(func, cst.Attribute):
        if target_name(func.value) in accumulators or func.attr.value in catalogue.LOGGING_METHODS:
            return
    for arg in call.args:
        name = target_name(arg.value)
        if name in accumulators:
            found.add(Hazard.ACCUMULATOR_ESCAPES, "`%s` is passed to %s()" % (name, callee_text(func)))


def carried_state(
    found: Hazards,
    a: FileAnalysis,
    loop: Union[cst.For, cst.While],
    accumulators: Set[str],
    after: Sequence[cst.BaseStatement],
) -> List[str]:
    """Other names assigned in the loop whose value crosses iterations or outlives the loop.

    They are checkpointed as snapshots. That is safe when every value the loop gives them
    is plain data (literals, arithmetic, subscripts and ``.get()`` of data, other state);
    otherwise the snapshot may not pickle, which makes the fix unsafe.
    """
    targets = assigned_names(loop.target) if isinstance(loop, cst.For) else set()
    condition = {n.value for n in loads(loop.test)} if isinstance(loop, cst.While) else set()
    first_store: Dict[str, int] = {}
    values: Dict[str, List[cst.BaseExpression]] = {}
    for node in walk(loop.body, PRUNE + COMPREHENSIONS):
        for name in assignment_targets(node):
            if name not in targets and name not in accumulators and "." not in name:
                line = a.line(node)
                first_store[name] = min(line, first_store.get(name, line))
                values.setdefault(name, []).append(_assigned_value(node))
    carried: List[str] = []
    for name in sorted(first_store, key=lambda n: (first_store[n], n)):
        read_first = any(n.value == name and a.line(n) < first_store[name] for n in loads(loop.body))
        if name in condition or read_first or read_after(name, after):
            carried.append(name)
    state = set(carried) | accumulators
    opaque = [n for n in carried if not all(_plain(v, state) for v in values[n])]
    if opaque:
        shown = ", ".join("`%s`" % n for n in opaque)
        found.add(Hazard.CARRIED_STATE, "%s also carried across iterations (snapshots must pickle)" % shown)
    return carried


def _assigned_value(node: cst.CSTNode) -> cst.BaseExpression:
    """The value an assignment node stores (a placeholder Call when it is not a plain assignment)."""
    if isinstance(node, (cst.Assign, cst.AugAssign, cst.NamedExpr)) or (
        isinstance(node, cst.AnnAssign) and node.value is not None
    ):
        value = node.value
        assert value is not None
        return value
    return cst.Call(func=cst.Name("opaque"))  # a for target, a with ... as: anything


_PLAIN_CALLS = frozenset({"len", "int", "float", "str", "bool", "min", "max", "abs", "round"})


def _plain(value: cst.BaseExpression, state: Set[str]) -> bool:
    """Plain data: it pickles whatever happens at run time (see :func:`carried_state`)."""
    if isinstance(
        value, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)
    ):
        return True
    if isinstance(value, cst.Name):
        return value.value in state or value.value in {"None", "True", "False"}
    if isinstance(value, cst.Subscript):
        return True  # data["next"]: a field of data
    if isinstance(value, cst.Attribute):
        return _plain(value.value, state) or isinstance(value.value, cst.Subscript)
    if isinstance(value, (cst.BinaryOperation, cst.BooleanOperation)):
        return _plain(value.left, state) and _plain(value.right, state)
    if isinstance(value, cst.UnaryOperation):
        return _plain(value.expression, state)
    if isinstance(value, cst.Comparison):
        return True
    if isinstance(value, cst.Call):
        func = value.func
        if isinstance(func, cst.Name) and func.value in _PLAIN_CALLS:
            return True
        return isinstance(func, cst.Attribute) and func.attr.value == "get"
    return False


def check_condition(found: Hazards, a: FileAnalysis, test: cst.BaseExpression) -> None:
    """A ``while`` test is re-evaluated on resume with the restored state: it must not consume input."""
    for node in walk(test):
        if isinstance(node, cst.NamedExpr):
            # while (line := f.readline()):   (the input position is not part of the checkpoint)
            found.add(Hazard.UNSUPPORTED_SHAPE, "the loop condition assigns `%s`" % code_of(node.target))
            return
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Name) and func.value in catalogue.CHEAP_BUILTINS:
                continue
            found.add(
                Hazard.SINGLE_PASS_ITERABLE,
                "the loop condition calls %s(); if it consumes input, a resumed run cannot replay it"
                % callee_text(func),
            )
            return


def check_loop_variable(
    found: Hazards, target: cst.BaseAssignTargetExpression, after: Sequence[cst.BaseStatement]
) -> None:
    for name in sorted(assigned_names(target)):
        if "." not in name and read_after(name, after):
            found.add(Hazard.LOOP_VARIABLE_USED_AFTER, "`%s` is read after the loop" % name)
            return


def check_self_reference(found: Hazards, iterable: cst.BaseExpression, state: Iterable[str]) -> None:
    # for x in list(results): results.append(f(x))   (restore would change what is iterated)
    read = names_in(iterable) & set(state)
    if read:
        found.add(
            Hazard.UNSUPPORTED_SHAPE,
            "the iterable reads %s, which the checkpoint restores" % ", ".join(sorted(read)),
        )


def state_changed(a: FileAnalysis, body: cst.CSTNode) -> Set[str]:
    """Names whose object the body changes: ``rng.random()``, ``next(it)``, ``counts[k] += 1``.

    Such an object is state the loop carries from one item to the next: a resumed run must
    start from its state after the last completed item, not from its state before the loop.
    """
    changed: Set[str] = set()
    for node in walk(body):
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in catalogue.STATE_CHANGING_METHODS:
                receiver: cst.BaseExpression = func.value
                while isinstance(receiver, (cst.Subscript, cst.Attribute)) and target_name(receiver) is None:
                    receiver = receiver.value
                name = target_name(receiver)
                if name:
                    changed.add(name)
            if a.qualified(func) & catalogue.STATE_CHANGING_CALLS and node.args:
                name = target_name(node.args[0].value)
                if name:
                    changed.add(name)
        elif isinstance(node, (cst.Assign, cst.AugAssign, cst.Del)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                if isinstance(target, (cst.Subscript, cst.Attribute)) and target_name(target) is None:
                    base: cst.BaseExpression = target.value
                    while isinstance(base, (cst.Subscript, cst.Attribute)) and target_name(base) is None:
                        base = base.value
                    name = target_name(base)
                    if name:
                        changed.add(name)
    return changed


def check_futures(
    found: Hazards,
    a: FileAnalysis,
    target: cst.BaseExpression,
    iterable: cst.BaseExpression,
    parts: Sequence[cst.CSTNode],
) -> None:
    """``for fut in as_completed(futures): results.append(fut.result())``: the work is not the loop's.

    The items are futures of work already submitted to a pool before the loop (or
    comprehension): a re-run submits every item again whatever the checkpoint skips, and
    the futures of two runs neither pickle nor compare, so completed units cannot be
    matched to their items.
    """
    targets = assigned_names(target)
    waits = any(
        isinstance(n, cst.Call)
        and isinstance(n.func, cst.Attribute)
        and n.func.attr.value in catalogue.FUTURE_RESULT_METHODS
        and target_name(n.func.value) in targets
        for part in parts
        for n in walk(part)
    )
    iterated = any(
        isinstance(n, cst.Call) and a.qualified(n.func) & catalogue.FUTURES_ITERABLES for n in walk(iterable)
    )
    if waits or iterated:
        found.add(
            Hazard.UNSUPPORTED_SHAPE,
            "the loop collects futures of work submitted before it: a re-run submits it all again, so the "
            "checkpoint belongs on the work itself",
        )
