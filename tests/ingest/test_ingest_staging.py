"""The staging disk of an ingest: bins and groups, released group by group, compressed."""

from __future__ import annotations

import errno
import itertools
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_helpers import check_catalog, read_output

from proxcompute.errors import IngestError
from proxcompute.ingest import _reduce, _tasks, ingest
from proxcompute.ingest._reduce import plan_bins
from proxcompute.storage.layout import partition_path


def test_bins_are_consecutive_bounded_and_cover_every_partition():
    rows = [5, 3, 9, 1, 1, 1, 12, 2, 2, 2, 2, 4]
    bins, groups = plan_bins(rows, bin_rows=8, groups=3)
    assert bins[0][0] == 0 and bins[-1][1] == len(rows)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bins))
    for a, b in bins:  # at most bin_rows, unless a single partition is bigger
        assert sum(rows[a:b]) <= 8 or b - a == 1
    assert [sum(rows[a:b]) for a, b in bins] == [8, 9, 3, 12, 8, 4]
    assert groups[0][0] == 0 and groups[-1][1] == len(bins)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(groups))
    bin_rows = [sum(rows[a:b]) for a, b in bins]
    for a, b in groups:  # about a third of the rows each: at most that, unless a single bin
        assert sum(bin_rows[a:b]) <= sum(rows) / 3 or b - a == 1
    assert 3 <= len(groups) <= 4


def test_plan_bins_of_nothing_and_of_one_partition():
    assert plan_bins([]) == ([], [])
    assert plan_bins([7], bin_rows=2, groups=64) == ([[0, 1]], [[0, 1]])


def test_each_group_releases_its_split_files(sky, write_parts, tmp_path, client, monkeypatch):
    """With small bins and several groups, every group's files exist when its task starts and
    are gone when it ends, while other groups' files remain: the staging shrinks as the
    catalog grows. The catalog is the same as with the defaults."""
    monkeypatch.setattr(_reduce, "BIN_ROWS", 3_000)
    monkeypatch.setattr(_reduce, "FILE_GROUPS", 4)
    files = write_parts(sky, n=3)
    log = tmp_path / "log"  # tasks run on copies of this function: they report through files
    log.mkdir()
    original = _reduce.reduce_group_task

    def watching(group, **kwargs):
        before = [Path(f).exists() for f in group.files]
        staged = len(list(Path(group.files[0]).parent.glob("*.arrow")))
        result = original(group, **kwargs)
        after = [Path(f).exists() for f in group.files]
        (log / group.id).write_text(json.dumps([before, after, len(group.bins), staged]))
        return result

    monkeypatch.setattr(_reduce, "reduce_group_task", watching)
    res = ingest(files, tmp_path / "cat", max_rows=2_000, margin_arcsec=0, client=client, show_progress=False)
    seen = [json.loads(p.read_text()) for p in sorted(log.iterdir())]
    assert 4 <= len(seen) <= 8  # about FILE_GROUPS (bins are not cut)
    for before, after, _, _ in seen:
        assert len(before) == 3 and all(before)  # one file per input chunk, there at the start
        assert not any(after)  # and gone at the end
    assert sum(s[2] for s in seen) > len(seen)  # several bins in some group
    assert seen[-1][3] < seen[0][3]  # fewer files staged for the last group than for the first
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=2_000)
    assert res.rows == len(sky)
    assert not (tmp_path / "cat.tmp-ingest").exists()


def test_staged_files_are_compressed(sky, write_parts, tmp_path, client, monkeypatch):
    files = write_parts(sky, n=2)
    log = tmp_path / "log"
    log.mkdir()
    original = _reduce.reduce_group_task

    def measuring(group, **kwargs):
        for f in group.files:
            with pa.ipc.open_file(pa.memory_map(f)) as r:
                raw = sum(r.get_batch(i).nbytes for i in range(r.num_record_batches))
            (log / Path(f).name).write_text(json.dumps([Path(f).stat().st_size, raw]))
        return original(group, **kwargs)

    monkeypatch.setattr(_reduce, "reduce_group_task", measuring)
    ingest(files, tmp_path / "cat", max_rows=2_000, margin_arcsec=0, client=client, show_progress=False)
    sizes = [json.loads(p.read_text()) for p in log.iterdir()]
    on_disk, raw = map(sum, zip(*sizes, strict=True))
    assert on_disk < 0.9 * raw


