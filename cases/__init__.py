"""Built-in case files (package data)."""
