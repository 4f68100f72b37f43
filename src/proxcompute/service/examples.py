"""DALI examples (XHTML+RDFa) built from the served catalogs; the tests run every one."""

from __future__ import annotations

from proxcompute.formats.xml import xml_text as escape
from proxcompute.service.vosi import TableInfo

__all__ = ["examples", "examples_document"]


def examples(tables: list[TableInfo]) -> list[tuple[str, str, str, str]]:
    """``(id, title, query, table)`` for the served tables (spatial examples use the first catalog)."""
    out = [
        ("tap-schema-tables", "List the tables", "SELECT table_name, description FROM TAP_SCHEMA.tables", "TAP_SCHEMA.tables"),
    ]  # fmt: skip
    spatial = [t for t in tables if {c.name for c in t.columns} >= {"ra", "dec"}]
    if not spatial:
        return out
    t = spatial[0].name
    numeric = [c.name for c in spatial[0].columns if c.datatype in ("double", "float") and c.name not in ("ra", "dec")]
    mag = numeric[0] if numeric else "dec"
    out += [
        ("cone", "A 1 arcmin cone around a position",
         f"SELECT ra, dec, {mag} FROM {t}\nWHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45.0, 30.0, 1.0/60))",
         t),
        ("brightest-in-cone", "The 10 brightest sources within half a degree",
         f"SELECT TOP 10 ra, dec, {mag},\n  DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 45.0, 30.0)) AS dist\n"
         f"FROM {t}\nWHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 45.0, 30.0)) < 0.5\nORDER BY {mag}",
         t),
        ("count-by-band", "Sources per degree of declination",
         f"SELECT FLOOR(dec) AS band, COUNT(*) AS n, AVG({mag}) AS mean_{mag}\nFROM {t}\nGROUP BY band\n"
         "ORDER BY band",
         t),
        ("healpix-density", "Density on HEALPix order 5 pixels",
         f"SELECT ivo_healpix_index(5, ra, dec) AS hpx5, COUNT(*) AS n\nFROM {t}\nGROUP BY hpx5",
         t),
        ("self-pairs", "Close pairs within 2 arcsec in a 1 degree field (a positional join runs as a crossmatch)",
         f"SELECT a.ra, a.dec, b.ra AS ra2, b.dec AS dec2,\n"
         "  DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) AS sep\n"
         f"FROM {t} AS a JOIN {t} AS b\n"
         "  ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, 2.0/3600))\n"
         "WHERE 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', 45.0, 30.0, 1.0))\n"
         "  AND a.ra < b.ra",
         t),
    ]  # fmt: skip
    return out


def examples_document(tables: list[TableInfo], service_name: str = "proxcompute TAP") -> bytes:
    """Well-formed XHTML+RDFa (no HTML void tags or entities: pyvo parses it as XML)."""
    divs = "".join(
        f'<div typeof="example" id="{eid}" resource="#{eid}">'
        f'<h2 property="name">{escape(title)}</h2>'
        f'<pre property="query">{escape(query)}</pre>'
        f'<p>Table: <span property="table">{escape(table)}</span></p></div>'
        for eid, title, query, table in examples(tables)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">'
        f"<head><title>{escape(service_name)}: examples</title></head>"
        f'<body vocab="http://www.ivoa.net/rdf/examples#"><h1>{escape(service_name)}: examples</h1>{divs}'
        "</body></html>"
    ).encode()