def test_a_resumed_reduce_skips_released_groups(sky, write_parts, tmp_path, client, monkeypatch):
    """A failure in a later group: the groups already written (files deleted) are not redone,
    and the resumed ingest gives the same catalog."""
    monkeypatch.setattr(_reduce, "BIN_ROWS", 3_000)
    monkeypatch.setattr(_reduce, "FILE_GROUPS", 4)
    files = write_parts(sky, n=3)
    original_task = _tasks.reduce_task
    calls = tmp_path / "calls"
    calls.mkdir()

    def failing(item, **kwargs):
        (calls / item.id).touch()
        if len(list(calls.iterdir())) >= 8:
            raise RuntimeError("interrupted")
        return original_task(item, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(_tasks, "reduce_task", failing)
        m.setattr(_reduce, "FILE_GROUPS", 1_000)  # one bin per group: earlier groups finish first
        with pytest.raises(RuntimeError, match="interrupted"):
            ingest(
                files, tmp_path / "cat", max_rows=2_000, margin_arcsec=0, client=client, show_progress=False
            )
    time.sleep(0.5)  # a task running on the other thread when the failure came finishes
    (run,) = (tmp_path / "cat.tmp-ingest").glob("run-*")
    done_before = {p.stem for p in (run / "work" / "reduce").glob("*.json")}
    released = {p.stem for p in (run / "work" / "group").glob("*.json")}
    assert done_before and released
    # bins and groups are in plan.json: the resume uses them whatever the module constants
    redone_log = tmp_path / "redone"
    redone_log.mkdir()

    def recording(item, **kwargs):
        (redone_log / item.id).touch()
        return original_task(item, **kwargs)

    monkeypatch.setattr(_tasks, "reduce_task", recording)
    ingest(
        files,
        tmp_path / "cat",
        max_rows=2_000,
        margin_arcsec=0,
        client=client,
        show_progress=False,
        resume=True,
    )
    check_catalog(tmp_path / "cat", sky, name="cat", max_rows=2_000)
    redone = {p.name for p in redone_log.iterdir()}
    assert redone and not (redone & done_before)


def test_out_of_disk_is_a_clear_error_and_resumable(sky, write_parts, tmp_path, client, monkeypatch):
    """A full disk while partitions are written: one IngestError naming the staging directory,
    the free and the needed space, and what to do; nothing published; resume finishes it."""
    files = write_parts(sky, n=2)
    original = _tasks.write_partition_file
    marker = tmp_path / "disk-full"
    marker.touch()

    def filling(root, pixel, table, *a, **kw):
        if marker.exists() and pixel.pixel % 2:  # some partitions are written, then the disk fills
            path = partition_path(root, pixel.order, pixel.pixel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_name(f"{path.name}.0badf00d.part").write_bytes(
                b"PAR1 cut short"
            )  # as the writer leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(root, pixel, table, *a, **kw)

    monkeypatch.setattr(_tasks, "write_partition_file", filling)
    out = tmp_path / "cat"
    with pytest.raises(IngestError) as info:
        ingest(files, out, max_rows=2_000, margin_arcsec=0, client=client, show_progress=False)
    msg = str(info.value)
    assert "out of disk space in" in msg and str(tmp_path / "cat.tmp-ingest") in msg
    assert "GB free" in msg and "GB in all" in msg and "resume=True" in msg
    assert not out.exists()
    assert not list((tmp_path / "cat.tmp-ingest").rglob("*.part"))  # no half-written file kept
    marker.unlink()  # space freed
    time.sleep(0.3)  # a task still running on the other thread finishes
    res = ingest(files, out, max_rows=2_000, margin_arcsec=0, client=client, show_progress=False, resume=True)
    check_catalog(out, sky, name="cat", max_rows=2_000)
    assert res.rows == len(sky)


def _margin_rows(out: Path, name: str) -> pa.Table:
    from proxcompute.storage.layout import read_partition_info

    cat = out / name
    parts = [pq.read_table(partition_path(cat, p.order, p.pixel)) for p in read_partition_info(cat)]
    return pa.concat_tables(parts).sort_by("id")


@pytest.mark.parametrize("stage", ["metadata", "margin"])
def test_out_of_disk_in_a_driver_stage_is_resumable(sky, write_parts, tmp_path, client, monkeypatch, stage):
    """A full disk after the partitions are written (the driver writing the catalog's metadata,
    or the margin's partitions): the same clear error (directory, bytes still needed), nothing
    published, and a resume gives exactly the catalog and margin of a clean ingest."""
    import proxcompute.ingest.margin as margin_module
    import proxcompute.storage.writer as writer

    files = write_parts(sky, n=2)
    clean = tmp_path / "clean"
    ingest(files, clean, name="cat", max_rows=2_000, margin_arcsec=30, client=client, show_progress=False)
    full = tmp_path / "disk-full"
    full.touch()

    def no_space(original):
        def fill(*args, **kwargs):
            if full.exists():
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(*args, **kwargs)

        return fill

    if stage == "metadata":  # after _metadata and the point map, when the properties are written
        monkeypatch.setattr(writer, "write_properties", no_space(writer.write_properties))
    else:  # the margin's partition files
        monkeypatch.setattr(margin_module, "write_partition_file", no_space(margin_module.write_partition_file))
    out = tmp_path / "cat"
    with pytest.raises(IngestError) as info:
        ingest(files, out, max_rows=2_000, margin_arcsec=30, client=client, show_progress=False)
    msg = str(info.value)
    assert f"out of disk space in {tmp_path / 'cat.tmp-ingest'} during the {stage} stage" in msg
    assert "bytes (" in msg and "GB) more" in msg and "resume=True" in msg
    assert not out.exists()
    assert not list((tmp_path / "cat.tmp-ingest").rglob("*.part"))
    full.unlink()  # space freed
    time.sleep(0.3)
    res = ingest(files, out, max_rows=2_000, margin_arcsec=30, client=client, show_progress=False, resume=True)
    assert res.rows == len(sky) and res.margin_rows > 0
    check_catalog(out, sky, name="cat", max_rows=2_000, margin="cat_30arcs")
    assert read_output(out, "cat").sort_by("id").equals(read_output(clean, "cat").sort_by("id"))
    assert _margin_rows(out, "cat_30arcs").equals(_margin_rows(clean, "cat_30arcs"))
    assert not (tmp_path / "cat.tmp-ingest").exists()
