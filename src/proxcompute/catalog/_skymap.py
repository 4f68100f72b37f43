"""``SkyMap``: a HEALPix NESTED map of aggregates, as :meth:`Catalog.skymap` returns it.

Empty pixels (no rows): ``to_numpy`` gives 0 for ``count`` and ``sum`` (nothing counted, an
empty sum) and NaN for ``mean``, ``min``, ``max`` and ``std`` (no value; ``std`` also for
pixels with a single value). Pass ``empty=healpy.UNSEEN`` to get healpy's marker instead.
``to_fits`` writes healpy's UNSEEN for those pixels, the FITS convention healpy's tools read
as "no data".
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from proxcompute.errors import PlanError
from proxcompute.ops.aggregate import MergedState
from proxcompute.sky.healpix import radec_to_pixel

__all__ = ["UNSEEN", "SkyMap"]

UNSEEN = -1.6375e30
"""healpy's marker of a pixel with no data (``healpy.UNSEEN``)."""


class SkyMap:
    """Aggregates per HEALPix pixel (NESTED ordering) at one order.

    Build one with :meth:`proxcompute.Catalog.skymap`.

    Examples
    --------
    >>> from proxcompute.catalog import from_dataframe
    >>> from proxcompute.synthetic import generate_catalog
    >>> cat = from_dataframe(generate_catalog(20_000, seed=1))
    >>> sm = cat.skymap(3, aggregates={"n": "count", "mean_mag": ("mag", "mean")})
    >>> sm.order, sm.to_numpy("n").shape, int(sm.to_numpy("n").sum())
    (3, (768,), 20000)
    >>> df = sm.to_pandas()
    >>> list(df.columns), bool((df["n"] > 0).all())
    (['pixel', 'n', 'mean_mag'], True)
    """

    def __init__(self, state: MergedState, *, name: str = "") -> None:
        key = state.node.healpix_key
        if key is None:
            raise PlanError("a SkyMap is an aggregate keyed by one HEALPix pixel")
        self._state = state
        self.order = key.order
        self.name = name

    # -- description ---------------------------------------------------------------------

    @property
    def nside(self) -> int:
        """HEALPix ``nside`` (``2**order``)."""
        return 2**self.order

    @property
    def npix(self) -> int:
        """Number of pixels on the sky (``12 * 4**order``)."""
        return 12 * 4**self.order

    @property
    def names(self) -> list[str]:
        """Names of the aggregates."""
        return [a.name for a in self._state.node.aggregates]

    @property
    def aggregates(self) -> dict[str, str]:
        """``{name: "func(column)"}``."""
        return {a.name: f"{a.func}({a.column or '*'})" for a in self._state.node.aggregates}

    @property
    def rows(self) -> int:
        """Rows aggregated."""
        return int(self._state.rows.sum())

    @property
    def nonempty_pixels(self) -> int:
        """Pixels holding at least one row."""
        return int(np.count_nonzero(self._state.rows))

    # -- values --------------------------------------------------------------------------

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise PlanError(f"no aggregate {name!r} in this sky map; it has {', '.join(self.names)}")
        return self.names.index(name)

    def to_numpy(self, name: str | None = None, *, empty: float = np.nan) -> np.ndarray:
        """The map of one aggregate: an array of ``12 * 4**order`` values in NESTED order.

        Parameters
        ----------
        name
            The aggregate (default: the first).
        empty
            Value of pixels with no value for ``mean``, ``min``, ``max`` and ``std`` (NaN;
            ``healpy.UNSEEN`` for healpy's tools). ``count`` and ``sum`` are 0 there.
        """
        i = self._index(name or self.names[0])
        func = self._state.node.aggregates[i].func
        values, valid = self._full(i)
        if func in ("count", "sum"):
            return np.where(valid, values, 0) if values.dtype.kind != "f" else np.where(valid, values, 0.0)
        out = values.astype(np.float64, copy=True)
        out[~valid] = empty
        return out

    def _full(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        values, valid = self._state.values(i)
        if self._state.dense:
            return values, valid
        full = np.zeros(self.npix, dtype=values.dtype)
        ok = np.zeros(self.npix, dtype=bool)
        pix = self._state.group_keys()[0].astype(np.int64)
        full[pix], ok[pix] = values, valid
        return full, ok

    def to_pandas(self) -> pd.DataFrame:
        """One row per non-empty pixel: ``pixel`` then the aggregates (NaN where no value)."""
        return self._state.finalize().to_pandas()

    # -- files and pictures --------------------------------------------------------------

    def to_fits(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write a HEALPix FITS map (every aggregate a column), readable by ``healpy.read_map``.

        The header says ``ORDERING = 'NESTED'`` and ``NSIDE``; pixels with no value hold
        ``healpy.UNSEEN``. The file is written next to ``path`` and renamed into place, so a
        failed write leaves nothing.

        Examples
        --------
        >>> import os, tempfile, healpy
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> sm = from_dataframe(generate_catalog(5_000, seed=1)).skymap(2)
        >>> path = sm.to_fits(os.path.join(tempfile.mkdtemp(), "n.fits"))
        >>> int(healpy.read_map(path, nest=True).sum())
        5000
        """
        from astropy.io import fits

        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        cols = []
        for spec in self._state.node.aggregates:
            values = self.to_numpy(spec.name, empty=UNSEEN)
            fmt = "K" if values.dtype.kind in "iu" else "D"
            cols.append(fits.Column(name=spec.name, format=fmt, array=values))
        hdu = fits.BinTableHDU.from_columns(cols)
        h = hdu.header
        for key, value, comment in (
            ("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
            ("ORDERING", "NESTED", "Pixel ordering scheme"),
            ("NSIDE", self.nside, "Resolution parameter of HEALPIX"),
            ("ORDER", self.order, "HEALPix order (log2 nside)"),
            ("FIRSTPIX", 0, "First pixel # (0 based)"),
            ("LASTPIX", self.npix - 1, "Last pixel # (0 based)"),
            ("INDXSCHM", "IMPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
            ("OBJECT", "FULLSKY", "Sky coverage"),
            ("COORDSYS", "C", "Ecliptic, Galactic or Celestial (equatorial)"),
        ):
            h[key] = (value, comment)
        for i, spec in enumerate(self._state.node.aggregates, start=1):
            h[f"TDOC{i}"] = f"{spec.func}({spec.column or '*'})"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def mollweide(self, name: str | None = None, *, width: int = 800) -> np.ndarray:
        """The map projected on a Mollweide raster of ``width x width/2`` (NaN off the sky and for no value).

        RA grows to the left, RA = 180 deg at the edges, as in healpy's ``mollview``.
        """
        values = self.to_numpy(name).astype(np.float64)
        if self._state.node.aggregates[self._index(name or self.names[0])].func == "count":
            values = np.where(values > 0, values, np.nan)
        h = width // 2
        x = (np.arange(width) + 0.5) / width * 4 * np.sqrt(2) - 2 * np.sqrt(2)
        y = np.sqrt(2) - (np.arange(h) + 0.5) / h * 2 * np.sqrt(2)
        xx, yy = np.meshgrid(x, y)
        theta = np.arcsin(np.clip(yy / np.sqrt(2), -1, 1))
        lat = np.arcsin(np.clip((2 * theta + np.sin(2 * theta)) / np.pi, -1, 1))
        lon = np.pi * xx / (2 * np.sqrt(2) * np.cos(theta))
        inside = np.abs(lon) <= np.pi
        ra = np.degrees(-lon[inside]) % 360.0
        dec = np.degrees(lat[inside])
        img = np.full(xx.shape, np.nan)
        img[inside] = values[radec_to_pixel(self.order, ra, dec)]
        return img

    def plot(self, name: str | None = None, ax: Any = None, *, width: int = 800, cmap: str = "viridis",
             log: bool = False, title: str | None = None, **kwargs: Any) -> Any:  # fmt: skip
        """Draw one aggregate on a Mollweide map with a colour bar; returns the Axes.

        Parameters
        ----------
        name
            The aggregate (default: the first).
        ax
            Matplotlib Axes to draw in (default: a new figure).
        width
            Raster width in screen pixels.
        cmap, log
            Colour map, and a logarithmic colour scale.
        **kwargs
            Passed to ``imshow``.

        Examples
        --------
        >>> from proxcompute.catalog import from_dataframe
        >>> from proxcompute.synthetic import generate_catalog
        >>> sm = from_dataframe(generate_catalog(5_000, seed=1)).skymap(3)
        >>> ax = sm.plot("n", width=200)
        >>> ax.get_title()
        'dataframe: n = count(*), order 3'
        """
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
        from matplotlib.patches import Ellipse

        name = name or self.names[0]
        img = self.mollweide(name, width=width)
        if ax is None:
            _, ax = plt.subplots(figsize=(9, 5))
        finite = img[np.isfinite(img)]
        if log and finite.size and (finite > 0).any():
            kwargs.setdefault("norm", LogNorm(vmin=finite[finite > 0].min(), vmax=finite.max()))
        extent = (-2 * np.sqrt(2), 2 * np.sqrt(2), -np.sqrt(2), np.sqrt(2))
        im = ax.imshow(img, extent=extent, cmap=cmap, interpolation="nearest", **kwargs)
        ax.add_patch(Ellipse((0, 0), 4 * np.sqrt(2), 2 * np.sqrt(2), fill=False, lw=0.8, color="0.3"))
        ax.set_axis_off()
        ax.set_aspect("equal")
        prefix = f"{self.name}: " if self.name else ""
        ax.set_title(
            title if title is not None else f"{prefix}{name} = {self.aggregates[name]}, order {self.order}"
        )
        ax.figure.colorbar(im, ax=ax, orientation="horizontal", shrink=0.6, pad=0.05, label=name)
        return ax

    # -- display -------------------------------------------------------------------------

    def __repr__(self) -> str:
        aggs = ", ".join(f"{k}={v}" for k, v in self.aggregates.items())
        return (
            f"SkyMap(order={self.order}, nside={self.nside}, {self.nonempty_pixels:,} of {self.npix:,} pixels "
            f"non-empty, {self.rows:,} rows; {aggs})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self.aggregates.items()
        )
        thumb = ""
        try:
            import matplotlib

            matplotlib.use(matplotlib.get_backend())  # keep the user's backend
            from matplotlib.figure import Figure

            fig = Figure(figsize=(4, 2.3))
            self.plot(ax=fig.add_subplot(), width=240, title="")
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=60, bbox_inches="tight")
            thumb = f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'
        except Exception:  # a thumbnail is a nicety; the table says everything
            thumb = ""
        return (
            f"<div><b>SkyMap</b> {html.escape(self.name)} &mdash; HEALPix order {self.order} (nside {self.nside}, "
            f"NESTED): {self.nonempty_pixels:,} of {self.npix:,} pixels non-empty, {self.rows:,} rows"
            f"<table>{rows}</table>{thumb}</div>"
        )
