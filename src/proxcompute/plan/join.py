"""A join on columns as a plan source: ``left JOIN right ON left_on = right_on``, partitioned
like the left.

Unlike a crossmatch, matching rows need not lie in aligned sky pixels: the executor reads each
left partition, collects its keys, finds the ``_healpix_29`` cells holding those keys on the
right, and reads only those right partitions and row groups. The cells come from the right's
index catalog of ``right_on`` when it has one (:mod:`proxcompute.storage.index`), else from an
in-memory map of the right's keys and cells (:class:`proxcompute.ops.join.KeyMap`), built once
per process by reading the right's two columns ``right_on`` and ``_healpix_29`` (about 16 bytes
per right row; build an index for right sides too big for that).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa

from proxcompute.errors import ColumnNotFoundError, PlanError
from proxcompute.ops.join import JoinArgs, KeyMap, join_output_schema
from proxcompute.plan.nodes import PlanNode, find_scan, render_tree, with_extra_columns
from proxcompute.plan.nodes import output_schema as plan_schema
from proxcompute.plan.optimizer import optimize
from proxcompute.plan.source import Source
from proxcompute.sky import INDEX_COLUMN

__all__ = ["JoinSource", "join_source"]


def _comparable(a: pa.DataType, b: pa.DataType) -> bool:
    def kind(t: pa.DataType) -> str:
        if pa.types.is_integer(t):
            return "int"
        if pa.types.is_floating(t) or pa.types.is_decimal(t):
            return "float"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "string"
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return "binary"
        return str(t)

    ka, kb = kind(a), kind(b)
    return ka == kb or {ka, kb} == {"int", "float"}


class JoinSource(Source):
    """Rows of ``left JOIN right``, one partition per (pruned) left partition.

    Parameters
    ----------
    left, right
        Plans of the two inputs.
    args
        Join columns, ``how`` and suffixes.
    index
        The right's index catalog of ``right_on``, or None (then a :class:`KeyMap`).
    """

    catalog_type = "object"

    def __init__(self, left: PlanNode, right: PlanNode, args: JoinArgs, *, index: Path | None = None) -> None:
        self.left = optimize(with_extra_columns(left, [INDEX_COLUMN]))
        self.args = args
        self.right_columns = right.output_columns()
        self.right = with_extra_columns(right, [INDEX_COLUMN])  # optimized per read, once restricted
        if INDEX_COLUMN not in self.right.output_columns():
            raise PlanError(
                f"right catalog {right.source.name!r} has no {INDEX_COLUMN} column to locate rows by"
            )
        self.index = index
        left_src, right_src = left.source, right.source
        self.name = f"{left_src.name}_join_{right_src.name}"
        self.ra_column = args.left_name(left_src.ra_column)
        self.dec_column = args.left_name(left_src.dec_column)
        self.schema = join_output_schema(plan_schema(self.left), plan_schema(right), args)
        self.pixels = tuple(find_scan(self.left).partitions)
        self.total_rows = -1
        self.max_rows = left_src.max_rows
        self.right_name = right_src.name
        self._keymap: KeyMap | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_lock"] = None
        state["_keymap"] = None  # rebuilt where needed, not shipped
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def explain_inputs(self) -> list[str]:
        """The left and right plans, and how the right rows are found, for ``explain()``."""
        lines = ["left:"]
        lines += ["  " + line for line in render_tree(self.left).splitlines()]
        lines.append("right:")
        lines += ["  " + line for line in render_tree(optimize(self.right)).splitlines()]
        if self.index is not None:
            lines.append(f"right rows located through the index catalog {self.index}")
        else:
            lines.append(
                f"right rows located through an in-memory map of {self.args.right_on!r} and _healpix_29 "
                "(read once per process, ~16 bytes per right row)"
            )
        return lines

    def describe(self) -> str:
        a = self.args
        return (
            f"{a.how} join of {find_scan(self.left).source.name!r} with {self.right_name!r} "
            f"on {a.left_on} = {a.right_on}"
        )


def join_source(left: PlanNode, right: PlanNode, args: JoinArgs, *, index: Path | None = None) -> JoinSource:
    """Build a :class:`JoinSource`, checking the join columns exist and compare."""
    for plan, col, side in ((left, args.left_on, "left"), (right, args.right_on, "right")):
        cols = plan.output_columns()
        if col not in cols:
            raise ColumnNotFoundError(col, cols, what=f"{side} catalog {plan.source.name!r}")
    lt = plan_schema(left).field(args.left_on).type
    rt = plan_schema(right).field(args.right_on).type
    if not _comparable(lt, rt):
        raise PlanError(
            f"cannot join {args.left_on!r} ({lt}) with {args.right_on!r} ({rt}): different kinds of values"
        )
    for t, c in ((lt, args.left_on), (rt, args.right_on)):
        if pa.types.is_nested(t):
            raise PlanError(f"cannot join on {c!r} of type {t}")
    return JoinSource(left, right, args, index=index)
