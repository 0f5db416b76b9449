"""The SQLite backend: its declaration (url.py) and its Store (store.py)."""
