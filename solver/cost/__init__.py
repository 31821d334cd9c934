"""Chiplet, package, accelerator and cluster pricing; co-design systems priced from a design
space."""
