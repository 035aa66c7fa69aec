#!/usr/bin/env python3
"""Reference values for the segments endpoint (control-plane/src/http/segments.rs unit
tests and control-plane/tests/api/segments.rs), computed independently of the engine.

SciPy where it has the statistic (binomtest(...).proportion_ci('wilson'), chisquare);
the textbook formula, written out here, where it does not (Katz log-ratio interval for the
relative lift, pooled two-proportion z-test, Holm's step-down adjustment).

    pip install scipy
    python3 control-plane/tests/reference/segments.py

The scenario: two arms, 50/50 fixed split, device segments (visitors, converters) per arm
(control first). `tablet` has fewer than 100 visitors in an arm: no p-value, and it is
left out of the Holm family.
"""
import math

import numpy as np

from scipy import stats

SEGMENTS = {
    "desktop": [(120, 12), (130, 26)],
    "mobile": [(150, 15), (140, 21)],
    "tablet": [(40, 4), (30, 6)],
}
# Print NumPy scalars as plain floats (pasteable into Rust).
np.set_printoptions(legacy="1.25")

LEVEL = 0.95
Z = stats.norm.ppf(0.5 + LEVEL / 2)
MIN_VISITORS = 100


def katz(xa, na, xb, nb):
    pa, pb = xa / na, xb / nb
    se = math.sqrt((1 - pa) / xa + (1 - pb) / xb)
    r = math.log(pb / pa)
    return pb / pa - 1, math.exp(r - Z * se) - 1, math.exp(r + Z * se) - 1


def z_test(xa, na, xb, nb):
    pool = (xa + xb) / (na + nb)
    z = (xb / nb - xa / na) / math.sqrt(pool * (1 - pool) * (1 / na + 1 / nb))
    return 2 * stats.norm.sf(abs(z))


def holm(ps):
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    m, out, running = len(ps), [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


raw = {}
for value, cells in SEGMENTS.items():
    print(f"// {value}")
    for n, x in cells:
        ci = stats.binomtest(x, n).proportion_ci(confidence_level=LEVEL, method="wilson")
        print(f"//   wilson ({n}, {x}): ({ci.low!r}, {ci.high!r})")
    (na, xa), (nb, xb) = cells
    rel, lo, hi = katz(xa, na, xb, nb)
    print(f"//   lift: {rel!r} ({lo!r}, {hi!r})")
    srm = stats.chisquare([na, nb], [(na + nb) / 2] * 2)
    print(f"//   srm p: {srm.pvalue!r}")
    if min(na, nb) >= MIN_VISITORS:
        raw[value] = z_test(xa, na, xb, nb)
        print(f"//   z-test p: {raw[value]!r}")
    else:
        print("//   z-test p: none (small segment)")
adjusted = holm(list(raw.values()))
for value, p in zip(raw, adjusted):
    print(f"// holm {value}: {p!r}")
