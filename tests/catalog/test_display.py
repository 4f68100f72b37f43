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
