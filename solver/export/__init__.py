"""Closed forms of the formulations: LaTeX, Markdown, Python, C, JSON."""
