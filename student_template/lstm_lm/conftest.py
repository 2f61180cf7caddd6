"""Loads the autograder's public checks from _public/ (nothing here needs editing)."""

import os
import sys
from pathlib import Path

# Figures are drawn off-screen, as on the autograder: no windows, works without a display.
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent / "_public" / "vendor"))
pytest_plugins = ["autograder.students.pytest_public"]
