"""The README as a front door, the documentation site under docs/, and what they promise.

The README's first sign-in runs pasted into bash against a fresh server; the site builds with
`mkdocs build --strict`, so a broken link or anchor, or a page missing from the navigation,
fails here; the Russian README and getting-started page keep the English code blocks.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.processes import Server, missing_tool

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_RU = ROOT / "README.ru.md"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
GETTING_STARTED_RU = ROOT / "docs" / "getting-started.ru.md"
README_MAX_BYTES = 12_500
WALK_URL = "http://127.0.0.1:8888"
STEP = "--- vhod walk step ---"


def fenced_blocks(path: Path) -> list[str]:
    """The fenced code blocks of a Markdown file, with their info string, in order."""
    blocks, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if current is None and line.lstrip().startswith("```"):
            current = [line]
        elif current is not None:
            current.append(line)
            if line.strip() == "```":
                blocks.append("".join(current))
                current = None
    assert current is None, f"{path.name}: a code block is not closed"
    return blocks


def test_the_readme_is_a_front_door_of_at_most_12_5_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


@pytest.mark.parametrize("path", [README, README_RU], ids=lambda p: p.name)
def test_the_readme_links_only_to_files_in_the_repository(path: Path) -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    assert targets
    for target in targets:
        assert not re.match(r"[a-z]+:", target), f"{path.name} links outside the repo: {target}"
        assert (ROOT / target.split("#", 1)[0]).exists(), f"{path.name}: {target} is missing"


def test_the_quick_start_test_line_is_the_line_ci_runs() -> None:
    quick_start = fenced_blocks(README)[0].splitlines()
    assert quick_start[1].endswith("python server.py")
    ci_line = (ROOT / ".ci" / "run").read_text().rstrip("\n").splitlines()[-1]
    assert quick_start[2] == ci_line


def test_the_russian_pages_and_getting_started_have_the_readmes_code_blocks() -> None:
    english = fenced_blocks(README)
    assert len(english) == 2  # the quick start and the first sign-in
    assert fenced_blocks(README_RU) == english
    assert fenced_blocks(GETTING_STARTED) == english
    assert fenced_blocks(GETTING_STARTED_RU) == english


def walk_commands() -> list[str]:
    """The README's first sign-in, one shell command per item (continued lines joined)."""
    (block,) = [b for b in fenced_blocks(README) if f"B={WALK_URL}" in b]
    commands: list[str] = []
    pending = ""
    for line in block.splitlines()[1:-1]:
        if not pending and line.lstrip().startswith("#"):
            continue
        pending += line + "\n"
        if not line.endswith("\\"):
            commands.append(pending)
            pending = ""
    return commands


def claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_readmes_first_sign_in_works_pasted_into_bash(tmp_path: Path) -> None:
    commands = walk_commands()
    server = Server(tmp_path)  # in tmp_path: data/ is new, as on a first start
    try:
        server.wait_ready()
        base = server.url("").rstrip("/")
        script = "set -u -o pipefail\n" + "".join(
            f"{command.replace(WALK_URL, base)}printf '\\n{STEP}\\n'\n" for command in commands
        )
        script += 'printf \'%s\\n\' "$ACCESS" "$REFRESH"\n'
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    *outputs, captured = done.stdout.split(f"\n{STEP}\n")
    outputs = [output.strip() for output in outputs]

    def tokens(out: str) -> bool:
        return set(json.loads(out)) == {"access", "refresh"}

    def refreshed(out: str) -> bool:
        answer = json.loads(out)
        return set(answer) == {"access", "email"} and answer["email"] == "ann@example.com"

    def refused(out: str) -> bool:
        return json.loads(out)["error"] == "invalid_token"

    expected = [
        ("B=", lambda out: out == ""),
        ("/authorization/registration", tokens),
        ("TOKENS=$(", lambda out: out == ""),
        ("ACCESS=$(", lambda out: out == ""),
        ("REFRESH=$(", lambda out: out == ""),
        ("/validate/jwt/access", lambda out: out == "true"),
        ("/validate/jwt/refresh", refreshed),
        ("/authorization/logout", lambda out: out == "true"),
        ("/validate/jwt/refresh", refused),
    ]
    assert len(commands) == len(expected) == len(outputs), outputs
    for command, output, (marker, check) in zip(commands, outputs, expected, strict=True):
        assert marker in command, command
        assert check(output), f"{command}\n→ {output}"
    access, refresh = captured.split()
    assert claims(access)["mode"] == "access_token"
    assert claims(refresh)["mode"] == "refresh_token"
    assert claims(access)["user_name"] == "ann@example.com"


def mkdocs_or_missing() -> None:
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            missing_tool(f"{module} is missing: pip install -r requirements-test.txt")


def build_site(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # NO_MKDOCS_2_WARNING: the Material theme prints a notice about MkDocs 2.0 at every build.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_documentation_site_builds_strict(tmp_path: Path) -> None:
    mkdocs_or_missing()
    built = build_site(ROOT, tmp_path / "site")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    site = tmp_path / "site"
    assert (site / "configuration" / "index.html").is_file()
    assert (site / "getting-started.ru" / "index.html").is_file()
    # The benchmark reports, published from bench/ by mkdocs_hooks.py.
    assert (site / "bench" / "latest" / "index.html").is_file()
    assert (site / "bench" / "latest.png").is_file()


def test_a_page_missing_from_the_nav_or_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    mkdocs_or_missing()
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copytree(ROOT / "bench", project / "bench", ignore=shutil.ignore_patterns("results"))
    for name in ("mkdocs.yml", "mkdocs_hooks.py"):
        shutil.copy(ROOT / name, project / name)
    (project / "docs" / "orphan.md").write_text("# Not in the nav\n")
    with (project / "docs" / "routes.md").open("a") as page:
        page.write("\nSee [a page that is not there](no-such-page.md).\n")
    built = build_site(project, tmp_path / "site")
    assert built.returncode != 0
    assert "orphan.md" in built.stderr
    assert "no-such-page.md" in built.stderr


def test_the_core_modules_that_import_tornado_are_the_ones_development_md_names() -> None:
    importing: dict[str, set[str]] = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] == "tornado":
                    importing.setdefault(path.name, set()).add(name)
    assert importing == {
        "captcha.py": {"tornado.httpclient"},
        "senders.py": {"tornado.httpclient"},
        "sms_gateways.py": {"tornado.httpclient"},
    }
    layout = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    assert "senders.py (the http SMS sender), sms_gateways.py, captcha.py" in layout


def test_the_worker_count_the_docs_give_is_the_one_pytest_runs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    addopts = pyproject["tool"]["pytest"]["ini_options"]["addopts"]
    word = {2: "two", 3: "three", 4: "four"}[int(addopts[addopts.index("-n") + 1])]
    assert f"runs in {word} worker processes" in (ROOT / "requirements-test.txt").read_text()
    development = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    assert f"in {word} worker processes" in development
