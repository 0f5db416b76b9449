"""MkDocs hook (mkdocs.yml): the benchmark reports become pages of the documentation site.

bench/run.py and bench/soak.py write bench/latest.md (with latest.png) and bench/soak.md
beside themselves; the site publishes those files as bench/… pages, read where they are,
so the site cannot show an older copy than the repository holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

BENCH = Path(__file__).resolve().parent / "bench"
PUBLISHED = (
    "latest.md",
    "latest.png",
    "soak.md",
    "password_login.md",
    "cache_miss_profile.md",
    "http_profile.md",
)


def on_files(files: Files, config: Any) -> Files:
    for name in PUBLISHED:
        files.append(File.generated(config, f"bench/{name}", abs_src_path=str(BENCH / name)))
    return files
