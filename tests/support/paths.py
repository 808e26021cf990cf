"""Where the repository and its sample documents are, whatever the test's own folder."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
