"""vhod's domain modules."""
