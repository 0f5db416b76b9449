"""The MongoDB backend's declaration (storage/backend.py): `mongodb://` and `mongodb+srv://`.
PyMongo is imported only to parse a URL deeply or to open the store."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from storage.backend import Backend, scheme_of

if TYPE_CHECKING:
    from storage.base import Store


def _problem(url: str, deep: bool) -> str | None:
    if not deep or scheme_of(url) == "mongodb+srv":  # an SRV host is not looked up in DNS
        return None
    from pymongo.errors import ConfigurationError
    from pymongo.uri_parser import parse_uri

    try:
        with warnings.catch_warnings():  # the client warns of unknown options itself
            warnings.simplefilter("ignore")
            parse_uri(url, warn=True)  # as the client parses it: unknown options only warn
    except (ValueError, ConfigurationError) as exc:
        return f"the MongoDB driver refuses it: {exc}"
    return None


def _open(url: str) -> Store:
    from pymongo.errors import ConfigurationError

    from storage.mongo.store import MongoStore

    try:
        return MongoStore(url)
    except (ValueError, ConfigurationError) as exc:
        # PyMongo's InvalidURI is no ValueError: a bad URL is one kind of error for callers.
        raise ValueError(f"the MongoDB driver refuses it: {exc}") from exc


MONGODB = Backend(
    name="MongoDB",
    schemes=("mongodb", "mongodb+srv"),
    shared=True,
    problem=_problem,
    open=_open,
)
