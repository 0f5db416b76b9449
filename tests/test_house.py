"""Rules of the codebase that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.routing
import tornado.web

ROOT = Path(__file__).resolve().parent.parent
TORNADO_CLASSES = (
    tornado.web.RequestHandler,
    tornado.web.Application,
    tornado.web.StaticFileHandler,
    tornado.httputil.HTTPServerRequest,
    tornado.httputil.HTTPHeaders,
    tornado.httpserver.HTTPServer,
    tornado.routing.Router,
    tornado.iostream.IOStream,
)


def service_files() -> list[Path]:
    files = [ROOT / "server.py"]
    for folder in ("core", "handlers", "providers", "storage"):
        files.extend(sorted((ROOT / folder).rglob("*.py")))
    return files


def tornado_private_names() -> set[str]:
    """Single-underscore names that Tornado's classes define: its internals."""
    names: set[str] = set()
    for cls in TORNADO_CLASSES:
        for klass in inspect.getmro(cls):
            if klass.__module__.startswith("tornado"):
                names.update(n for n in vars(klass) if n.startswith("_") and not n.startswith("__"))
    # Instance attributes set in __init__ (`self._finished = False`…) are not in vars(cls).
    for cls in TORNADO_CLASSES:
        source = inspect.getsource(cls)
        for node in ast.walk(
            ast.parse(inspect.cleandoc(source) if source[0].isspace() else source)
        ):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                names.add(node.attr)
    return names


def own_names(tree: ast.AST) -> set[str]:
    """Names a module gives its own objects (`self._closed = …`): not Tornado's."""
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute):
                names.add(target.attr)
    return names


def test_no_private_tornado_attribute_is_used():
    tornado_private = tornado_private_names()
    assert {"_finished", "_reason", "_stream_request_body", "_handle_request_exception"} <= (
        tornado_private
    )
    found = []
    for path in service_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        private = tornado_private - own_names(tree) | {"_finished", "_reason"}
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and node.attr in private:
                name = node.attr
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in private:
                name = node.name  # overriding an internal method
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in private
            ):
                name = node.value  # getattr(obj, "_finished") and the like
            if name:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not found, found


def test_no_service_module_is_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in [*service_files(), *sorted((ROOT / "bench").rglob("*.py"))]
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, long


def test_a_sqlite_deployment_never_imports_the_mongodb_driver():
    # The driver is a fifth of the start-up's imports; only a mongodb:// URL loads it.
    probe = (
        "import sys, asyncio, server, storage\n"
        "asyncio.run(storage.open_store('sqlite:///:memory:'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pymongo', 'bson')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# Which top-level packages each may import: arrows point down only (server.py at the top).
ALLOWED_IMPORTS = {
    "handlers": {"core", "providers", "storage", "handlers"},
    "providers": {"core", "providers", "storage"},
    "core": {"core", "storage", "providers"},  # core.config.settings_docs documents providers
    "storage": {"storage"},
}
OWN_PACKAGES = {"server", "handlers", "providers", "core", "storage"}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OWN_PACKAGES


def test_imports_point_down_and_never_up_to_server_py():
    wrong = []
    for package, allowed in ALLOWED_IMPORTS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if extra := imported_packages(path) - allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {sorted(extra)}")
    assert not wrong, wrong
