"""The study configs allocsearch ships (YAML), installed as package data; outputs are git-ignored."""
