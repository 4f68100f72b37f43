#!/usr/bin/env python3
"""Fetch axe-core, the accessibility engine, from the npm registry for the portal's audit.

The portal's browser tests (tests/service/test_portal_browser.py) run axe in Chromium on every
page. This installs the pinned release's ``axe.min.js`` into a cache directory, checking the
tarball against the registry's sha512 integrity; a second run only checks the file is there.
Nothing of axe is kept in the repository.

    python3 scripts/browser/setup_axe.py        # prints the path of axe.min.js on its last line

Environment: ``PROXCOMPUTE_AXE_DIR`` (default ``~/.cache/proxcompute/axe-core-<version>``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

VERSION = "4.14.1"
INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"


def axe_path() -> Path:
    """Where ``axe.min.js`` of the pinned release lives once installed."""
    default = Path.home() / ".cache" / "proxcompute" / f"axe-core-{VERSION}"
    return Path(os.environ.get("PROXCOMPUTE_AXE_DIR", default)) / "axe.min.js"


def install() -> Path:
    target = axe_path()
    if target.is_file() and target.stat().st_size > 0:
        return target
    with urllib.request.urlopen(URL, timeout=120) as response:
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"setup_axe.py: {URL} does not match its registry integrity ({digest})")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        script = tar.extractfile("package/axe.min.js")
        if script is None:
            raise SystemExit(f"setup_axe.py: {URL} has no package/axe.min.js")
        body = script.read()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:  # never half a file
        tmp.write(body)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, target)
    return target


if __name__ == "__main__":
    try:
        path = install()
    except OSError as exc:
        print(f"setup_axe.py: cannot fetch axe-core {VERSION}: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"axe-core {VERSION} ready")
    print(path)
