"""Developer benchmarks (not shipped with hw4lib): speed and equivalence baselines."""
