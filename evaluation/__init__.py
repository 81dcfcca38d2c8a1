"""NLU evaluation: the hold-out set, its subsets, and the baselines (`make eval`)."""
