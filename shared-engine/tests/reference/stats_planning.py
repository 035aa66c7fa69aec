#!/usr/bin/env python3
"""Reference values for `stats::planning` (the unit tests in src/stats/planning.rs).

Computed independently of the Rust code:
- normal quantiles: scipy.stats.norm.ppf;
- fixed horizon: statsmodels' samplesize_proportions_2indep_onetail (the Fleiss formula,
  pooled variance under H0, unpooled under H1; alpha/2 per tail for two-sided) rounded up,
  and power_proportions_2indep at that size (both tails);
- always valid, one look: P(Lambda_n >= 1/alpha') in closed form from the mixture
  likelihood ratio of sequential.rs (theta_hat ~ N(theta, (p1 q1 + p2 q2)/n), V = 2 pbar qbar / n);
- always valid, several looks: 2 000 000 simulated Gaussian paths of theta_hat at the looks,
  each tested with the engine's formula for ln Lambda (seeded NumPy generator; standard
  error <= 0.00035).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install scipy statsmodels
    /tmp/venv/bin/python shared-engine/tests/reference/stats_planning.py

Versions used: Python 3, SciPy 1.17.1, statsmodels 0.15.0, NumPy (bundled with them).
"""
import math

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import (
    power_proportions_2indep,
    samplesize_proportions_2indep_onetail,
)

TAU2 = 1e-4

print("// Normal quantiles: (p, scipy.stats.norm.ppf(p))")
for p in [1e-300, 1e-20, 1e-12, 1e-5, 0.0125, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 0.9, 0.975,
          0.99999]:
    print(f"    ({p!r}, {float(stats.norm.ppf(p))!r}),")

print("// Fixed horizon: (baseline, mde, arms, alpha, power, n per arm, power at n)")
for base, mde, arms, alpha, power in [
    (0.05, 0.10, 2, 0.05, 0.8),
    (0.10, 0.20, 2, 0.05, 0.8),
    (0.10, 0.20, 3, 0.05, 0.8),
    (0.02, -0.15, 4, 0.10, 0.9),
    (0.5, 0.02, 2, 0.01, 0.95),
]:
    a = alpha / (arms - 1)
    diff = base * (1 + mde) - base
    n = samplesize_proportions_2indep_onetail(diff, base, power, ratio=1, alpha=a,
                                              alternative="two-sided")
    n = math.ceil(n)
    pw = power_proportions_2indep(diff, base, n, ratio=1, alpha=a, alternative="two-sided",
                                  return_results=False)
    print(f"    ({base!r}, {mde!r}, {arms}, {alpha!r}, {power!r}, {n}, {float(pw)!r}),")


def log_lambda(theta_hat, v):
    """ln Lambda of sequential.rs: 0.5 ln(V/(V+tau2)) + tau2 theta^2 / (2 V (V + tau2))."""
    return 0.5 * np.log(v / (v + TAU2)) + TAU2 * theta_hat**2 / (2 * v * (v + TAU2))


print("// Always valid, one look at n: (baseline, mde, arms, alpha, n, power)")
for base, mde, arms, alpha, n in [
    (0.10, 0.20, 2, 0.05, 4000),
    (0.10, 0.20, 3, 0.05, 9000),
    (0.05, 0.10, 2, 0.05, 60000),
]:
    a = alpha / (arms - 1)
    p1, p2 = base, base * (1 + mde)
    pbar = (p1 + p2) / 2
    v = 2 * pbar * (1 - pbar) / n
    # ln Lambda >= ln(1/a)  <=>  theta_hat^2 >= c^2
    c = math.sqrt(v * (v + TAU2) / TAU2 * (2 * math.log(1 / a) + math.log((v + TAU2) / v)))
    sd = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    theta = p2 - p1
    pw = stats.norm.sf((c - theta) / sd) + stats.norm.cdf((-c - theta) / sd)
    print(f"    ({base!r}, {mde!r}, {arms}, {alpha!r}, {n}, {float(pw)!r}),")


def simulate(base, mde, arms, alpha, looks, paths=2_000_000, seed=20240607):
    """Share of Gaussian paths of theta_hat whose Lambda reaches 1/alpha' at a look."""
    rng = np.random.default_rng(seed)
    a = alpha / (arms - 1)
    p1, p2 = base, base * (1 + mde)
    pbar = (p1 + p2) / 2
    var_pair = p1 * (1 - p1) + p2 * (1 - p2)
    theta = p2 - p1
    total = np.zeros(paths)  # sum over pairs of (x_B - x_A)
    crossed = np.zeros(paths, dtype=bool)
    prev = 0.0
    for n in looks:
        dn = n - prev
        total += rng.normal(theta * dn, math.sqrt(var_pair * dn), size=paths)
        prev = n
        v = 2 * pbar * (1 - pbar) / n
        crossed |= log_lambda(total / n, v) >= math.log(1 / a)
    return crossed.mean()


print("// Always valid, several looks: (baseline, mde, arms, alpha, visitors/day, looks/day, "
      "n at the last look, power) -- looks every visitors/day/(arms*looks/day) per arm, and "
      "one at n")
for base, mde, arms, alpha, vpd, lpd, n in [
    (0.10, 0.20, 2, 0.05, 400, 1, 4000),
    (0.10, 0.20, 2, 0.05, 400, 1, 8000),
    (0.10, 0.20, 2, 0.05, 400, 1, 3841),
    (0.10, 0.20, 3, 0.05, 600, 1, 8000),
    (0.05, 0.10, 2, 0.05, 10000, 4, 31250),
    (0.05, 0.10, 2, 0.05, 10000, 4, 62500),
]:
    step = vpd / (arms * lpd)
    looks = [step * j for j in range(1, int(n // step) + 1) if step * j < n * (1 - 1e-12)]
    looks.append(n)
    pw = simulate(base, mde, arms, alpha, looks)
    print(f"    ({base!r}, {mde!r}, {arms}, {alpha!r}, {vpd}, {lpd}, {n}, {float(pw)!r}),")
