"""The one bisection every search step uses (threshold sweep, error compensation, prune)."""

from __future__ import annotations

from collections.abc import Callable


def bisect(low: int, high: int, is_high: Callable[[int], bool | None]) -> tuple[int, int]:
    """Narrow `low < high` to adjacent integers around a monotone boundary (~log2(high - low) calls).

    `is_high(mid)` says which side `mid` is on: True moves `high` down to it, False moves `low` up to it,
    None stops early (the budget ran out). `low` and `high` themselves are never asked about: the
    caller knows (or assumes) their sides. Example: the smallest passing prefix of a ranking is
    `bisect(0, n, lambda k: passes(ranking[:k]))[1]`.
    """
    while high - low > 1:
        mid = (low + high) // 2
        side = is_high(mid)
        if side is None:
            break
        if side:
            high = mid
        else:
            low = mid
    return low, high
