"""Backends declare their URL schemes (storage/backend.py); nothing outside storage/ matches
them, and a backend installed as a package is found through its entry point."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import storage
from storage import Backend, backend_for, database_file, is_shared, open_store, url_problem

ROOT = Path(__file__).resolve().parent.parent


def test_the_built_in_backends_answer_for_their_schemes(tmp_path):
    assert backend_for("sqlite:///data/vhod.db").name == "SQLite"
    assert backend_for("mongodb://db/vhod").name == "MongoDB"
    assert backend_for("MONGODB+SRV://cluster/vhod").name == "MongoDB"
    assert not is_shared("sqlite:///data/vhod.db") and is_shared("mongodb://db/vhod")
    assert database_file("sqlite:///data/vhod.db") == Path("data/vhod.db")
    assert database_file("sqlite:///:memory:") is None and database_file("mongodb://db") is None
    problem = url_problem("postgres://user:pw@db/vhod")
    assert problem is not None and "'postgres'" in problem and "pw" not in problem
    assert "sqlite://" in problem and "mongodb://" in problem


async def test_a_backend_installed_as_a_package_is_found_and_opened(monkeypatch):
    opened: list[str] = []

    def open_memory(url: str) -> storage.Store:
        opened.append(url)
        return storage.SQLiteStore(":memory:")

    plugin = Backend(
        name="Memory",
        schemes=("memo",),
        shared=False,
        problem=lambda url, deep: None,
        open=open_memory,
    )
    monkeypatch.setattr(__name__ + ".PLUGIN", plugin, raising=False)
    entry = EntryPoint(name="memo", value=f"{__name__}:PLUGIN", group="vhod.storage")
    monkeypatch.setattr(storage, "entry_points", lambda group: [entry])
    storage.backends.cache_clear()
    try:
        assert backend_for("memo://x") is plugin and url_problem("memo://x") is None
        store = await open_store("memo://x")
        await store.setup()
        await store.ping()
        assert opened == ["memo://x"]
        await store.close()
    finally:
        storage.backends.cache_clear()


def test_an_entry_point_that_is_not_a_backend_is_refused(monkeypatch):
    entry = EntryPoint(name="bad", value="os:sep", group="vhod.storage")
    monkeypatch.setattr(storage, "entry_points", lambda group: [entry])
    storage.backends.cache_clear()
    try:
        with pytest.raises(TypeError, match="bad"):
            backend_for("sqlite:///x.db")
    finally:
        storage.backends.cache_clear()


def test_nothing_outside_storage_compares_url_schemes():
    found = []
    for folder in ("core", "handlers", "providers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("startswith", "removeprefix")
                    and any(
                        isinstance(arg, ast.Constant)
                        and str(arg.value).startswith(("sqlite", "mongodb"))
                        for arg in node.args
                    )
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found
