"""deploy/build-executable's choices, without building: what goes into the bundle, and how a
plugin is named for it (the build itself: tests/test_executable.py, slow)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def build_script() -> ModuleType:
    path = ROOT / "deploy" / "build-executable"
    loader = importlib.machinery.SourceFileLoader("build_executable", str(path))
    spec = importlib.util.spec_from_loader("build_executable", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_data_files_go_where_core_bundle_looks_for_them(tmp_path: Path) -> None:
    arguments = build_script().pyinstaller_arguments(tmp_path / "dist", tmp_path / "work", [])
    data = [arguments[i + 1] for i, a in enumerate(arguments) if a == "--add-data"]
    assert sorted(data) == sorted(
        [
            f"{ROOT / 'openapi.yaml'}:.",
            f"{ROOT / 'config.yaml'}:.",
            f"{ROOT / 'pyproject.toml'}:.",
            f"{ROOT / 'core' / 'templates'}:core/templates",
        ]
    )
    assert arguments[arguments.index("--collect-data") + 1] == "swagger_ui_bundle"
    assert "--onefile" in arguments and arguments[-1] == str(ROOT / "server.py")


def test_a_plugin_is_bundled_with_its_metadata_and_entry_point_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dist_info = tmp_path / "vhod_example-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: vhod-example\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[vhod.providers]\nexample = vhod_example.provider:ExampleProvider\n"
        "[vhod.senders]\ngateway = vhod_example.sms:make_sender\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    arguments = build_script().plugin_arguments("vhod-example")
    assert arguments == [
        *("--copy-metadata", "vhod-example"),
        *("--hidden-import", "vhod_example.provider"),
        *("--hidden-import", "vhod_example.sms"),
    ]


def test_a_missing_plugin_or_one_that_is_not_a_plugin_stops_the_build() -> None:
    script = build_script()
    with pytest.raises(SystemExit, match="no such distribution is installed"):
        script.plugin_arguments("vhod-no-such-plugin")
    with pytest.raises(SystemExit, match=r"declares no vhod\.providers or vhod\.senders"):
        script.plugin_arguments("PyYAML")
    assert "build_executable" not in sys.modules  # loaded apart, never imported by name
