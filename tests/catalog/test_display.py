"""Notebook display: repr, HTML, explain and the coverage map."""

from __future__ import annotations

import matplotlib.pyplot as plt


def test_repr(stored_cat):
    text = repr(stored_cat)
    assert "'sky'" in text
    assert "rows:       6,905" in text
    assert "order 1:" in text
    assert "_healpix_29, id, ra, dec, mag, color, flag, name" in text


def test_repr_of_lazy(stored_cat):
    text = repr(stored_cat.cone_search(45.0, 30.0, 60.0).where("mag < 20")[["id"]])
    assert "lazy" in text
    assert "Cone(ra=45, dec=30, radius_arcsec=60) -> where mag < 20 -> select [id]" in text
    assert "columns:    id>" in text


def test_html(stored_cat):
    html = stored_cat._repr_html_()
    assert html.startswith("<table")
    assert "<b>sky</b>" in html
    assert "<code>mag</code>&nbsp;<small>double</small>" in html
    assert "order 0: 1" in html


def test_explain_lists_only_touched_partitions(stored_cat):
    q = stored_cat.cone_search(45.0, 30.0, 60.0).where("mag < 20")[["id", "mag"]]
    text = q.explain()
    assert repr(text) == str(text)
    touched = {str(p) for p in q.partitions}
    listed = {ln.split()[0] for ln in text.splitlines() if ln.startswith("  Norder=")}
    assert listed == touched
    n = len(stored_cat.partitions)
    assert f"reads {len(touched)} of {n} partitions" in text
    for part in (
        "Logical plan:",
        "Optimized plan:",
        "predicate: mag < 20",
        "columns: id, mag",
        "region: Cone(",
    ):
        assert part in text


def test_plot_coverage(stored_cat):
    ax = stored_cat.plot_coverage()
    assert ax.name == "mollweide"
    assert len(ax.collections[0].get_paths()) >= len(stored_cat.partitions)
    plt.close("all")
    fig = plt.figure()
    ax2 = fig.add_subplot(projection="mollweide")
    assert stored_cat.cone_search(0.0, 90.0, 3600.0).plot_coverage(ax=ax2) is ax2
    plt.close("all")


def test_notebook_views_coverage_points_hist_and_conversions():
    """The notebook experience: coverage thumbnail in the HTML repr, density map, histogram, astropy/Arrow."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from proxcompute.catalog import from_dataframe
    from proxcompute.synthetic import generate_catalog

    df = generate_catalog(20_000, seed=3)
    cat = from_dataframe(df, name="demo", max_rows=2_000)
    html = cat._repr_html_()
    assert "data:image/png;base64," in html and "coverage" in html
    ax = cat.plot_points(bins=60)  # whole sky: Mollweide
    assert ax.name == "mollweide"
    field = cat.cone_search(45.0, 30.0, 2 * 3600)
    ax = field.plot_points(bins=30)
    assert ax.get_xlabel() == "RA (deg)" and ax.get_xlim()[0] > ax.get_xlim()[1]  # RA grows to the left
    ax = cat.plot_hist("mag", bins=25)
    assert sum(p.get_height() for p in ax.patches) == len(df)
    t = field.to_astropy()
    assert str(t["dec"].unit) == "deg" and len(t) == field.count()
    arrow = field[["id"]].to_arrow()
    assert arrow.column_names == ["id"] and np.array_equal(np.sort(arrow.column("id").to_numpy()), np.sort(t["id"]))
    import pytest

    with pytest.raises(ValueError, match="max_rows"):
        cat.plot_points(max_rows=10)
