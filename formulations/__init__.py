"""perfcost formulations."""
