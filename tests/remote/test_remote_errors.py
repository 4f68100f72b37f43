"""Bad remote input: one clear error naming the URL; the CLI exits non-zero without a traceback;
and the CLI commands that take a catalog path take a URL."""

from __future__ import annotations

import json

import pytest
from remote_servers import free_port

import proxcompute as pc
from proxcompute.catalog import open_catalog
from proxcompute.cli import main


def test_unreachable_url(nginx):
    url = f"http://127.0.0.1:{free_port()}/survey"
    with pytest.raises(pc.RemoteAccessError) as info:
        open_catalog(url)
    assert url in str(info.value)
    assert info.value.url.startswith(url)


def test_forbidden_url_is_access_denied(nginx):
    url = nginx.url + "forbidden/survey"
    with pytest.raises(pc.RemoteAccessError, match=r"access denied \(HTTP 403\)") as info:
        open_catalog(url)
    assert url in str(info.value)


@pytest.mark.parametrize("name", ["missing/survey", "notacat"])
def test_missing_url_or_not_a_catalog(nginx, name):
    url = nginx.url + name
    with pytest.raises(pc.StorageError, match="is not a catalog") as info:
        open_catalog(url)
    assert str(info.value).startswith(url)
    assert not isinstance(info.value, pc.RemoteAccessError)


def test_a_partition_file_that_vanished_names_the_file(nginx, served_root, tmp_path):
    import shutil

    copy = served_root / "vanishing"
    shutil.copytree(served_root / "targets", copy)
    try:
        cat = open_catalog(nginx.url + "vanishing")
        victim = cat.plan.source.meta.partition_path(cat.partitions[0])
        (copy / str(victim).removeprefix(nginx.url + "vanishing/")).unlink()
        with pytest.raises(pc.CorruptPartitionError, match="file is missing") as info:
            cat.compute()
        assert str(victim) in str(info.value)
    finally:
        shutil.rmtree(copy)


def test_s3_missing_bucket_and_wrong_endpoint(s3):
    with pytest.raises(pc.StorageError, match=r"s3://no-such-bucket/survey.*NoSuchBucket"):
        open_catalog("s3://no-such-bucket/survey", storage_options=s3.storage_options)
    with pytest.raises(pc.StorageError, match="is not a catalog"):
        open_catalog("s3://hats/no-such-survey", storage_options=s3.storage_options)
    options = {**s3.storage_options, "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{free_port()}",
                                                        "region_name": "us-east-1"},
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}  # fmt: skip
    with pytest.raises(pc.RemoteAccessError, match="s3://hats/survey"):
        open_catalog("s3://hats/survey", storage_options=options)


def test_storage_options_on_a_local_path_is_an_error(served_root):
    with pytest.raises(pc.StorageError, match="apply to URLs"):
        open_catalog(served_root / "survey", storage_options={"anon": True})


def test_s3_credentials_from_the_environment(s3, monkeypatch, served_root):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)  # botocore reads it: no storage_options
    cat = open_catalog("s3://hats/targets")
    assert len(cat) == len(open_catalog(served_root / "targets"))


def test_cli_info_cone_and_sql_take_a_url(nginx, served_root, capsys, tmp_path):
    url = nginx.url + "survey"
    assert main(["info", url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == url + "/survey" and summary["rows"] == len(open_catalog(served_root / "survey"))
    out = tmp_path / "cone.parquet"
    args = ["cone", url, "--ra", "150", "--dec", "2", "--radius-arcsec", "60", "--out", str(out)]
    assert main(args) == 0
    import pandas as pd

    local = open_catalog(served_root / "survey").cone_search(150, 2, 60).compute()
    assert sorted(pd.read_parquet(out).id) == sorted(local.id)
    capsys.readouterr()
    assert main(["sql", "SELECT COUNT(*) AS n FROM s", "--catalog", f"s={url}", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].strip() == str(len(open_catalog(served_root / "survey")))


@pytest.mark.parametrize("name", ["forbidden/survey", "notacat"])
def test_cli_errors_name_the_url_without_a_traceback(nginx, capsys, name):
    url = nginx.url + name
    assert main(["info", url]) != 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert url in text and "Traceback" not in text


def test_cli_crossmatch_of_a_target_file_with_a_url(nginx, served_root, targets_df, tmp_path):
    import pandas as pd

    targets = tmp_path / "targets.csv"
    targets_df.to_csv(targets, index=False)
    out = tmp_path / "matches.parquet"
    args = ["crossmatch", str(targets), nginx.url + "survey", "--radius-arcsec", "5", "--out", str(out)]
    assert main(args) == 0
    got = pd.read_parquet(out)
    want = pc.crossmatch(targets_df, open_catalog(served_root / "survey"), radius_arcsec=5).compute()
    assert len(got) == len(want) > 0
    assert sorted(got._dist_arcsec) == sorted(want._dist_arcsec)
