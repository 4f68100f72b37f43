import pytest

from proxcompute.kernels import spherical


@pytest.fixture(params=["numba", "numpy"], autouse=True)
def kernel_path(request, monkeypatch):
    """Run every kernel test through both the numba kernels and their numpy twins."""
    monkeypatch.setattr(spherical, "_use_numpy", lambda n: request.param == "numpy")
    return request.param
