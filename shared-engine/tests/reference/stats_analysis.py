#!/usr/bin/env python3
"""Reference values for the `analysis` statistics (tests/stats_analysis.rs).

SciPy's own implementations where it has them (binomtest(...).proportion_ci('wilson'),
ttest_ind_from_stats(equal_var=False), t.interval, chisquare, false_discovery_control);
the textbook formula, written out here independently, where it does not (Katz
log-ratio interval, pooled z-test, Holm, mSPRT).

    pip install scipy mpmath
    python3 shared-engine/tests/reference/stats_analysis.py
"""
import math

import mpmath as mp
import numpy as np
from scipy import stats

# Print NumPy scalars as plain floats (pasteable into Rust).
np.set_printoptions(legacy="1.25")

print("// Wilson 95%: (conversions, visitors, lower, upper) -- scipy binomtest.proportion_ci")
for x, n in [(50, 1000), (0, 20), (20, 20), (3, 7), (500, 10000)]:
    ci = stats.binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    print(f"    ({x}, {n}, {ci.low!r}, {ci.high!r}),")

print("// Pooled z-test: (xa, na, xb, nb, z, p)")
for xa, na, xb, nb in [(50, 1000, 65, 1000), (200, 4000, 260, 4100), (5, 100, 5, 100)]:
    pa, pb = xa / na, xb / nb
    pool = (xa + xb) / (na + nb)
    z = (pb - pa) / math.sqrt(pool * (1 - pool) * (1 / na + 1 / nb))
    print(f"    ({xa}, {na}, {xb}, {nb}, {z!r}, {2 * stats.norm.sf(abs(z))!r}),")

print("// Katz log-ratio 95% interval of relative lift: (xa, na, xb, nb, lift, lower, upper)")
for xa, na, xb, nb in [(50, 1000, 65, 1000), (200, 4000, 260, 4100), (12, 300, 30, 310)]:
    pa, pb = xa / na, xb / nb
    se = math.sqrt((1 - pa) / xa + (1 - pb) / xb)
    z = stats.norm.ppf(0.975)
    lr = math.log(pb / pa)
    print(f"    ({xa}, {na}, {xb}, {nb}, {pb / pa - 1!r}, {math.exp(lr - z * se) - 1!r}, "
          f"{math.exp(lr + z * se) - 1!r}),")

print("// Welch: (n_a, sum_a, sumsq_a, n_b, sum_b, sumsq_b, t, df, p) -- ttest_ind_from_stats")
for (na, sa, qa), (nb, sb, qb) in [((1000, 2500.0, 150000.0), (1000, 3100.0, 210000.0)),
                                   ((50, 120.5, 900.25), (80, 150.0, 1300.0)),
                                   ((12, 30.0, 100.0), (400, 900.0, 4000.0))]:
    ma, mb = sa / na, sb / nb
    va = (qa - sa * sa / na) / (na - 1)
    vb = (qb - sb * sb / nb) / (nb - 1)
    r = stats.ttest_ind_from_stats(mb, math.sqrt(vb), nb, ma, math.sqrt(va), na, equal_var=False)
    se2 = va / na + vb / nb
    df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    print(f"    ({na}, {sa!r}, {qa!r}, {nb}, {sb!r}, {qb!r}, {r.statistic!r}, {df!r}, {r.pvalue!r}),")

print("// Mean 95% t-interval: (n, sum, sumsq, lower, upper) -- scipy t.interval")
for n, s, q in [(1000, 2500.0, 150000.0), (12, 30.0, 100.0)]:
    m = s / n
    v = (q - s * s / n) / (n - 1)
    lo, hi = stats.t.interval(0.95, n - 1, loc=m, scale=math.sqrt(v / n))
    print(f"    ({n}, {s!r}, {q!r}, {lo!r}, {hi!r}),")

print("// SRM chi-square: (observed, weights, chi2, p) -- scipy chisquare")
for obs, w in [([5000, 5000], [0.5, 0.5]), ([5000, 5300], [0.5, 0.5]),
               ([3000, 3050, 3900], [3010.2, 3044.9, 3895.5]), ([1000, 1080, 950], [1, 1, 1])]:
    tot = sum(obs)
    exp = [tot * wi / sum(w) for wi in w]
    r = stats.chisquare(obs, exp)
    print(f"    (&{obs}, &{[float(x) for x in w]}, {r.statistic!r}, {r.pvalue!r}),")

print("// Holm and BH: input, holm, bh (BH from scipy false_discovery_control)")
for ps in [[0.01, 0.04, 0.03, 0.005], [0.2, 0.5, 0.01], [0.04, 0.04, 0.04]]:
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    holm = [0.0] * m
    run = 0.0
    for r, i in enumerate(order):
        run = max(run, min(1.0, (m - r) * ps[i]))
        holm[i] = run
    bh = list(stats.false_discovery_control(ps, method="bh"))
    print(f"    (&{ps}, &{holm}, &{[float(x) for x in bh]}),")

print("// mSPRT: (xa, na, xb, nb, tau2, ln Lambda, 1/Lambda) -- mpmath, pooled variance")
mp.mp.dps = 30
for xa, na, xb, nb, tau2 in [(50, 1000, 65, 1000, 1e-4), (500, 10000, 600, 10000, 1e-4),
                             (500, 10000, 520, 10000, 1e-4), (100, 2000, 150, 2100, 4e-4)]:
    pa, pb = mp.mpf(xa) / na, mp.mpf(xb) / nb
    pool = mp.mpf(xa + xb) / (na + nb)
    v = pool * (1 - pool) * (mp.mpf(1) / na + mp.mpf(1) / nb)
    t2 = mp.mpf(tau2)
    llr = mp.log(v / (v + t2)) / 2 + t2 * (pb - pa) ** 2 / (2 * v * (v + t2))
    print(f"    ({xa}, {na}, {xb}, {nb}, {tau2!r}, {float(llr)!r}, {float(mp.exp(-llr))!r}),")
