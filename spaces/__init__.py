"""The search spaces allocsearch ships (YAML), installed as package data."""
