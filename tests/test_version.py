"""One version, pyproject.toml's: `/`, /openapi.json, /docs, `--version` and the source
openapi.yaml all report it; the licence is Apache-2.0 wherever it is declared."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from tests.processes import clean_env

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]


def test_pyproject_declares_a_version_apache_2_and_python_3_11():
    assert VERSION.count(".") == 2 and VERSION != "1.0.0"  # not the seed's made-up number
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert PROJECT["requires-python"] == ">=3.11"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_openapi_yaml_carries_the_same_version_and_the_licence():
    info = yaml.safe_load((ROOT / "openapi.yaml").read_text())["info"]
    assert info["version"] == VERSION
    assert info["license"] == {"name": "Apache 2.0", "identifier": "Apache-2.0"}
    # Redocly's info-license rule is on again (the recommended set, no exception for it).
    assert "info-license" not in (ROOT / "redocly.yaml").read_text()


def test_the_changelog_has_an_entry_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in changelog
    assert f"## [{VERSION}] - " in changelog


async def test_index_openapi_and_docs_report_the_pyproject_version(api):
    index = await api.get("/")
    assert index.body["version"] == VERSION
    document = await api.get("/openapi.json")
    assert document.body["info"]["version"] == VERSION
    assert document.body["info"]["license"]["identifier"] == "Apache-2.0"
    page = await api.client.fetch("/docs", raise_error=False)
    assert page.code == 200
    assert f"<title>vhod {VERSION} API</title>" in page.body.decode()


def test_version_flag_of_server_py_prints_it(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "--version"],
        cwd=tmp_path,  # not the repository: pyproject.toml is found beside the modules
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"vhod {VERSION}"
