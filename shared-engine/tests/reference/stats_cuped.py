#!/usr/bin/env python3
"""Reference values for variance reduction (CUPED within post-strata), tests/stats_cuped.rs.

Independent of the Rust code (`stats::cuped`):
- per-visitor data are generated here (seeded NumPy): visitor type, device, prior visits
  and prior conversions (capped at 50), and an outcome (converted 0/1, or revenue)
  that depends on them and on the arm;
- the slope of each stratum is fitted by **statsmodels OLS** on the raw visitors
  (`y ~ arm dummies + x1 + x2`: one intercept per arm, so the slope is the pooled
  within-arm one), not from the moments;
- adjusted means, residual variances (NumPy `var(ddof=1)` of the residuals in each
  cell), unadjusted means and variances are computed on the raw visitors; intervals use
  SciPy's normal quantile; the mSPRT p-value is `1/Lambda` of Johari et al.'s mixture
  likelihood ratio, evaluated by numerical integration (SciPy `quad`) of the normal
  likelihood ratio over the N(0, tau^2) mixing distribution, not by the closed form;
- only the per-(stratum, arm) moments go to Rust, as `CupedInput` JSON; the expected
  `CupedOutput` beside them.

    pip install numpy scipy statsmodels
    python3 shared-engine/tests/reference/stats_cuped.py > shared-engine/tests/reference/stats_cuped.json
"""
import json
import math

import numpy as np
import statsmodels.api as sm
from scipy import integrate, stats

CAP = 50
MIN = 30
TYPES = ["new", "returning", "unknown"]
DEVICES = ["desktop", "mobile", "tablet", "other", "unknown"]


def visitors(rng, n, arm, effect, metric, device_p):
    """n visitors of one arm: (stratum name, group, x1, x2, y)."""
    vtype = rng.choice(TYPES, size=n, p=[0.5, 0.4, 0.1])
    device = rng.choice(DEVICES, size=n, p=device_p)
    visits = np.where(vtype == "returning", 1 + rng.poisson(4.0, n), 0)
    heavy = (vtype == "returning") & (rng.random(n) < 0.02)
    visits = np.where(heavy, 200, visits)  # beyond the cap
    conv = np.where(vtype == "returning", rng.binomial(np.maximum(visits, 1), 0.15), 0)
    x1 = np.minimum(conv, CAP).astype(float)
    x2 = np.minimum(visits, CAP).astype(float)
    dev_effect = np.select([device == "mobile", device == "tablet"], [-0.4, 0.2], 0.0)
    logit = -2.5 + 0.35 * x1 + 0.04 * x2 + dev_effect + effect[arm]
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (rng.random(n) < p).astype(float)
    if metric == "revenue":
        y = y * rng.lognormal(np.log(40.0 + 8.0 * x1), 0.6)
    names = [f"{t}/{d}" for t, d in zip(vtype, device)]
    return [(names[i], str(vtype[i]), x1[i], x2[i], y[i]) for i in range(n)]


def moments(rows):
    x1 = np.array([r[2] for r in rows])
    x2 = np.array([r[3] for r in rows])
    y = np.array([r[4] for r in rows])
    return {
        "n": len(rows),
        "sum_x": [float(x1.sum()), float(x2.sum())],
        "sum_xx": [float((x1 * x1).sum()), float((x1 * x2).sum()), float((x2 * x2).sum())],
        "sum_y": float(y.sum()),
        "sum_yy": float((y * y).sum()),
        "sum_xy": [float((x1 * y).sum()), float((x2 * y).sum())],
    }


