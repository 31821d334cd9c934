"""perfcost solver."""
