"""The UWS quote and the queue come from the cost model; rates come from `proxcompute calibrate`."""

import re
import subprocess
import sys
from datetime import datetime

import httpx
import pytest
from tap_server import running_server

from proxcompute.catalog import from_dataframe
from proxcompute.cli import main
from proxcompute.execute import DEFAULT_RATES, estimate_cost, load_rates, save_rates
from proxcompute.service import ServiceConfig, create_app
from proxcompute.service.job_exec import pick_queue
from proxcompute.service.params import TapParams
from proxcompute.service.query import compile_spec, parse_query_spec
from proxcompute.synthetic import generate_catalog

CONE = "SELECT id FROM survey.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 45, 30, 0.01))"
GROUP = "SELECT flag, COUNT(*) AS n, AVG(mag) AS m FROM survey.gaia GROUP BY flag"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("costroot")
    from_dataframe(generate_catalog(40_000, seed=29), name="gaia", max_rows=2_000).to_catalog(root / "survey" / "gaia")
    return root


def _params(query, **extra):
    values = {"LANG": "ADQL", "QUERY": query, **extra}
    return TapParams(values=values, multi={k: [v] for k, v in values.items()})


def _state(root, tmp_path, **config):
    config.setdefault("cost_rates", DEFAULT_RATES)
    return create_app(ServiceConfig(root, data_dir=tmp_path / "data", **config)).state.tap


def test_queue_follows_the_estimate_and_the_configured_threshold(root, tmp_path):
    state = _state(root, tmp_path)
    _, cone = pick_queue(_params(CONE), state)
    _, group = pick_queue(_params(GROUP), state)
    assert 0 < cone.seconds < group.seconds
    # the estimate is the job's: observed partition tasks, the result written
    spec = parse_query_spec(_params(GROUP), default_maxrec=100_000, hard_maxrec=10**8,
                            upload_limit=10**8, max_query_chars=10**5)  # fmt: skip
    result = compile_spec(spec, state.registry_for(None)[0])
    want = estimate_cost(result, rates=DEFAULT_RATES, observed=True, write_result=True)
    assert group.seconds == pytest.approx(want.seconds) and group.strategy == "aggregate"
    between = (cone.seconds + group.seconds) / 2
    state = _state(root, tmp_path, long_queue_seconds=between)
    assert pick_queue(_params(CONE), state)[0] == "short"
    assert pick_queue(_params(GROUP), state)[0] == "long"
    assert pick_queue(_params(GROUP, QUEUE="short"), state)[0] == "short"  # asked for: kept
    assert pick_queue(_params(GROUP), _state(root, tmp_path, long_queue_seconds=group.seconds * 2))[0] == "short"
    # slower rates, same threshold: the same query moves to the long queue
    slow = DEFAULT_RATES.with_rates(query_s=between * 2)
    assert pick_queue(_params(CONE), _state(root, tmp_path, long_queue_seconds=between, cost_rates=slow))[0] == "long"


def test_unplannable_jobs_get_no_estimate(root, tmp_path):
    state = _state(root, tmp_path)
    assert pick_queue(_params("SELECT nope FROM nothing"), state) == ("short", None)
    assert pick_queue(_params("SELEC 1"), state) == ("short", None)


def test_bad_threshold_is_refused(root, tmp_path):
    with pytest.raises(ValueError, match="long_queue_seconds"):
        ServiceConfig(root, long_queue_seconds=-1.0)


def _quote_seconds(url, query):
    r = httpx.post(url + "/async", data={"LANG": "ADQL", "QUERY": query})
    doc = httpx.get(r.headers["location"]).text

    def at(name):
        text = re.search(rf"<uws:{name}>([^<]+)</uws:{name}>", doc).group(1)
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")

    queue = httpx.get(r.headers["location"] + "/parameters").text
    return (at("quote") - at("creationTime")).total_seconds(), doc, queue


def test_calibrate_writes_rates_that_serve_reads(root, tmp_path, capsys):
    rates_file = tmp_path / "rates.json"
    assert main(["calibrate", "--rows", "100000", "--out", str(rates_file)]) == 0
    assert "rates written to" in capsys.readouterr().err
    rates = load_rates(rates_file)
    assert rates.measured_on.startswith("proxcompute calibrate") and rates.query_s > 0
    assert rates.crossmatch_left_row_s > 0 and rates.scan_cell_s > 0
    # the server quotes with the file it is given: an hour per query shows in the quote
    hour = tmp_path / "hour.json"
    save_rates(rates.with_rates(query_s=3600.0), hour)
    with running_server(root, "--cost-rates", str(hour)) as url:
        seconds, doc, _ = _quote_seconds(url, CONE)
        assert 3600 <= seconds < 3660
        job = re.search(r"<uws:jobId>([^<]+)</uws:jobId>", doc).group(1)
        listing = httpx.get(url + "/async").text
        assert job in listing
    with running_server(root, "--cost-rates", str(rates_file)) as url:
        seconds, _, _ = _quote_seconds(url, CONE)
        assert seconds < 60


@pytest.mark.parametrize("text", ["{nope", '{"format": "proxcompute-cost-rates/1", "query_s": -1}'])
def test_bad_rates_file_is_a_one_line_error_naming_it(root, tmp_path, capsys, text):
    bad = tmp_path / "bad-rates.json"
    bad.write_text(text)
    assert main(["serve", "--catalog-root", str(root), "--cost-rates", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err.replace("\n", "") and "Traceback" not in err


def test_bad_default_rates_file_stops_serve_without_traceback(root, tmp_path):
    bad = tmp_path / "cost-rates.json"
    bad.write_text("[1, 2]")
    env = {"PROXCOMPUTE_COST_RATES": str(bad), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "proxcompute.cli", "serve", "--catalog-root", str(root)],
                          capture_output=True, text=True, env={**_env(), **env}, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert str(bad) in proc.stderr.replace("\n", "") and "Traceback" not in proc.stderr


def _env():
    import os

    return dict(os.environ)
