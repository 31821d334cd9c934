"""Questions over many solves: sweeps, Pareto fronts, sensitivities, comparisons, validation,
calibration, collectives."""
