"""vhod's cli modules."""
