"""Profiles: lookup, overrides, memory/walltime parsing, limits."""

import os
from pathlib import Path

import pytest

from proxcompute.cluster import ClusterError, ClusterSpec, list_profiles, load_profile, parse_memory, validate
from proxcompute.errors import ProxError

SHIPPED = {"local", "slurm", "pbs", "sge", "gateway", "kubernetes"}


def _write(path: Path, name: str, body: str) -> Path:
    indented = "\n".join("      " + line for line in body.strip().splitlines())
    path.write_text(f"proxcompute:\n  cluster:\n    {name}:\n{indented}\n")
    return path


def test_shipped_profiles_load():
    profiles = list_profiles()
    assert SHIPPED <= set(profiles)
    for name, spec in profiles.items():
        assert isinstance(spec, ClusterSpec)
        assert spec.name == name
        assert spec.source.endswith(".yaml")
    assert profiles["local"].backend == "local"
    assert profiles["slurm"].backend == "slurm" and profiles["slurm"].queue == "short"
    assert profiles["kubernetes"].backend == "gateway" and profiles["kubernetes"].gateway["address"]


def test_spec_is_frozen():
    spec = load_profile("slurm")
    with pytest.raises(AttributeError):
        spec.workers = 5
    with pytest.raises(TypeError):
        spec.limits["max_workers"] = 1


def test_default_is_local():
    assert load_profile().name == "local"


def test_overrides():
    spec = load_profile(
        "slurm", workers=3, memory="2GB", walltime="00:45:00", partition="long", account="astro"
    )
    assert (spec.workers, spec.memory, spec.walltime, spec.queue, spec.account) == (
        3,
        2 * 10**9,
        2700,
        "long",
        "astro",
    )
    assert spec.memory_str == "2GB"
    assert load_profile("slurm", adaptive={"minimum": 0, "maximum": 4}).adaptive == (0, 4)
    assert load_profile("slurm", workers=None).workers == 2  # None leaves the profile's value
    with pytest.raises(ClusterError, match="unknown cluster settings"):
        load_profile("slurm", wrokers=3)


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ClusterError) as exc:
        load_profile("slrum")
    msg = str(exc.value)
    assert "did you mean 'slurm'" in msg
    for name in SHIPPED:
        assert name in msg
    assert isinstance(exc.value, ProxError)


def test_env_file_overrides_shipped_profile(tmp_path, monkeypatch):
    f = _write(
        tmp_path / "mine.yaml", "slurm", "backend: slurm\nmemory: 2GiB\nwalltime: '00:10:00'\nqueue: debug\n"
    )
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(f))
    spec = load_profile("slurm")
    assert spec.queue == "debug" and spec.memory == 2 * 2**30 and spec.source == str(f)
    assert list_profiles()["slurm"].source == str(f)


def test_env_dirs_later_ones_win(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _write(a / "x.yaml", "mine", "backend: local\nworkers: 1\n")
    _write(b / "y.yml", "mine", "backend: local\nworkers: 2\n")
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", os.pathsep.join([str(a), str(b)]))
    assert load_profile("mine").workers == 2
    assert "local" in list_profiles()  # shipped ones are still there


def test_user_config_dir(tmp_path, monkeypatch):
    d = Path(os.environ["HOME"]) / ".config" / "proxcompute" / "clusters"
    d.mkdir(parents=True)
    _write(d / "laptop.yaml", "laptop", "backend: local\nworkers: 1\ncores: 2\n")
    assert load_profile("laptop").cores == 2
    # PROXCOMPUTE_CLUSTERS overrides the user config dir
    _write(tmp_path / "o.yaml", "laptop", "backend: local\nworkers: 1\ncores: 3\n")
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(tmp_path / "o.yaml"))
    assert load_profile("laptop").cores == 3


def test_missing_env_path_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(tmp_path / "nope.yaml"))
    with pytest.raises(ClusterError, match="does not exist"):
        list_profiles()


