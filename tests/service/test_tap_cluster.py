"""`proxcompute serve --cluster local`: queries run on the profile's Dask workers."""

import httpx
import pytest
from tap_server import running_server

from proxcompute.catalog import from_dataframe
from proxcompute.synthetic import generate_catalog


@pytest.mark.timeout(300)
def test_serve_on_a_local_cluster_profile(tmp_path):
    root = tmp_path / "root"
    df = generate_catalog(30_000, seed=3)
    from_dataframe(df, name="g", max_rows=1_000).to_catalog(root / "g")
    with running_server(root, "--cluster", "local", timeout=120) as url:
        r = httpx.post(url + "/sync", data={"LANG": "ADQL", "QUERY": "SELECT COUNT(*) AS n FROM g WHERE mag < 20",
                                            "FORMAT": "csv"}, timeout=120)  # fmt: skip
        assert r.status_code == 200, r.text
        assert int(r.text.splitlines()[1]) == int((df["mag"] < 20).sum())
        import pyvo

        job = pyvo.dal.TAPService(url).submit_job("SELECT flag, COUNT(*) AS n FROM g GROUP BY flag")
        job.run()
        job.wait()
        assert sorted(job.fetch_result().to_table()["n"]) == sorted(df.groupby("flag").size())
        note = httpx.get(url + "/availability").text
        assert "cluster profile 'local'" in note and "proxcompute-sql" in note, note
