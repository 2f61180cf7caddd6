"""Loads the autograder's public checks from _public/ (nothing here needs editing)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "_public" / "vendor"))
pytest_plugins = ["autograder.pytest_public"]
