"""STILTS taplint (the IVOA TAP validator, Debian's `stilts`) against `proxcompute serve`: 0 errors.

The ``stilts`` fixture (conftest.py) installs it with scripts/stilts/setup_stilts.sh. taplint
exits 0 even when it reports errors, so the test reads the totals of its JSON report.
"""

import json
import subprocess

import pytest
from tap_server import running_server

from proxcompute.catalog import from_dataframe
from proxcompute.synthetic import generate_catalog

SKIPPED_STAGES = ["OBS", "LOC"]  # ObsCore / ObsLocTAP: we do not serve those data models


@pytest.mark.parametrize("access", [False, True], ids=["open", "access-rules"])
def test_taplint_reports_no_errors(stilts, tmp_path, access):
    """With access rules, taplint (anonymous) sees the public catalogs only; /tables and TAP_SCHEMA must still agree."""
    root = tmp_path / "root"
    from_dataframe(generate_catalog(20_000, seed=5), name="gaia", max_rows=4_000).to_catalog(root / "survey" / "gaia")
    extra: tuple[str, ...] = ()
    if access:
        from_dataframe(generate_catalog(5_000, seed=6), name="secret", max_rows=2_000).to_catalog(root / "secret")
        rules = tmp_path / "access.yaml"
        rules.write_text('users:\n  alice: {token: "alice-secret-token"}\ncatalogs:\n  secret: {users: [alice]}\n')
        extra = ("--access", str(rules))
    with running_server(root, *extra) as url:
        stages = " ".join(f"-{s}" for s in SKIPPED_STAGES)
        proc = subprocess.run(
            [stilts, "taplint", f"tapurl={url}", f"stages={stages}", "report=EWF", "format=json"],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    problems = [
        f"{r.get('level', '')} {r.get('code', '')} {r.get('text', '')}"
        for section in report.get("sections", [])
        for r in section.get("reports", [])
    ]
    totals = report["totals"]
    assert totals["ERROR"] == 0 and totals["FAILURE"] == 0, "\n".join(problems)
