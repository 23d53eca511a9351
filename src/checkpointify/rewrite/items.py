"""The rewrite of a loop that writes into the items of a loaded list (see :mod:`checkpointify.detect.items`).

Stores into the unit's item go through the journal (``runtime.itemwrites``); reads stay
on the list::

    data[i]["answer"] = v       ->  data_writes[i]["answer"] = v
    item["answer"] = v          ->  data_writes.of(item)["answer"] = v
    item.update({...})          ->  data_writes.of(item).update({...})

and the checkpoint gets the list as loaded in its identity
(``constants={"data (as loaded)": data_writes.loaded}``).
"""

from __future__ import annotations

import json

import libcst as cst

from checkpointify.detect.items import ItemSite

FUNCTION = "item_writes"


def loaded_constant(site: ItemSite, journal: str) -> str:
    """The ``constants=`` entry that ties the log to the list as loaded."""
    return "%s: %s.loaded" % (json.dumps("%s (as loaded)" % site.name), journal)


class JournalItemWrites(cst.CSTTransformer):
    """Routes the unit's stores into its item through ``journal`` (reads are left alone)."""

    def __init__(self, site: ItemSite, journal: str) -> None:
        super().__init__()
        self.site = site
        self.journal = journal

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # a nested scope: detect.items did not look there

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def _item(self, node: cst.BaseExpression) -> cst.BaseExpression:
        """``item`` -> ``journal.of(item)``, ``data[i]`` -> ``journal[i]``; anything else as is."""
        site = self.site
        if isinstance(node, cst.Name) and node.value in site.aliases:
            return cst.Call(cst.Attribute(cst.Name(self.journal), cst.Name("of")), args=[cst.Arg(node)])
        if (
            site.index is not None
            and isinstance(node, cst.Subscript)
            and isinstance(node.value, cst.Name)
            and node.value.value == site.name
            and len(node.slice) == 1
            and isinstance(node.slice[0].slice, cst.Index)
            and isinstance(node.slice[0].slice.value, cst.Name)
            and node.slice[0].slice.value.value == site.index
        ):
            return node.with_changes(value=cst.Name(self.journal))
        return node

    def _target(self, target: cst.BaseExpression) -> cst.BaseExpression:
        if isinstance(target, cst.Subscript):
            return target.with_changes(value=self._item(target.value))
        return target

    def leave_AssignTarget(
        self, original_node: cst.AssignTarget, updated_node: cst.AssignTarget
    ) -> cst.AssignTarget:
        target = self._target(updated_node.target)
        assert isinstance(target, cst.BaseAssignTargetExpression)
        return updated_node.with_changes(target=target)

    def leave_AugAssign(self, original_node: cst.AugAssign, updated_node: cst.AugAssign) -> cst.AugAssign:
        target = self._target(updated_node.target)
        assert isinstance(target, cst.BaseAssignTargetExpression)
        return updated_node.with_changes(target=target)

    def leave_AnnAssign(self, original_node: cst.AnnAssign, updated_node: cst.AnnAssign) -> cst.AnnAssign:
        target = self._target(updated_node.target)
        assert isinstance(target, cst.BaseAssignTargetExpression)
        return updated_node.with_changes(target=target)

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        func = updated_node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "update":
            return updated_node.with_changes(func=func.with_changes(value=self._item(func.value)))
        return updated_node