def stratify(cells, arms):
    """cells: {(group, name): [rows of arm a]} -> [(name, members, [rows per arm])]."""
    def large(per_arm):
        return all(len(r) >= MIN for r in per_arm)

    kept, groups = [], {}
    for (group, name) in sorted(cells):
        per_arm = cells[(group, name)]
        if sum(len(r) for r in per_arm) == 0:
            continue
        if large(per_arm):
            kept.append([name, [name], per_arm])
        else:
            g = groups.setdefault(group, [group, [], [[] for _ in range(arms)]])
            g[1].append(name)
            for a in range(arms):
                g[2][a] += per_arm[a]
    other = ["other", [], [[] for _ in range(arms)]]
    for group in sorted(groups):
        g = groups[group]
        if large(g[2]):
            kept.append(g)
        else:
            other[1] += g[1]
            for a in range(arms):
                other[2][a] += g[2][a]
    if sum(len(r) for r in other[2]) > 0:
        if large(other[2]):
            kept.append(other)
        elif not kept:
            other[0] = "all"
            kept.append(other)
        else:
            totals = [sum(len(r) for r in k[2]) for k in kept]
            target = kept[totals.index(max(totals))]
            target[1] += other[1]
            for a in range(arms):
                target[2][a] += other[2][a]
    for k in kept:
        k[1] = sorted(k[1])
    return kept


def ols_slope(per_arm):
    """Pooled within-arm slope by statsmodels: y ~ arm dummies + covariates that vary."""
    arms = len(per_arm)
    rows = [(a, r) for a in range(arms) for r in per_arm[a]]
    y = np.array([r[4] for _, r in rows])
    x = np.array([[r[2], r[3]] for _, r in rows])
    dummies = np.array([[1.0 if a == k else 0.0 for k in range(arms)] for a, _ in rows])
    # A covariate varies when its within-arm centred sum of squares is not ~0.
    varies = []
    for j in range(2):
        ss = sum(((np.array([r[2 + j] for r in per_arm[a]]) - np.mean([r[2 + j] for r in per_arm[a]])) ** 2).sum()
                 for a in range(arms) if per_arm[a])
        varies.append(ss > 1e-9)
    cols = [j for j in range(2) if varies[j]]
    theta = [0.0, 0.0]
    if cols:
        keep = [k for k in range(arms) if per_arm[k]]
        design = np.column_stack([dummies[:, keep], x[:, cols]])
        fit = sm.OLS(y, design).fit()
        for i, j in enumerate(cols):
            theta[j] = float(fit.params[len(keep) + i])
    return theta


def msprt_p(theta_hat, v, tau2):
    """1/Lambda with Lambda = E_{t~N(0,tau2)}[phi(theta_hat; t, v) / phi(theta_hat; 0, v)]."""
    if v <= 0 or tau2 <= 0:
        return 1.0
    sd = math.sqrt(tau2)
    base = stats.norm.logpdf(theta_hat, 0.0, math.sqrt(v))
    f = lambda t: math.exp(stats.norm.logpdf(theta_hat, t, math.sqrt(v)) - base) * stats.norm.pdf(t, 0.0, sd)
    # Split at the likelihood's peak so quad sees it.
    lam = 0.0
    for lo, hi in [(-math.inf, theta_hat), (theta_hat, math.inf)]:
        lam += integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-12, limit=500)[0]
    return min(1.0, 1.0 / lam)


