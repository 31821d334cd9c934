"""From a case to what engines search: formulation inputs and structural rules, the space,
evaluation, the disk cache."""
