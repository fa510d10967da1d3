"""Small statistics helpers: percentiles and a latency summary in milliseconds."""
from __future__ import annotations

from collections.abc import Sequence


def percentile(xs: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile ``p`` (0-100) of ``xs``; None when empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(seconds: Sequence[float], scale: float = 1000.0) -> dict[str, float | int]:
    """n, p50, p95, p99, mean, min, max of ``seconds`` multiplied by ``scale``.

    The default scale reports milliseconds.
    """
    if not seconds:
        return {"n": 0}
    ys = [x * scale for x in seconds]
    return {
        "n": len(ys),
        "p50": round(percentile(ys, 50) or 0.0, 3),
        "p95": round(percentile(ys, 95) or 0.0, 3),
        "p99": round(percentile(ys, 99) or 0.0, 3),
        "mean": round(sum(ys) / len(ys), 3),
        "min": round(min(ys), 3),
        "max": round(max(ys), 3),
    }


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(x, y)`` points; None with fewer than two x values."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    num = sum((x - mx) * (y - my) for x, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return num / den


def median(xs: Sequence[float]) -> float | None:
    """Median of ``xs``; None when empty."""
    return percentile(xs, 50)
