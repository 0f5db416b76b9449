"""The example plugin (examples/provider-plugin): `pip install`ed, it adds its routes (and
their description in /openapi.json) to a vhod that was not changed. vhod itself installs
with pip, and the plugin's own tests (its whole flow against the shipped testing kit's fake
server, and the refusal of another application's token) pass outside the repository.

pip installs it with `--target` into a temporary folder that the server's and a fresh
interpreter's PYTHONPATH name, so the shared virtualenv is never changed by the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "examples" / "provider-plugin"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# ---- packaging ----------------------------------------------------------------------------


def test_pyproject_declares_the_entry_point_and_its_vhod_dependency() -> None:
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["vhod.providers"] == {
        "kukushka": "vhod_kukushka:KukushkaProvider"
    }
    assert project["dependencies"] == ["vhod"]


def copy_tree(source: Path, target: Path) -> Path:
    """The working tree without what is not source (pip builds in the folder it is given)."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "__pycache__", "data", "build", "*.egg-info", ".*cache"
    )
    shutil.copytree(source, target, ignore=ignore)
    return target


@pytest.fixture(scope="module")
def installed_vhod(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vhod installed by pip from (a copy of) its repository: modules, data, the command."""
    out = tmp_path_factory.mktemp("vhod-installed")
    source = copy_tree(ROOT, tmp_path_factory.mktemp("vhod-source") / "vhod")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(out)]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_pip_install_gives_the_vhod_command_and_importable_modules(
    installed_vhod: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed_vhod)}
    env = {k: v for k, v in env.items() if not k.startswith("VHOD_")}
    code = (
        "import providers.base, server, handlers.docs as d; "
        "print(providers.base.__file__); print(len(d.load_spec()['paths']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    module, paths = done.stdout.split()
    assert module.startswith(str(installed_vhod)) and int(paths) > 20
    checked = subprocess.run(
        [str(installed_vhod / "bin" / "vhod"), "--check-config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "configuration OK" in checked.stderr
    # Installed, the version comes from the metadata pip wrote (no pyproject.toml there).
    assert not (installed_vhod / "pyproject.toml").exists()
    reported = subprocess.run(
        [str(installed_vhod / "bin" / "vhod"), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reported.stdout.strip() == f"vhod {PROJECT_VERSION}", reported.stderr
    metadata = (installed_vhod / f"vhod-{PROJECT_VERSION}.dist-info" / "METADATA").read_text()
    assert "License-Expression: Apache-2.0" in metadata


def test_the_plugins_own_tests_pass_outside_the_repository_with_the_shipped_kit(
    installed_vhod: Path, plugin_metadata: Path, tmp_path: Path
) -> None:
    # Its tests run from a copy of its folder, against the plugin and vhod as pip installed
    # them: nothing of the repository is on the path.
    plugin = copy_tree(PLUGIN_DIR, tmp_path / "vhod-kukushka")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_metadata), str(installed_vhod)])}
    tests = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-p", "no:randomly", "--rootdir", str(plugin), str(plugin / "tests")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout


@pytest.fixture(scope="module")
def plugin_metadata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed by pip, as an operator would, into a folder of its own."""
    out = tmp_path_factory.mktemp("kukushka-installed")
    # pip builds in the source folder (build/, *.egg-info): build from a copy instead.
    source = tmp_path_factory.mktemp("kukushka-source") / "provider-plugin"
    shutil.copytree(PLUGIN_DIR, source)
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(out)]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "vhod_kukushka-0.1.0.dist-info" / "entry_points.txt").exists()
    return out


def discover_in_fresh_interpreter(*path: Path) -> dict[str, str]:
    code = (
        "import json; from providers.registry import discover_providers; "
        "print(json.dumps({n: c.prefix for n, c in discover_providers().items()}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (*path, ROOT))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_discover_providers_lists_the_plugin(plugin_metadata: Path) -> None:
    found = discover_in_fresh_interpreter(plugin_metadata)
    builtins = {"vk": "vk", "mailru": "mail.ru", "yandex": "yandex", "ok": "ok"}
    builtins.update({"telegram": "telegram", "tid": "tid", "sber": "sber"})
    assert found == {**builtins, "kukushka": "kukushka"}


def test_installed_plugin_adds_its_routes_to_an_unchanged_server(
    plugin_metadata: Path, tmp_path: Path
) -> None:
    from tests.processes import Server, request

    config = tmp_path / "plugin.yaml"
    config.write_text(
        "passwords:\n  algorithm: bcrypt\n  bcrypt_rounds: 4\n"
        f"server:\n  data_dir: {tmp_path / 'data'}\n"
        f"storage:\n  url: sqlite:///{tmp_path / 'data' / 'vhod.db'}\n"
        "providers:\n  kukushka:\n    client_id: our-app\n    client_secret: s3cret\n"
    )
    server = Server(
        tmp_path,
        "--config",
        str(config),
        PYTHONPATH=os.pathsep.join([str(plugin_metadata), str(ROOT)]),
    )
    try:
        line = server.wait_started()
        assert "kukushka" in line
        status, url = request(server.url("/kukushka/link"))
        assert status == 200
        assert url.startswith("https://id.kukushka.example/oauth/authorize?")
        assert "client_id=our-app" in url
        # /docs shows /openapi.json, which lists the plugin's routes, generated.
        status, document = request(server.url("/openapi.json"))
        assert status == 200 and isinstance(document, dict)
        for route in ("link", "callback", "get/token", "registration", "login"):
            assert f"/kukushka/{route}" in document["paths"]
        assert "Kukushka ID" in {tag["name"] for tag in document["tags"]}
    finally:
        assert server.stop() == 0


def test_without_its_metadata_the_module_alone_is_not_a_plugin() -> None:
    assert "kukushka" not in discover_in_fresh_interpreter(PLUGIN_DIR)
