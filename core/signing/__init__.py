"""vhod's signing modules."""
