"""vhod's version: the one in pyproject.toml, wherever vhod runs from.

Run from its folder, the pyproject.toml beside the modules is read (a pip-installed copy
elsewhere on the path may be another release); installed by pip, the package metadata pip
wrote from that same file; in a PyInstaller bundle, a pyproject.toml placed in the bundle.
"""

from __future__ import annotations

import functools
import sys
import tomllib
from importlib import metadata
from pathlib import Path

UNKNOWN = "0+unknown"  # no pyproject.toml and no metadata: say so rather than guess


def _pyproject_version(folder: Path) -> str | None:
    try:
        with (folder / "pyproject.toml").open("rb") as file:
            project = tomllib.load(file).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    version = project.get("version") if project.get("name") == "vhod" else None
    return version if isinstance(version, str) else None


@functools.cache
def version() -> str:
    here = Path(__file__).resolve().parents[2]
    folders = [here]
    bundle = getattr(sys, "_MEIPASS", None)  # PyInstaller's unpacked files
    if bundle is not None:
        folders.append(Path(bundle))
    for folder in folders:
        found = _pyproject_version(folder)
        if found is not None:
            return found
    try:
        return metadata.version("vhod")
    except metadata.PackageNotFoundError:
        return UNKNOWN
