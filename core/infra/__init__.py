"""vhod's infra modules."""
