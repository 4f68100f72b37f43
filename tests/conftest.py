"""Test-wide settings: no progress bars, headless matplotlib."""

import os

os.environ.setdefault("PROXCOMPUTE_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
