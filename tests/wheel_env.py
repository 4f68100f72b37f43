"""The project installed as a user installs it: a wheel in clean virtual environments.

``build_wheel_envs`` builds the wheel once (``pip wheel``) and makes two environments from it:

- ``plain``: ``pip install proxcompute-*.whl`` and nothing else (what ``pip install proxcompute``
  gives); the demo and every CLI command must work here.
- ``user``: the same plus the documented user extras (``USER_EXTRAS``, see docs/install.md). It is
  a second venv that sees ``plain``'s packages through a ``.pth`` file, so the extras are installed
  once without a second copy of the base dependencies, and ``plain`` stays without them.

pip downloads from PyPI (or the machine's configured index). The environments do not see the
developer's checkout: ``PYTHONPATH`` is removed from their environment (:func:`WheelEnv.env`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER_EXTRAS = ("notebooks", "gateway", "remote")  # what docs/install.md documents for users (postgres needs a server)


@dataclass(frozen=True)
class WheelEnv:
    """One virtual environment with the wheel installed."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def env(self, **extra: str) -> dict[str, str]:
        """os.environ without the checkout on the path, with this venv's bin first on PATH."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        env.setdefault("PROXCOMPUTE_PROGRESS", "0")
        env.update(extra)
        return env

    def run(self, args: list[str], cwd: Path, timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, cwd=cwd, env=self.env(**extra_env), capture_output=True, text=True, timeout=timeout
        )


def _check(args: list[str], cwd: Path, timeout: float = 1500) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _site_packages(venv: Path) -> Path:
    rel = Path(sysconfig.get_path("purelib", vars={"base": "", "platbase": ""}).lstrip(os.sep))
    return venv / rel


def build_wheel_envs(workdir: Path) -> tuple[WheelEnv, WheelEnv, float]:
    """(plain, user, seconds taken): the wheel built from this checkout, installed twice."""
    started = time.perf_counter()
    dist = workdir / "dist"
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)], ROOT)
    (wheel,) = dist.glob("proxcompute-*.whl")
    plain, user = workdir / "plain", workdir / "user"
    for venv in (plain, user):
        _check([sys.executable, "-m", "venv", "--clear", str(venv)], workdir)
    pip = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _check([str(plain / "bin" / "python"), *pip, str(wheel)], workdir)
    _check([str(plain / "bin" / "python"), "-m", "proxcompute.kernels.warm"], workdir)
    (_site_packages(user) / "proxcompute-plain.pth").write_text(f"{_site_packages(plain)}\n")
    _check([str(user / "bin" / "python"), *pip, "--no-deps", "--force-reinstall", str(wheel)], workdir)
    _check([str(user / "bin" / "python"), *pip, f"{wheel}[{','.join(USER_EXTRAS)}]"], workdir)
    return WheelEnv(plain), WheelEnv(user), time.perf_counter() - started
