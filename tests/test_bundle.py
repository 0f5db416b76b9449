"""core.infra.bundle: vhod's data files are found in the source tree, and inside the single
executable's unpacked bundle when frozen (PyInstaller sets sys.frozen and sys._MEIPASS)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core.infra import bundle

ROOT = Path(__file__).resolve().parents[1]


def test_from_the_source_tree_the_files_are_the_repositorys() -> None:
    assert not bundle.frozen()
    assert bundle.bundled("openapi.yaml") == ROOT / "openapi.yaml"
    assert bundle.bundled("core", "templates").is_dir()


def test_frozen_the_files_are_in_the_unpacked_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert bundle.frozen()
    assert bundle.bundled("core", "templates") == tmp_path / "core" / "templates"
    assert bundle.bundle_root() == tmp_path
