#!/usr/bin/env python3
"""Reference values for the guardrail non-inferiority test (tests/stats_guardrail.rs).

Independent of the Rust code in two ways:
- the data are generated here (seeded NumPy) and the mean and variance of each arm come
  from NumPy on the raw values (`mean`, `var(ddof=1)`), the delta-method variance of the
  relative difference from those; only the moments (n, sum, sum of squares) go to Rust;
- the always-valid interval is found by **numerically inverting** the normal-mixture
  likelihood ratio, `Lambda(theta) = 1/alpha`, with SciPy's `brentq` on both sides of
  the estimate: not with the closed form the Rust code uses.

    pip install numpy scipy
    python3 shared-engine/tests/reference/stats_guardrail.py
"""
import math

import numpy as np
from scipy import optimize

ALPHA = 0.05


def mixture_log_ratio(theta, estimate, v, tau2):
    """ln Lambda of the normal mixture at theta (Johari et al. 2022, section 3)."""
    return 0.5 * math.log(v / (v + tau2)) + tau2 * (estimate - theta) ** 2 / (2 * v * (v + tau2))


def case(name, a, b, margin, direction):
    ma, mb = float(np.mean(a)), float(np.mean(b))
    va, vb = float(np.var(a, ddof=1)), float(np.var(b, ddof=1))
    # A constant arm (variance 0) takes the other arm's variance (see guardrail.rs).
    va, vb = (va or vb), (vb or va)
    na, nb = len(a), len(b)
    rel = mb / ma - 1
    v = vb / (nb * ma ** 2) + mb ** 2 * va / (na * ma ** 4)
    tau2 = margin ** 2
    target = math.log(1 / ALPHA)
    if v == 0:
        # Both arms constant: the estimate is exact, the interval a point.
        lower = upper = rel
    else:
        f = lambda t: mixture_log_ratio(t, rel, v, tau2) - target
        lower = optimize.brentq(f, rel - 1000, rel, xtol=1e-15, rtol=1e-15)
        upper = optimize.brentq(f, rel, rel + 1000, xtol=1e-15, rtol=1e-15)
    if direction == "higher_is_better":
        status = "harmed" if upper < -margin else "not_inferior" if lower > -margin else "inconclusive"
    else:
        status = "harmed" if lower > margin else "not_inferior" if upper < margin else "inconclusive"
    boundary = -margin if direction == "higher_is_better" else margin
    beyond = rel < boundary if direction == "higher_is_better" else rel > boundary
    p = 1.0 if not beyond else 0.0 if v == 0 else min(1.0, math.exp(-mixture_log_ratio(boundary, rel, v, tau2)))
    moments = lambda x: (len(x), float(np.sum(x)), float(np.sum(np.square(x))))
    (na, sa, qa), (nb, sb, qb) = moments(a), moments(b)
    print(f"    // {name}")
    print(f"    ({na}, {sa!r}, {qa!r}, {nb}, {sb!r}, {qb!r}, {margin!r}, \"{direction}\", "
          f"{rel!r}, {math.sqrt(v)!r}, {lower!r}, {upper!r}, {p!r}, \"{status}\"),")


rng = np.random.default_rng(20261205)


def revenue(n, rate, mean_order):
    buys = rng.random(n) < rate
    # Order values: log-normal with the given mean (sigma 0.8), in cents-rounded units.
    sigma = 0.8
    mu = math.log(mean_order) - sigma ** 2 / 2
    values = np.round(rng.lognormal(mu, sigma, n), 2)
    return np.where(buys, values, 0.0)


def conversions(n, x):
    out = np.zeros(n)
    out[:x] = 1.0
    return out


print("// (n_a, sum_a, sumsq_a, n_b, sum_b, sumsq_b, margin, direction, relative, se, lower, upper, p, status)")
case("revenue, variant 30 % lower, 20 000 a side", revenue(20000, 0.05, 60.0), revenue(20000, 0.05, 42.0),
     0.05, "higher_is_better")
case("revenue, no difference, 20 000 a side", revenue(20000, 0.05, 60.0), revenue(20000, 0.05, 60.0),
     0.10, "higher_is_better")
case("revenue, small samples", revenue(800, 0.1, 30.0), revenue(900, 0.1, 31.0), 0.2, "higher_is_better")
case("rate, 20 % vs 16 %, 40 000 a side", conversions(40000, 8000), conversions(40000, 6400), 0.05,
     "higher_is_better")
case("rate, 20 % vs 19.9 %, 200 000 a side", conversions(200000, 40000), conversions(200000, 39800), 0.05,
     "higher_is_better")
case("bounce rate up from 30 % to 36 %, 30 000 a side", conversions(30000, 9000), conversions(30000, 10800),
     0.05, "lower_is_better")
case("bounce rate down from 30 % to 29 %, 100 000 a side", conversions(100000, 30000),
     conversions(100000, 29000), 0.05, "lower_is_better")
case("variant sells nothing", revenue(5000, 0.05, 50.0), np.zeros(5000), 0.05, "higher_is_better")
case("ten visitors a side, one sale against none", np.array([25.0] + [0.0] * 9),
     np.zeros(10), 0.05, "higher_is_better")
