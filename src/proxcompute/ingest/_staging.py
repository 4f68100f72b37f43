"""The resumable staging directory of an ingest.

::

    <out>.tmp-ingest/
      manifest.json                   arguments + input files (path, size, mtime): what resume must
                                      match, and the <id> of the run directory
      run-<id>/                       <id> is new for every ingest that is not a resume
        work/scan/<unit>.json         per-task completion markers (written after the task's outputs)
        work/scan/<unit>.hist.npz     sparse row histogram of the unit (order-10 pixels, counts),
                                      deleted once merged into plan.json / histogram.npz
        work/convert/f<i>.arrow       CSV/FITS/VOTable inputs converted to Arrow IPC by the scan
        work/plan.json                the partition plan (marks the scan + plan stages done)
        work/split/<chunk>.g<g>.arrow one zstd IPC file per input chunk and group of bins: per input
                                      batch, one record batch per bin it touches
        work/split/<chunk>.json       marker: which batches hold which bin, the chunk's files
        work/reduce/<partition>.json  marker: rows written to the partition's final file
        work/group/<group>.json       marker: the group's partitions are written, its files deleted
        work/<stage>.done             stage markers for the driver-side stages
        collection/                   the HATS collection being built; renamed to <out> at the end

Every marker is written atomically (temporary file, then rename) after the outputs it
vouches for, so a marker never claims work that did not finish.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from proxcompute.errors import IngestError
from proxcompute.storage.atomic import atomic_write_json, temp_path  # the one atomic-write home

__all__ = ["Staging", "atomic_write_json", "is_out_of_space", "read_json", "task_marker", "temp_path"]

MANIFEST_VERSION = 2
"""2: split files per group of bins, zstd-compressed (a version-1 staging cannot be resumed)."""


def read_json(path: Path) -> Any | None:
    """Parsed JSON at ``path``, or None when it is missing or unreadable (treated as not done)."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 if it does not exist)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:  # removed meanwhile
                pass
    return total


def is_out_of_space(exc: BaseException) -> bool:
    """True for the error of a write to a full disk (or an exhausted quota)."""
    return isinstance(exc, OSError) and (
        getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc)
    )


class Staging:
    """Paths and markers inside ``<out>.tmp-ingest``.

    The work and the collection live under ``run-<id>/``, a fresh random ``id`` per started
    (not resumed) ingest and recorded in the manifest: a task of an abandoned run that is
    still finishing on a user's cluster cannot write into a later run's directories.
    """

    SUFFIX = ".tmp-ingest"

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = out.with_name(out.name + self.SUFFIX)
        self.manifest_path = self.root / "manifest.json"
        self.run_dir = self.root / "run-unset"

    @property
    def work(self) -> Path:
        return self.run_dir / "work"

    @property
    def collection(self) -> Path:
        return self.run_dir / "collection"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, manifest: dict[str, Any], resume: bool) -> bool:
        """Prepare the directory; return True when an earlier run is being resumed.

        Without ``resume`` any earlier staging directory is removed. With ``resume`` an
        existing one must have been made with the same manifest.
        """
        manifest = {"version": MANIFEST_VERSION, **manifest}
        if resume and self.root.exists():
            old = read_json(self.manifest_path)
            if old is None or "run" not in old:
                raise IngestError(
                    f"cannot resume: {self.root} has no readable manifest.json; "
                    "run again without resume to start over"
                )
            keys = (set(old) | set(manifest)) - {"run"}
            diff = sorted(k for k in keys if old.get(k) != manifest.get(k))
            if diff:
                what = ", ".join(
                    "input files (paths, sizes or modification times)" if k == "inputs" else k for k in diff
                )
                raise IngestError(
                    f"cannot resume the ingest in {self.root}: it was started with different {what}; "
                    "run again without resume to start over"
                )
            self.run_dir = self.root / f"run-{old['run']}"
            self.work.mkdir(parents=True, exist_ok=True)
            self.collection.mkdir(parents=True, exist_ok=True)
            return True
        if self.root.exists():
            shutil.rmtree(self.root)
        run = uuid.uuid4().hex[:12]
        self.run_dir = self.root / f"run-{run}"
        self.work.mkdir(parents=True)
        self.collection.mkdir()
        atomic_write_json(self.manifest_path, {**manifest, "run": run})
        return False

    def out_of_space(self, stage: str, needed_bytes: int | None) -> IngestError:
        """The error for a full disk during ``stage``: where, how much is free and needed, what to do."""
        free = shutil.disk_usage(self.root).free
        need = ""
        if needed_bytes:
            more = max(needed_bytes - directory_bytes(self.collection), 0)
            need = (
                f"; it needs about {more:,} bytes ({more / 1e9:.1f} GB) more: it writes about "
                f"{needed_bytes / 1e9:.1f} GB in all"
            )
        return IngestError(
            f"out of disk space in {self.root} during the {stage} stage ({free / 1e9:.2f} GB free{need}: "
            "the catalog, and its staging while the partitions are written). Nothing was published; "
            "free some space and run the same ingest again with resume=True: finished tasks are kept"
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- markers ------------------------------------------------------------------------

    def stage_done(self, stage: str) -> Any | None:
        return read_json(self.work / f"{stage}.done")

    def mark_stage(self, stage: str, data: Any = True) -> None:
        atomic_write_json(self.work / f"{stage}.done", data)


def task_marker(work: Path, stage: str, task_id: str) -> Path:
    """Path of the completion marker of one task."""
    return work / stage / f"{task_id}.json"
