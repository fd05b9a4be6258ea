"""The documentation site builds with MkDocs --strict (a broken link or an unlisted page fails)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    settings = (site / "settings.html").read_text(encoding="utf-8")
    assert "HUASHU_CALLING_WINDOW" in settings  # the README's table, included
    assert "别再给我打电话了" in (site / "index.html").read_text(encoding="utf-8")  # the Quick tour
