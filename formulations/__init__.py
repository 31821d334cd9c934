"""The models: pure functions from frozen, typed specs to named sympy expressions of time,
memory, money and power; they import nothing from solver/."""
