"""Exact search: compiled tables, enumeration, branch and bound over systems, the MILP, engine
choice."""
