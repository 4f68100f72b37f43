"""VOSI documents (capabilities, availability, tables) and TAP_SCHEMA, from the catalog registry.

``/tables`` and ``TAP_SCHEMA`` are generated from the same column descriptions, so the two
always agree (taplint compares them), and the datatypes are those our VOTable writer emits
for each Arrow type (taplint compares those too).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from proxcompute.formats.xml import quoted_attr as quoteattr
from proxcompute.formats.xml import xml_text as escape
from proxcompute.sql import CatalogRegistry

__all__ = [
    "ColumnInfo",
    "TableInfo",
    "availability_document",
    "capabilities_document",
    "column_metadata",
    "describe_tables",
    "table_document",
    "tables_document",
    "tap_schema_self_description",
    "tap_schema_tables",
]

TAP_SCHEMA = "TAP_SCHEMA"
UDF_FORM = "ivo_healpix_index(hpxOrder INTEGER, ra DOUBLE PRECISION, dec DOUBLE PRECISION) -> BIGINT"
GEOMETRY_FEATURES = ("POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "DISTANCE", "COORD1", "COORD2")


ADQL_RESERVED = {"SIZE", "DATE", "TIME", "TIMESTAMP", "VALUE", "USER", "POSITION", "SECTION", "TABLE", "ORDER",
                 "GROUP", "SELECT", "FROM", "WHERE", "KEY", "TOP", "DISTANCE", "POINT", "BOX", "CIRCLE", "AREA",
                 "REGION", "LEVEL", "ZONE", "FIRST", "LAST", "ABSOLUTE", "DOMAIN", "COUNT", "SUM", "MIN", "MAX",
                 "AVG", "MODULE", "NAMES", "NATIONAL", "OUTPUT", "PAD", "PARTIAL", "PRECISION", "PRIOR", "PUBLIC",
                 "READ", "REAL", "RELATIVE", "ROWS", "SCHEMA", "SESSION", "SPACE", "TRANSLATION", "UNKNOWN",
                 "USAGE", "VIEW", "WORK", "WRITE", "DESC", "ASC", "END", "CASE", "CAST", "CHAR", "CHARACTER",
                 "COLUMN", "CONNECT", "CURRENT", "DAY", "HOUR", "MINUTE", "SECOND", "MONTH", "YEAR", "INTERVAL"}
"""Words a column name cannot be used as without double quotes (SQL-92 reserved + ADQL's own)."""


def adql_name(name: str) -> str:
    """``name`` as written in ADQL: delimited when it is reserved or not a regular identifier."""
    regular = name[:1].isalpha() and all(ch.isalnum() or ch == "_" for ch in name) and name.isascii()
    if regular and name.upper() not in ADQL_RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    datatype: str
    arraysize: str | None
    xtype: str | None
    unit: str | None
    ucd: str | None
    description: str
    indexed: bool
    principal: bool


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str  # fully qualified, as used in ADQL
    description: str
    columns: tuple[ColumnInfo, ...]


def votable_type(t: pa.DataType) -> tuple[str, str | None, str | None]:
    """``(datatype, arraysize, xtype)`` our VOTable writer uses for an Arrow type."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "boolean", None, None
    if pa.types.is_int8(t) or pa.types.is_int16(t):
        return "short", None, None
    if pa.types.is_uint8(t):
        return "unsignedByte", None, None
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "int", None, None
    if pa.types.is_integer(t):
        return "long", None, None
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return "float", None, None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double", None, None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "char", "*", "timestamp"
    return "unicodeChar", "*", None


_UCD = {"ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main", "_healpix_29": "pos.healpix"}


def describe_tables(registry: CatalogRegistry) -> list[TableInfo]:
    """One :class:`TableInfo` per served table (each catalog once, under its qualified name)."""
    out: list[TableInfo] = []
    seen: set[int] = set()
    for ref in registry.refs():
        if ref.schema is not None and ref.schema.upper() == TAP_SCHEMA:
            continue
        key = id(ref.opener)
        if key in seen:
            continue
        seen.add(key)
        cat = registry.open(ref)
        schema = cat.schema
        ra = getattr(cat, "ra_column", None)
        dec = getattr(cat, "dec_column", None)
        cols = []
        for f in schema:
            datatype, arraysize, xtype = votable_type(f.type)
            ucd = _UCD.get("ra" if f.name == ra else "dec" if f.name == dec else f.name)
            unit = "deg" if f.name in (ra, dec) else None
            desc = {
                "_healpix_29": "nested HEALPix index at order 29 (the sort and partition key)",
            }.get(f.name, "")
            if f.name == ra:
                desc = "right ascension (ICRS)"
            elif f.name == dec:
                desc = "declination (ICRS)"
            cols.append(
                ColumnInfo(
                    adql_name(f.name), datatype, arraysize, xtype, unit, ucd, desc,
                    indexed=f.name in ("_healpix_29", ra, dec), principal=f.name != "_healpix_29",
                )
            )  # fmt: skip
        rows = getattr(cat.plan.source, "total_rows", -1) if hasattr(cat, "plan") else cat.num_rows
        desc = f"{ref.qualified}: {rows:,} rows" if rows >= 0 else ref.qualified
        out.append(TableInfo(ref.schema or "default", ref.qualified, desc, tuple(cols)))
    return sorted(out, key=lambda t: (t.schema, t.name))


def column_metadata(tables: list[TableInfo], query: str) -> dict[str, dict[str, str]]:
    """Units, UCDs and descriptions for result columns named like a column of a queried table."""
    text = query.lower()
    meta: dict[str, dict[str, str]] = {}
    for t in tables:
        if t.name.lower() not in text and t.name.split(".")[-1].lower() not in text:
            continue
        for c in t.columns:
            name = c.name.strip('"')
            entry = {k: v for k, v in (("unit", c.unit), ("ucd", c.ucd), ("description", c.description)) if v}
            if entry:
                meta.setdefault(name, entry)
    return meta


def tap_schema_tables(tables: list[TableInfo]) -> dict[str, pa.Table]:
    """The five TAP_SCHEMA tables, describing ``tables`` and themselves."""
    own = tap_schema_self_description()
    everything = tables + own
    schemas = sorted({t.schema for t in everything})
    out = {
        "TAP_SCHEMA.schemas": pa.table(
            {
                "schema_name": pa.array(schemas, pa.string()),
                "utype": pa.nulls(len(schemas), pa.string()),
                "description": [f"tables of schema {s}" for s in schemas],
                "schema_index": pa.array(range(len(schemas)), pa.int32()),
            }
        ),
        "TAP_SCHEMA.tables": pa.table(
            {
                "schema_name": [t.schema for t in everything],
                "table_name": [t.name for t in everything],
                "table_type": ["table"] * len(everything),
                "utype": pa.nulls(len(everything), pa.string()),
                "description": [t.description for t in everything],
                "table_index": pa.array(range(len(everything)), pa.int32()),
            }
        ),
    }
    rows = [(t, c, i) for t in everything for i, c in enumerate(t.columns)]
    s = pa.string()
    out["TAP_SCHEMA.columns"] = pa.table(
        {
            "table_name": pa.array([t.name for t, _, _ in rows], s),
            "column_name": pa.array([c.name for _, c, _ in rows], s),
            "datatype": pa.array([c.datatype for _, c, _ in rows], s),
            "arraysize": pa.array([c.arraysize for _, c, _ in rows], s),
            "xtype": pa.array([c.xtype for _, c, _ in rows], s),
            "size": pa.nulls(len(rows), pa.int32()),
            "description": pa.array([c.description for _, c, _ in rows], s),
            "utype": pa.nulls(len(rows), s),
            "unit": pa.array([c.unit for _, c, _ in rows], s),
            "ucd": pa.array([c.ucd for _, c, _ in rows], s),
            "indexed": pa.array([int(c.indexed) for _, c, _ in rows], pa.int32()),
            "principal": pa.array([int(c.principal) for _, c, _ in rows], pa.int32()),
            "std": pa.array([int(t.schema == TAP_SCHEMA) for t, _, _ in rows], pa.int32()),
            "column_index": pa.array([i for _, _, i in rows], pa.int32()),
        }
    )
    keys = TAP_SCHEMA_KEYS
    out["TAP_SCHEMA.keys"] = pa.table(
        {
            "key_id": pa.array([k[0] for k in keys], s),
            "from_table": pa.array([k[1] for k in keys], s),
            "target_table": pa.array([k[3] for k in keys], s),
            "description": pa.array([f"{k[1]}.{k[2]} refers to {k[3]}.{k[4]}" for k in keys], s),
            "utype": pa.nulls(len(keys), s),
        }
    )
    out["TAP_SCHEMA.key_columns"] = pa.table(
        {
            "key_id": pa.array([k[0] for k in keys], s),
            "from_column": pa.array([k[2] for k in keys], s),
            "target_column": pa.array([k[4] for k in keys], s),
        }
    )
    return out


TAP_SCHEMA_KEYS = (
    ("tap_schema_1", "TAP_SCHEMA.tables", "schema_name", "TAP_SCHEMA.schemas", "schema_name"),
    ("tap_schema_2", "TAP_SCHEMA.columns", "table_name", "TAP_SCHEMA.tables", "table_name"),
    ("tap_schema_3", "TAP_SCHEMA.keys", "from_table", "TAP_SCHEMA.tables", "table_name"),
    ("tap_schema_4", "TAP_SCHEMA.keys", "target_table", "TAP_SCHEMA.tables", "table_name"),
    ("tap_schema_5", "TAP_SCHEMA.key_columns", "key_id", "TAP_SCHEMA.keys", "key_id"),
)
"""``(key_id, from_table, from_column, target_table, target_column)`` of TAP_SCHEMA's own links."""


def tap_schema_self_description() -> list[TableInfo]:
    def col(name: str, datatype: str, description: str) -> ColumnInfo:
        arraysize = "*" if datatype == "unicodeChar" else None
        return ColumnInfo(adql_name(name), datatype, arraysize, None, None, None, description, False, True)

    s, i = "unicodeChar", "int"
    spec = {
        "schemas": [("schema_name", s), ("utype", s), ("description", s), ("schema_index", i)],
        "tables": [("schema_name", s), ("table_name", s), ("table_type", s), ("utype", s), ("description", s),
                   ("table_index", i)],
        "columns": [("table_name", s), ("column_name", s), ("datatype", s), ("arraysize", s), ("xtype", s),
                    ("size", i), ("description", s), ("utype", s), ("unit", s), ("ucd", s), ("indexed", i),
                    ("principal", i), ("std", i), ("column_index", i)],
        "keys": [("key_id", s), ("from_table", s), ("target_table", s), ("description", s), ("utype", s)],
        "key_columns": [("key_id", s), ("from_column", s), ("target_column", s)],
    }  # fmt: skip
    return [
        TableInfo(TAP_SCHEMA, f"{TAP_SCHEMA}.{name}", f"TAP_SCHEMA {name}", tuple(col(c, t, c) for c, t in cols))
        for name, cols in spec.items()
    ]


# -- XML documents ---------------------------------------------------------------------------

_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def _column_xml(c: ColumnInfo) -> str:
    parts = [f"<column><name>{escape(c.name)}</name>"]
    if c.description:
        parts.append(f"<description>{escape(c.description)}</description>")
    if c.unit:
        parts.append(f"<unit>{escape(c.unit)}</unit>")
    if c.ucd:
        parts.append(f"<ucd>{escape(c.ucd)}</ucd>")
    attrs = f' arraysize="{c.arraysize}"' if c.arraysize else ""
    if c.xtype:
        attrs += f" extendedType={quoteattr(c.xtype)}"
    parts.append(f'<dataType xsi:type="vs:VOTableType"{attrs}>{c.datatype}</dataType>')
    if c.indexed:
        parts.append("<flag>indexed</flag>")
    if c.principal:
        parts.append("<flag>principal</flag>")
    parts.append("</column>")
    return "".join(parts)


def _table_xml(t: TableInfo, tag: str = "table", namespaces: str = "") -> str:
    cols = "".join(_column_xml(c) for c in t.columns)
    cols += "".join(
        f"<foreignKey><targetTable>{escape(target)}</targetTable><fkColumn><fromColumn>{escape(fc)}</fromColumn>"
        f"<targetColumn>{escape(tc)}</targetColumn></fkColumn></foreignKey>"
        for _, source, fc, target, tc in TAP_SCHEMA_KEYS
        if source == t.name
    )
    return (
        f'<{tag}{namespaces} type="output"><name>{escape(t.name)}</name>'
        f"<description>{escape(t.description)}</description>{cols}</{tag}>"
    )


def tables_document(tables: list[TableInfo]) -> bytes:
    """``/tables``: a VOSI 1.1 tableset of every schema and table (full detail)."""
    by_schema: dict[str, list[TableInfo]] = {}
    for t in tables + tap_schema_self_description():
        by_schema.setdefault(t.schema, []).append(t)
    body = "".join(
        f"<schema><name>{escape(s)}</name><description>{escape('tables of schema ' + s)}</description>"
        + "".join(_table_xml(t) for t in ts)
        + "</schema>"
        for s, ts in sorted(by_schema.items())
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
        f'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" {_XSI}>{body}</vosi:tableset>'
    ).encode()


def table_document(table: TableInfo) -> bytes:
    """``/tables/{name}``: one ``vosi:table``."""
    ns = (
        ' xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"'
        f' xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" {_XSI}'
    )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + _table_xml(table, "vosi:table", ns)).encode()


