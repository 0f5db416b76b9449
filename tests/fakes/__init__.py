"""Fake external services for tests: strict OAuth providers on 127.0.0.1."""

import pytest

# tests/conftest.py loads tests.fakes.providers as a plugin; rewrite its asserts too.
pytest.register_assert_rewrite("tests.fakes.providers")
