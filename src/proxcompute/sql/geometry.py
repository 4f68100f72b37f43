"""ADQL geometry: recognise spatial predicates, and translate the rest to plain SQL.

A *spatial test* is a WHERE conjunct that asks whether a point lies in a shape:
``CONTAINS(POINT(...), CIRCLE|BOX|POLYGON(...)) = 1`` (or ``1 = ...``, or bare, or with
``INTERSECTS``), and ``DISTANCE(P, Q) < r`` (``<=``, reversed ``>``/``>=``, and the
4-argument form). The planner turns a test whose point is a catalog's own coordinates and
whose shape is constant into a region filter (pruning + row-group ranges + exact kernel),
and a circle test between two catalogs into a crossmatch.

Geometry anywhere else (a ``DISTANCE`` in the select list, a test between two columns of
one row) is a per-row value, translated to SQL expressions over the coordinate columns (a
haversine ``DISTANCE``, ``CONTAINS`` of a circle or box as 0/1) that the DuckDB operator
evaluates; the macros live with it in :mod:`proxcompute.ops.sql_engine`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from sqlglot import exp

from proxcompute.errors import InvalidRegionError, SqlError
from proxcompute.ops.sql_engine import MACROS as ENGINE_MACROS
from proxcompute.sky import Box, Cone, Polygon, Region
from proxcompute.sql.parse import position

__all__ = [
    "SpatialTest",
    "const_value",
    "spatial_test",
    "to_region",
    "translate_geometry",
]

COORD_SYSTEMS = {"", "ICRS", "ICRS GEOCENTER", "ICRS TOPOCENTER", "UNKNOWN"}
SHAPES = {"CIRCLE", "BOX", "POLYGON"}
GEOMETRY = SHAPES | {"POINT"}

MACROS = ENGINE_MACROS
"""SQL macros the translated geometry calls; every engine connection defines them."""


def _err(phase: str, message: str, node: exp.Expression) -> SqlError:
    return SqlError(phase, message, *position(node))


def _fname(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.name).upper()
    if isinstance(node, exp.Contains):
        return "CONTAINS"
    return None


def _strip(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


_OPS = {exp.Add: operator.add, exp.Sub: operator.sub, exp.Mul: operator.mul, exp.Div: operator.truediv}


def const_value(node: exp.Expression) -> float | None:
    """The number a constant numeric expression stands for (``1.0/60``, ``-5``, ``PI()``), else None."""
    node = _strip(node)
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    if isinstance(node, exp.Neg):
        v = const_value(node.this)
        return None if v is None else -v
    if isinstance(node, exp.Pi):
        return math.pi
    op = _OPS.get(type(node))
    if op is not None:
        a, b = const_value(node.this), const_value(node.expression)
        if a is None or b is None:
            return None
        try:
            return float(op(a, b))
        except ZeroDivisionError:
            raise _err("type", "division by zero in a constant", node) from None
    return None


def _args(node: exp.Expression, name: str) -> list[exp.Expression]:
    """Arguments of a geometry constructor without its optional coordinate system."""
    args = list(node.expressions) if isinstance(node, exp.Anonymous) else []
    if args and isinstance(_strip(args[0]), exp.Literal) and _strip(args[0]).is_string:
        system = _strip(args[0]).name.strip().upper()
        if system not in COORD_SYSTEMS:
            raise _err(
                "unsupported", f"coordinate system {system!r} in {name}: only ICRS is supported", args[0]
            )
        args = args[1:]
    return args


def point_args(node: exp.Expression) -> tuple[exp.Expression, exp.Expression] | None:
    """``(ra, dec)`` expressions of ``POINT([system,] ra, dec)``, or None if not a POINT."""
    node = _strip(node)
    if _fname(node) != "POINT":
        return None
    args = _args(node, "POINT")
    if len(args) != 2:
        raise _err(
            "syntax", f"POINT takes a coordinate system, ra and dec; got {len(args)} coordinates", node
        )
    return args[0], args[1]


@dataclass
class Shape:
    kind: str  # CIRCLE, BOX or POLYGON
    args: list[exp.Expression]
    node: exp.Expression


def shape_of(node: exp.Expression) -> Shape | None:
    node = _strip(node)
    name = _fname(node)
    if name not in SHAPES:
        return None
    args = _args(node, name)
    want = {"CIRCLE": (3,), "BOX": (4,)}.get(name)
    if want and len(args) not in want:
        raise _err(
            "syntax", f"{name} takes {want[0]} numbers after the coordinate system, got {len(args)}", node
        )
    if name == "POLYGON" and (len(args) < 6 or len(args) % 2):
        raise _err(
            "syntax", f"POLYGON takes at least 3 (ra, dec) vertex pairs, got {len(args)} numbers", node
        )
    return Shape(name, args, node)


@dataclass
class SpatialTest:
    """``point`` lies in ``shape`` (a CIRCLE for DISTANCE tests)."""

    point: tuple[exp.Expression, exp.Expression]
    shape: Shape
    node: exp.Expression


def _distance_points(node: exp.Expression) -> tuple[tuple, tuple] | None:
    node = _strip(node)
    if _fname(node) != "DISTANCE":
        return None
    args = list(node.expressions)
    if len(args) == 4:
        return (args[0], args[1]), (args[2], args[3])
    if len(args) == 2:
        p, q = point_args(args[0]), point_args(args[1])
        if p is None or q is None:
            raise _err("type", "DISTANCE takes two POINTs (or four numbers)", node)
        return p, q
    raise _err("syntax", f"DISTANCE takes two POINTs or four numbers, got {len(args)} arguments", node)


def _is_one(node: exp.Expression) -> bool:
    v = const_value(node)
    return v == 1.0


def spatial_test(conjunct: exp.Expression) -> SpatialTest | None:
    """The spatial test a WHERE/ON conjunct expresses, or None if it is not one."""
    node = _strip(conjunct)
    contains = None
    if isinstance(node, exp.EQ):
        if _is_one(node.this) and _fname(_strip(node.expression)) in ("CONTAINS", "INTERSECTS"):
            contains = _strip(node.expression)
        elif _is_one(node.expression) and _fname(_strip(node.this)) in ("CONTAINS", "INTERSECTS"):
            contains = _strip(node.this)
    elif _fname(node) in ("CONTAINS", "INTERSECTS"):
        contains = node
    if contains is not None:
        a, b = _contains_args(contains)
        p = point_args(a)
        s = shape_of(b)
        if p is None and _fname(contains) == "INTERSECTS":
            p, s = point_args(b), shape_of(a)
        if p is None or s is None:
            return None
        return SpatialTest(p, s, conjunct)
    for cls, flip in ((exp.LT, False), (exp.LTE, False), (exp.GT, True), (exp.GTE, True)):
        if isinstance(node, cls):
            dist, radius = (node.expression, node.this) if flip else (node.this, node.expression)
            pts = _distance_points(dist)
            if pts is None:
                return None
            p, q = pts
            return SpatialTest(p, Shape("CIRCLE", [q[0], q[1], radius], node), conjunct)
    return None


def _contains_args(node: exp.Expression) -> tuple[exp.Expression, exp.Expression]:
    if isinstance(node, exp.Contains):
        return node.this, node.expression
    args = list(node.expressions)
    if len(args) != 2:
        raise _err("syntax", f"{_fname(node)} takes two geometries, got {len(args)} arguments", node)
    return args[0], args[1]


def to_region(shape: Shape) -> Region | None:
    """The region of a constant shape, or None when an argument is not constant."""
    values = [const_value(a) for a in shape.args]
    if any(v is None for v in values):
        return None
    try:
        if shape.kind == "CIRCLE":
            ra, dec, r = values
            if r is None or r <= 0:
                raise _err(
                    "type",
                    f"the radius of a CIRCLE or DISTANCE test must be > 0 degrees, got {r:g}",
                    shape.node,
                )
            return Cone(ra % 360.0, dec, r * 3600.0)
        if shape.kind == "BOX":
            ra, dec, w, h = values
            if w <= 0 or h <= 0:
                raise _err("type", "a BOX needs a positive width and height", shape.node)
            d0, d1 = max(-90.0, dec - h / 2), min(90.0, dec + h / 2)
            if abs(dec) > 90:
                raise InvalidRegionError(f"dec = {dec:g} is outside [-90, 90]")
            if w >= 360.0:
                return Box(0.0, 360.0, d0, d1)
            return Box((ra - w / 2) % 360.0, (ra + w / 2) % 360.0, d0, d1)
        pairs = list(zip(values[::2], values[1::2], strict=True))
        return Polygon(tuple((r % 360.0, d) for r, d in pairs))
    except InvalidRegionError as exc:
        raise _err("type", f"{shape.kind}: {exc}", shape.node) from None


def _call(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _as_int(cond: exp.Expression) -> exp.Expression:
    return exp.Cast(this=exp.Paren(this=cond), to=exp.DataType.build("INTEGER"))


def _shape_test(p: tuple, shape: Shape) -> exp.Expression:
    if shape.kind == "CIRCLE":
        c1, c2, r = shape.args
        return exp.LTE(this=_call("__adql_distance", p[0], p[1], c1, c2), expression=exp.Paren(this=r))
    if shape.kind == "BOX":
        return _call("__adql_in_box", p[0], p[1], *shape.args)
    raise _err(
        "unsupported",
        "POLYGON is supported as a constant region tested against a catalog's own coordinates in WHERE",
        shape.node,
    )


def translate_geometry(node: exp.Expression) -> exp.Expression:
    """``node`` with every geometry function replaced by plain SQL (in place, returned).

    Raises :class:`SqlError` for geometry values where a number is needed (``SELECT POINT(...)``).
    """

    def rewrite(n: exp.Expression) -> exp.Expression:
        name = _fname(n)
        if name in ("CONTAINS", "INTERSECTS"):
            a, b = _contains_args(n)
            p, s = point_args(a), shape_of(b)
            if p is None and name == "INTERSECTS":
                p, s = point_args(b), shape_of(a)
            if p is None or s is None:
                raise _err(
                    "unsupported", f"{name} is supported between a POINT and a CIRCLE, BOX or POLYGON", n
                )
            return _as_int(_shape_test(p, s))
        if name == "DISTANCE":
            (r1, d1), (r2, d2) = _distance_points(n)
            return _call("__adql_distance", r1, d1, r2, d2)
        if name in ("COORD1", "COORD2"):
            args = list(n.expressions)
            p = point_args(args[0]) if len(args) == 1 else None
            if p is None:
                raise _err("type", f"{name} takes one POINT", n)
            return exp.Paren(this=p[0] if name == "COORD1" else p[1])
        if name == "COORDSYS":
            return exp.Literal.string("ICRS")
        return n

    out = node.transform(rewrite, copy=False)
    for n in out.walk():
        if _fname(n) in GEOMETRY:
            raise _err(
                "unsupported",
                f"a {_fname(n)} value cannot be used here; geometry goes inside CONTAINS, INTERSECTS, "
                "DISTANCE, COORD1 or COORD2 (select the coordinate columns instead)",
                n,
            )
    return out
