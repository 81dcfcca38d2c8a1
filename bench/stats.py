"""The bench's one percentile: nearest rank, as every table of the report gives it."""


def percentile(values: list[float], p: float) -> float:
    """The `p`-th percentile (0-100) of `values`; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
