import pytest


@pytest.fixture(autouse=True)
def _isolated_profiles(tmp_path_factory, monkeypatch):
    """No user profiles leak in: an empty HOME and no PROXCOMPUTE_CLUSTERS."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("PROXCOMPUTE_CLUSTERS", raising=False)
