"""Shared by the portal tests: the seeded catalog, an independent cone test, an HTML table reader."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd

from proxcompute.synthetic import DEFAULT_CLUSTERS, generate_catalog

# dense clusters on the RA wrap and next to the north pole, besides the default ones
CLUSTERS = (*DEFAULT_CLUSTERS, (359.8, 5.0, 0.6, 0.06), (0.0, 89.6, 0.4, 0.05))
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def survey(n_rows: int = 20_000, seed: int = 11) -> pd.DataFrame:
    """The seeded catalog the portal tests serve (columns id, ra, dec, mag, color, flag)."""
    return generate_catalog(n_rows, seed=seed, clusters=CLUSTERS)


def in_cone(df: pd.DataFrame, ra: float, dec: float, radius_deg: float) -> pd.DataFrame:
    """Rows within ``radius_deg`` of (ra, dec), by the haversine formula in numpy (not our kernels)."""
    r1, d1 = np.radians(df.ra.to_numpy()), np.radians(df.dec.to_numpy())
    r2, d2 = np.radians(ra), np.radians(dec)
    h = np.sin((d1 - d2) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r1 - r2) / 2) ** 2
    sep = np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))
    return df[sep < radius_deg]


class _TableReader(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.table_id = table_id
        self.inside = False
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "thead":
            self._in_head = True
        elif self.inside and tag == "tr" and not self._in_head:
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if not self.inside:
            return
        if tag == "table":
            self.inside = False
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.header if self._in_head else self.rows[-1]).append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_table(page: str, table_id: str) -> pd.DataFrame:
    """The cells of ``<table id=table_id>`` as text (header from its ``<thead>``)."""
    reader = _TableReader(table_id)
    reader.feed(page)
    return pd.DataFrame(reader.rows, columns=reader.header)
