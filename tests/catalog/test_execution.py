"""compute / count / head / to_dask, in-process and through Dask, and laziness."""

from __future__ import annotations

import numpy as np
import pytest

from proxcompute import execute
from proxcompute.execute import reader


@pytest.fixture
def opened(monkeypatch):
    """Count partition reads (every data read goes through reader.iter_partition)."""
    calls = []
    real = reader.iter_partition

    def spy(source, pixel, *args, **kwargs):
        calls.append(pixel)
        return real(source, pixel, *args, **kwargs)

    monkeypatch.setattr("proxcompute.execute.partition.iter_partition", spy)
    return calls


def test_compute_is_in_storage_order(cat, sky_df):
    df = cat.compute()
    assert len(df) == len(sky_df)
    assert list(df.index) == list(range(len(df)))
    idx = df["_healpix_29"].to_numpy()
    assert np.all(idx[1:] >= idx[:-1])
    assert list(df.columns) == ["_healpix_29", *sky_df.columns]


def test_len_and_count(cat, sky_df):
    assert len(cat) == len(sky_df) == cat.count()
    with pytest.raises(TypeError, match=r"\.count\(\)"):
        len(cat.where("mag < 20"))
    with pytest.raises(TypeError, match=r"\.count\(\)"):
        len(cat.cone_search(45.0, 30.0, 60.0))
    assert len(cat[["ra", "dec"]]) == len(sky_df)
    assert bool(cat.where("mag > 99"))  # truth never needs a row count
    with pytest.raises(TypeError, match="not iterable"):
        iter(cat)


def test_nothing_is_read_before_compute(stored_cat, opened):
    q = stored_cat.cone_search(45.0, 30.0, 3600.0).where("mag < 20")[["id", "mag"]]
    _ = (q.columns, q.schema, q.partitions, q.name, repr(q), q._repr_html_())
    assert opened == []
    q.compute()
    assert 0 < len(opened) == len(q.partitions)


def test_head_reads_only_what_it_needs(stored_cat, opened):
    df = stored_cat.head(3)
    assert len(df) == 3
    assert len(opened) == 1
    full = stored_cat.compute()
    assert df.equals(full.iloc[:3].reset_index(drop=True))


def test_head_of_filtered(cat, sky_df):
    df = cat.where("dec > 60").head(10)
    assert len(df) == 10
    assert (df["dec"] > 60).all()
    assert len(cat.head(0)) == 0


def test_big_plans_run_on_a_thread_pool(stored_cat, monkeypatch):
    """Many partitions and no client -> a local thread pool; equal to the in-process path."""
    import threading

    threads = set()
    real = execute.run.run_partition

    def spy(plan, pixel):
        threads.add(threading.current_thread().name)
        return real(plan, pixel)

    monkeypatch.setattr(execute.run, "run_partition", spy)
    q = stored_cat.where("mag < 19.5")
    assert len(q.partitions) > execute.IN_PROCESS_MAX_PARTITIONS
    df = q.compute()
    assert threads and all(t.startswith("proxcompute") for t in threads)
    monkeypatch.setattr(execute.run, "IN_PROCESS_MAX_PARTITIONS", 10_000)
    assert df.equals(q.compute())
    assert q.count() == len(df)


def test_small_plans_build_no_graph(stored_cat, monkeypatch):
    import dask

    monkeypatch.setattr(dask, "compute", lambda *a, **k: pytest.fail("Dask used for a small query"))
    q = stored_cat.cone_search(45.0, 30.0, 60.0)
    assert len(q.partitions) <= execute.IN_PROCESS_MAX_PARTITIONS
    q.compute()
    q.count()


def test_to_dask(stored_cat):
    q = stored_cat.cone_search(45.0, 30.0, 5400.0).where("mag < 20")[["id", "ra", "mag"]]
    ddf = q.to_dask()
    assert ddf.npartitions == len(q.partitions)
    assert list(ddf.columns) == ["id", "ra", "mag"]
    assert dict(ddf.dtypes.astype(str)) == {"id": "int64", "ra": "float64", "mag": "float64"}
    got = ddf.compute(scheduler="sync").reset_index(drop=True)
    assert got.equals(q.compute())


def test_to_dask_empty(stored_cat):
    ddf = stored_cat.cone_search(45.0, 30.0, 60.0).cone_search(225.0, -30.0, 60.0).to_dask()
    assert len(ddf.compute()) == 0


def test_distributed_client(stored_cat, mem_cat):
    """An explicit client, then the current one; stored and in-memory catalogs."""
    distributed = pytest.importorskip("distributed")
    kwargs = {"processes": False, "n_workers": 1, "threads_per_worker": 2, "dashboard_address": ":0"}
    with distributed.Client(**kwargs) as client:
        q = stored_cat.where("mag < 20")
        assert q.compute(client=client).equals(q.compute())
        assert q.count(client=client) == q.count()
        assert execute.current_client() is client
        m = mem_cat.where("mag < 20")
        assert m.compute().equals(q.compute())
        assert len(m.to_dask().compute()) == m.count()


def test_memory_catalog_ships_per_partition(mem_cat):
    """For other processes, an in-memory partition travels alone, not the whole table."""
    import pickle

    from proxcompute.execute.partition import PartitionJob, run_partition
    from proxcompute.plan import optimize

    q = optimize(mem_cat.where("mag < 20").plan)
    job, items = PartitionJob(run_partition, q).for_other_processes(mem_cat.partitions)
    whole = len(pickle.dumps(mem_cat.plan.source.table))
    assert len(pickle.dumps(job)) < whole / 10
    assert max(len(pickle.dumps(item)) for item in items) < whole / 5
    shipped = [pickle.loads(pickle.dumps(job))(pickle.loads(pickle.dumps(i))) for i in items]
    local = [PartitionJob(run_partition, q)(p) for p in mem_cat.partitions]
    assert all(a.equals(b) for a, b in zip(shipped, local, strict=True))


def test_task_observer_reports_progress_and_cancels():
    """A TAP job watches its partition tasks (jobInfo progress) and can stop them (ABORT)."""
    import pytest

    from proxcompute import execute
    from proxcompute.catalog import from_dataframe
    from proxcompute.synthetic import generate_catalog

    cat = from_dataframe(generate_catalog(40_000, seed=1), max_rows=1_000)
    seen = []
    with execute.observe(execute.TaskObserver(progress=lambda d, t, rows: seen.append((d, t, rows)))):
        cat.where("mag < 20").count()
    n = len(cat.partitions)
    assert seen[-1] == (n, n, 40_000) and n > 16  # every partition done, and the rows they hold
    assert [r for _, _, r in seen] == sorted(r for _, _, r in seen)

    obs = execute.TaskObserver()
    obs.progress = lambda d, t, rows: obs.cancel.set() if d >= 3 else None
    with pytest.raises(execute.Cancelled), execute.observe(obs):
        cat.where("mag < 20").count()
    assert 3 <= obs.done < n