@pytest.mark.parametrize(
    "body, match",
    [
        ("backend: yarn\n", "backend must be one of"),
        ("backend: local\nworkerz: 2\n", "unknown keys"),
        ("backend: slurm\nmemory: 4G\nwalltime: '01:00:00'\n", "ambiguous"),
        ("backend: slurm\nmemory: 1GiB\nwalltime: 1h\n", "walltime"),
        ("backend: local\nlimits: {max_ram: 1GiB}\n", "unknown limits"),
    ],
)
def test_malformed_profiles(tmp_path, monkeypatch, body, match):
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(_write(tmp_path / "bad.yaml", "bad", body)))
    with pytest.raises(ClusterError, match=match):
        load_profile("bad")


def test_file_without_profiles(tmp_path, monkeypatch):
    (tmp_path / "x.yaml").write_text("something: else\n")
    monkeypatch.setenv("PROXCOMPUTE_CLUSTERS", str(tmp_path / "x.yaml"))
    with pytest.raises(ClusterError, match="proxcompute: cluster"):
        list_profiles()


# ---------------------------------------------------------------- memory and walltime


@pytest.mark.parametrize(
    "text, expected",
    [
        ("4GiB", 4 * 2**30),
        ("4GB", 4 * 10**9),
        ("4 gib", 4 * 2**30),
        ("1.5GiB", 3 * 2**29),
        ("512MiB", 512 * 2**20),
        ("500MB", 500 * 10**6),
        ("1024B", 1024),
        (2048, 2048),
    ],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize(
    "text", ["4G", "4", "GiB", "4 GiBs", "-4GiB", "four GiB", "4GiB4", "", None, True, "0GB"]
)
def test_parse_memory_rejects_malformed(text):
    with pytest.raises(ClusterError):
        parse_memory(text)


def test_memory_is_normalised_with_explicit_unit():
    assert load_profile("slurm", memory="4096MiB").memory_str == "4GiB"
    assert load_profile("slurm", memory="4GB").memory_str == "4GB"
    assert load_profile("slurm", memory="4GB").to_dict()["memory"] == "4GB"


def test_walltime_forms():
    assert load_profile("slurm", walltime="00:59").walltime == 59 * 60
    assert load_profile("slurm", partition="long", walltime="1-00:00:00").walltime_str == "24:00:00"
    with pytest.raises(ClusterError, match="below 60"):
        load_profile("slurm", walltime="00:61:00")


# ---------------------------------------------------------------- limits


def test_memory_above_partition_limit():
    with pytest.raises(ClusterError) as exc:
        load_profile("slurm", memory="9GiB")  # short allows 8GiB
    assert "max_memory=8GiB" in str(exc.value) and "partition 'short'" in str(exc.value)
    # 8GB < 8GiB fits; the long partition allows more
    assert load_profile("slurm", memory="8GB").memory == 8 * 10**9
    assert load_profile("slurm", memory="9GiB", partition="long").memory == 9 * 2**30


def test_walltime_cores_workers_limits():
    with pytest.raises(ClusterError, match="max_walltime=01:00:00"):
        load_profile("slurm", walltime="02:00:00")
    with pytest.raises(ClusterError, match="max_cores=4"):
        load_profile("sge", cores=5)
    with pytest.raises(ClusterError, match="max_workers=16"):
        load_profile("pbs", workers=17)
    with pytest.raises(ClusterError, match="max_workers=16"):
        load_profile("pbs", adaptive=(0, 20))


def test_unknown_partition():
    with pytest.raises(ClusterError, match="unknown partition/queue 'gpu'; known: long, short"):
        load_profile("slurm", partition="gpu")


def test_validate_on_a_hand_made_spec():
    spec = ClusterSpec(name="x", backend="slurm", memory=None, walltime=60)
    with pytest.raises(ClusterError, match="needs memory"):
        validate(spec)
    ok = ClusterSpec(name="x", backend="local")
    assert validate(ok) is ok