def case(name, seed, n, effect, metric, mixing, previous, device_p=(0.5, 0.35, 0.1, 0.04, 0.01)):
    rng = np.random.default_rng(seed)
    arms = len(effect)
    rows = [visitors(rng, n[a], a, effect, metric, list(device_p)) for a in range(arms)]
    cells = {}
    for a in range(arms):
        for r in rows[a]:
            cells.setdefault((r[1], r[0]), [[] for _ in range(arms)])[a].append(r)
    strata_in = [{"name": name_, "group": group, "arms": [moments(per_arm[a]) for a in range(arms)]}
                 for (group, name_), per_arm in sorted(cells.items())]
    kept = stratify(cells, arms)
    total = sum(len(r) for k in kept for r in k[2])
    out_strata, mean, var, defined = [], [0.0] * arms, [0.0] * arms, [True] * arms
    for sname, members, per_arm in kept:
        theta = ols_slope(per_arm)
        allx = np.array([[r[2], r[3]] for a in range(arms) for r in per_arm[a]])
        xbar = allx.mean(axis=0)
        w = sum(len(r) for r in per_arm) / total
        for a in range(arms):
            if len(per_arm[a]) < 2:
                defined[a] = False
                continue
            x = np.array([[r[2], r[3]] for r in per_arm[a]])
            y = np.array([r[4] for r in per_arm[a]])
            adj = y.mean() - np.dot(theta, x.mean(axis=0) - xbar)
            resid = y - x @ np.array(theta)
            mean[a] += w * adj
            var[a] += w * w * resid.var(ddof=1) / len(y)
        out_strata.append({"name": sname, "members": members,
                           "visitors": [len(per_arm[a]) for a in range(arms)],
                           "weight": w, "theta": theta})
    out_arms = []
    for a in range(arms):
        y = np.array([r[4] for r in rows[a]])
        out_arms.append({"visitors": len(y), "unadjusted_mean": float(y.mean()),
                         "unadjusted_variance": float(y.var(ddof=1) / len(y)),
                         "adjusted_mean": float(mean[a]), "adjusted_variance": float(var[a])}
                        if defined[a] and len(y) >= 2 else None)
    z = stats.norm.ppf(0.975)
    comps = []
    c = out_arms[0]
    for b in range(arms):
        t = out_arms[b]
        if b == 0 or t is None or c is None:
            comps.append(None)
            continue
        d = t["adjusted_mean"] - c["adjusted_mean"]
        v = t["adjusted_variance"] + c["adjusted_variance"]
        du = t["unadjusted_mean"] - c["unadjusted_mean"]
        vu = t["unadjusted_variance"] + c["unadjusted_variance"]
        mc, mb = c["adjusted_mean"], t["adjusted_mean"]
        r = mb / mc - 1
        vr = t["adjusted_variance"] / mc**2 + mb**2 * c["adjusted_variance"] / mc**4
        if "absolute" in mixing:
            tau2 = mixing["absolute"]
        else:
            yc = np.concatenate([[r_[4] for r_ in rows[0]], [r_[4] for r_ in rows[b]]])
            tau2 = (mixing["relative"] * yc.mean()) ** 2
        p = min(previous[b] if previous[b] is not None else 1.0, msprt_p(d, v, tau2))
        comps.append({
            "difference": d, "variance": v,
            "interval": {"lower": d - z * math.sqrt(v), "upper": d + z * math.sqrt(v)},
            "unadjusted_difference": du, "unadjusted_variance": vu,
            "unadjusted_interval": {"lower": du - z * math.sqrt(vu), "upper": du + z * math.sqrt(vu)},
            "relative_lift": r,
            "relative_interval": {"lower": r - z * math.sqrt(vr), "upper": r + z * math.sqrt(vr)},
            "variance_reduction": 1 - v / vu, "p_value": p, "reject": p <= 0.05,
        })
    return {"name": name,
            "input": {"strata": strata_in, "control": 0, "previous_p_values": previous,
                      "alpha": 0.05, "mixing": mixing, "min_stratum_visitors": MIN},
            "expected": {"strata": out_strata, "arms": out_arms, "comparisons": comps}}


CASES = [
    case("conversion, two arms, +0.3 on the logit", 1, [4000, 4000], [0.0, 0.3], "conversion",
         {"absolute": 1e-4}, [None, None]),
    case("conversion, A/A, a previous p-value", 2, [3000, 3100], [0.0, 0.0], "conversion",
         {"absolute": 1e-4}, [None, 0.4]),
    case("revenue, three arms, relative mixing", 3, [2500, 2500, 2400], [0.0, 0.1, -0.2], "revenue",
         {"relative": 0.05}, [None, None, None]),
    case("small: strata merged into groups and other", 4, [400, 380], [0.0, 0.2], "conversion",
         {"absolute": 1e-4}, [None, None], device_p=(0.6, 0.2, 0.1, 0.05, 0.05)),
    case("tiny: one stratum `all`", 5, [50, 45], [0.0, 0.5], "revenue",
         {"relative": 0.05}, [None, None]),
]

print(json.dumps({"generated_by": "shared-engine/tests/reference/stats_cuped.py", "cases": CASES}, indent=1))
