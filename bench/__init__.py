"""vhod's benchmark: `python bench/run.py` (see run.py for its parts)."""
