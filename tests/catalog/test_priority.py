"""Short queries first: a big local computation's tasks wait (bounded) while a short one runs."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from proxcompute.execute import priority
from proxcompute.execute import run as execute_run


@pytest.fixture
def counted_tasks(monkeypatch):
    """Counts the partition tasks of count() as they start."""
    started = []
    original = execute_run.count_partition

    def counting(plan, pixel):
        started.append(pixel)
        return original(plan, pixel)

    monkeypatch.setattr(execute_run, "count_partition", counting)
    return started


def test_big_computation_waits_while_a_short_query_runs(mem_cat, sky_df, counted_tasks, monkeypatch):
    monkeypatch.setattr(priority, "MAX_YIELD_SECONDS", 60.0)
    big = mem_cat.where("mag < 20")
    assert len(big.partitions) > execute_run.IN_PROCESS_MAX_PARTITIONS
    result = []
    with priority.short_query():
        worker = threading.Thread(target=lambda: result.append(big.count()))
        worker.start()
        time.sleep(0.5)
        assert counted_tasks == [] and worker.is_alive()  # no task started during the short query
    worker.join(60)
    assert result == [int((sky_df["mag"] < 20).sum())]
    assert len(counted_tasks) == len(big.partitions)


def test_the_wait_is_bounded(mem_cat, sky_df, monkeypatch):
    monkeypatch.setattr(priority, "MAX_YIELD_SECONDS", 0.01)
    with priority.short_query():  # held throughout: the big computation still finishes
        assert mem_cat.where("mag < 20").count() == int((sky_df["mag"] < 20).sum())


def test_small_queries_are_short_and_big_tasks_never_are(mem_cat, monkeypatch):
    seen = []
    real = priority.short_query

    @contextlib.contextmanager
    def watching():
        with real():
            seen.append(priority.active_short_queries())
            yield

    monkeypatch.setattr(execute_run, "short_query", watching)
    cone = mem_cat.cone_search(45.0, 30.0, 600.0)
    assert len(cone.partitions) <= execute_run.IN_PROCESS_MAX_PARTITIONS
    cone.compute()
    cone.head(3)
    assert seen == [1, 1]  # compute (in-process partitions) and head

    def inner(item):
        with priority.short_query():
            return priority.active_short_queries()

    assert inner(None) == 1
    assert priority.yielding(inner)(None) == 0  # a big computation's task is never a short query