def availability_document(note: str = "service is accepting queries") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
        f"<vosi:available>true</vosi:available><vosi:note>{escape(note)}</vosi:note></vosi:availability>"
    ).encode()


def capabilities_document(base_url: str, *, default_maxrec: int, hard_maxrec: int, upload_limit: int,
                          retention_seconds: int, execution_duration: int, tokens: bool) -> bytes:  # fmt: skip
    """``/capabilities``: VOSI capabilities with the TAPRegExt description of what we serve."""
    base = escape(base_url.rstrip("/"))

    def plain(standard: str, path: str, version: str = "1.0", use: str = "full") -> str:
        return (
            f'<capability standardID="{standard}"><interface xsi:type="vs:ParamHTTP" role="std" '
            f'version="{version}"><accessURL use="{use}">{base}/{path}</accessURL></interface></capability>'
        )

    features = "".join(f"<feature><form>{f}</form></feature>" for f in GEOMETRY_FEATURES)
    security = (
        '<interface xsi:type="vs:ParamHTTP" role="std" version="1.1">'
        f'<accessURL use="base">{base}</accessURL>'
        '<securityMethod standardID="ivo://ivoa.net/sso#token"/></interface>'
        if tokens
        else ""
    )
    outputs = (
        ("ivo://ivoa.net/std/TAPRegExt#output-votable-binary2", "application/x-votable+xml;serialization=binary2",
         "votable/b2"),
        ("ivo://ivoa.net/std/TAPRegExt#output-votable-binary", "application/x-votable+xml;serialization=binary",
         "votable/b"),
        ("ivo://ivoa.net/std/TAPRegExt#output-votable-td", "application/x-votable+xml;serialization=tabledata",
         "votable/td"),
        (None, "text/csv;header=present", "csv"),
        (None, "text/tab-separated-values", "tsv"),
        (None, "application/vnd.apache.parquet", "parquet"),
    )  # fmt: skip
    out_xml = "".join(
        (f'<outputFormat ivo-id="{i}">' if i else "<outputFormat>") + f"<mime>{escape(m)}</mime><alias>{a}</alias>"
        "</outputFormat>"
        for i, m, a in outputs
    )
    tap = (
        '<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">'
        '<interface xsi:type="vs:ParamHTTP" role="std" version="1.1">'
        f'<accessURL use="base">{base}</accessURL></interface>{security}'
        "<language><name>ADQL</name>"
        '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>'
        '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>'
        "<description>ADQL 2.1 on HEALPix-partitioned Parquet (proxcompute)</description>"
        f'<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">{features}</languageFeatures>'
        '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-offset">'
        "<feature><form>OFFSET</form></feature></languageFeatures>"
        '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf">'
        f"<feature><form>{escape(UDF_FORM)}</form><description>nested HEALPix index</description></feature>"
        "</languageFeatures></language>"
        f"{out_xml}"
        '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>'
        '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>'
        f"<retentionPeriod><default>{retention_seconds}</default></retentionPeriod>"
        f"<executionDuration><default>{execution_duration}</default></executionDuration>"
        f'<outputLimit><default unit="row">{default_maxrec}</default><hard unit="row">{hard_maxrec}</hard>'
        "</outputLimit>"
        f'<uploadLimit><hard unit="byte">{upload_limit}</hard></uploadLimit>'
        "</capability>"
    )
    body = (
        plain("ivo://ivoa.net/std/VOSI#capabilities", "capabilities")
        + plain("ivo://ivoa.net/std/VOSI#availability", "availability")
        + plain("ivo://ivoa.net/std/VOSI#tables-1.1", "tables", version="1.1", use="base")
        + '<capability standardID="ivo://ivoa.net/std/DALI#examples"><interface xsi:type="vr:WebBrowser">'
        f'<accessURL use="full">{base}/examples</accessURL></interface></capability>'
        + tap
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
        'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        f'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0" {_XSI}>{body}</vosi:capabilities>'
    ).encode()
