"""Where vhod's own data files are: beside the modules when it runs from its folder or is
installed, inside the unpacked bundle when it runs as the single executable (PyInstaller)."""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def frozen() -> bool:
    """Whether this process is the single executable built by deploy/build-executable."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def bundle_root() -> Path:
    """The folder that holds openapi.yaml, config.yaml and core/templates: the executable's
    unpacked bundle (sys._MEIPASS) when frozen, else the source tree."""
    if frozen():
        return Path(sys._MEIPASS)  # type: ignore[attr-defined]  # set by PyInstaller only
    return SOURCE_ROOT


def bundled(*parts: str) -> Path:
    """A data file of vhod's, by its path relative to the repository root."""
    return bundle_root().joinpath(*parts)
