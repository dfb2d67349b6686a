"""Which version answers a request: cumulative weight bands over [0, 100), and a stable point
for a request key. Pure."""

from __future__ import annotations

import hashlib


def bands(canary: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """Cumulative upper bounds in [0, 100): the canary aliases first, champion takes the rest."""
    out, upper = [], 0.0
    for alias, percent in canary.items():
        upper += percent
        out.append((alias, upper))
    out.append(("champion", 100.0))
    return tuple(out)


def key_point(key: str) -> float:
    """A point in [0, 100) that depends on KEY alone (not on the process, unlike hash())."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100.0
