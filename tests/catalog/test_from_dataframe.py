"""from_dataframe validates coordinates and partitions adaptively."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from proxcompute.catalog import from_dataframe
from proxcompute.errors import ColumnNotFoundError, InvalidCoordinatesError
from proxcompute.sky import INDEX_COLUMN, radec_to_healpix29


def test_partitions_hold_at_most_max_rows(mem_cat, sky_df):
    src = mem_cat.plan.source
    sizes = [src.partition_rows(p) for p in mem_cat.partitions]
    assert sum(sizes) == len(sky_df)
    assert max(sizes) <= 300
    assert len({p.order for p in mem_cat.partitions}) > 1


def test_in_memory_has_no_path_or_margin(mem_cat):
    assert mem_cat.path is None
    assert mem_cat.margin is None


def test_index_column_and_sorting(mem_cat):
    df = mem_cat.compute()
    assert df.columns[0] == INDEX_COLUMN
    assert (
        df[INDEX_COLUMN].to_numpy() == radec_to_healpix29(df["ra"].to_numpy(), df["dec"].to_numpy())
    ).all()


def test_ra_is_wrapped():
    df = pd.DataFrame({"ra": [-10.0, 370.0, 720.0], "dec": [0.0, 1.0, 2.0], "id": [1, 2, 3]})
    out = from_dataframe(df).compute().sort_values("id")
    assert out["ra"].tolist() == [350.0, 10.0, 0.0]


def test_missing_column_lists_available():
    df = pd.DataFrame({"RA": [1.0], "DEC": [2.0]})
    with pytest.raises(ColumnNotFoundError, match="Available columns: RA, DEC"):
        from_dataframe(df)
    cat = from_dataframe(df, ra_column="RA", dec_column="DEC")
    assert cat.ra_column == "RA" and cat.dec_column == "DEC"
    assert cat.cone_search(1.0, 2.0, 1.0).count() == 1


@pytest.mark.parametrize(
    ("ra", "dec", "match"),
    [
        ([1.0, np.nan, 3.0], [0.0, 0.0, 0.0], "1 of 3 rows"),
        ([1.0, 2.0, np.inf], [0.0, 0.0, 0.0], "1 of 3 rows"),
        ([1.0, 2.0, 3.0], [0.0, 91.0, -95.0], "2 of 3 rows"),
    ],
)
def test_invalid_coordinates(ra, dec, match):
    with pytest.raises(InvalidCoordinatesError, match=match) as info:
        from_dataframe(pd.DataFrame({"ra": ra, "dec": dec}))
    assert "row " in str(info.value)


def test_non_numeric_coordinates():
    with pytest.raises(InvalidCoordinatesError, match="must be numeric"):
        from_dataframe(pd.DataFrame({"ra": ["a", "b"], "dec": [0.0, 1.0]}))


def test_astropy_table():
    from astropy.table import Table

    t = Table({"ra": [10.0, 20.0], "dec": [-5.0, 5.0], "mag": [18.0, 19.0]})
    cat = from_dataframe(t, name="t")
    assert len(cat) == 2
    assert cat.where("mag > 18.5").compute()["ra"].tolist() == [20.0]


def test_empty_dataframe():
    cat = from_dataframe(pd.DataFrame({"ra": pd.Series([], dtype=float), "dec": pd.Series([], dtype=float)}))
    assert len(cat) == 0
    assert cat.partitions == []
    assert len(cat.compute()) == 0
    assert cat.count() == 0


def test_column_selection(mem_cat):
    one = mem_cat["mag"]
    assert one.columns == ["mag"]
    assert list(one.compute().columns) == ["mag"]
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'mag'"):
        mem_cat[["ra", "magg"]]
    with pytest.raises(TypeError):
        mem_cat[3]
