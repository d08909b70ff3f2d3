"""Where the suite's committed files are: tests/fixtures/ (see its README for their origin)."""

from __future__ import annotations

from pathlib import Path

# In the repository, so a plain clone needs nothing beside it.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
