#!/usr/bin/env python3
"""Reference values for funnels (samplit_engine::stats::funnel unit tests in
shared-engine/src/stats/funnel.rs), computed independently of the engine.

1. Reach. Per-visitor event sequences are generated deterministically (a 64-bit LCG,
   Knuth's MMIX constants, that the Rust test replays) and each visitor's number of steps
   reached is found by exhaustive search — every in-order choice of distinct events inside
   the window is tried — not by the greedy walk the engine uses. The totals per arm are
   printed.
2. Statistics on those totals, with statsmodels:
   - Wilson interval of each step's reach (proportion_confint(method="wilson"));
   - Newcombe hybrid score interval of the difference of reach against the control
     (confint_proportions_2indep(method="newcomb", compare="diff"));
   - pooled two-proportion z-test (proportions_ztest, two-sided);
   - Holm over every (arm, step) comparison (multipletests(method="holm")).

    pip install scipy statsmodels
    python3 control-plane/tests/reference/funnels.py
"""
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

MASK = (1 << 64) - 1
A, C = 6364136223846793005, 1442695040888963407


class Lcg:
    def __init__(self, seed):
        self.x = seed & MASK

    def next(self, m):
        """A number in 0..m from the high bits."""
        self.x = (A * self.x + C) & MASK
        return (self.x >> 33) % m


STEPS = 3
WINDOW = 1000
# Per arm, the weights (out of 100) of the goals an event is about: steps 0, 1, 2, then
# an unrelated goal. The treatment arms send more visitors through.
ARMS = [
    ("control", 1500, [30, 20, 10, 40]),
    ("b", 1500, [30, 25, 15, 30]),
    ("c", 1400, [35, 20, 10, 35]),
]


def visitor(rng, weights):
    """(entry, [(ts, goal)] in time order, ties in generation order)."""
    entry = rng.next(500)
    n = rng.next(7)
    events = []
    for _ in range(n):
        ts = entry - 200 + rng.next(1600)
        u = rng.next(100)
        goal, acc = 0, 0
        for g, w in enumerate(weights):
            acc += w
            if u < acc:
                goal = g
                break
        events.append((ts, goal))
    events.sort(key=lambda e: e[0])  # stable: ties keep generation order
    return entry, events


def reach_exhaustive(entry, events):
    """The most steps reachable by distinct events in order, inside the window."""
    usable = [g for ts, g in events if entry <= ts <= entry + WINDOW]
    best = 0

    def search(start, step):
        nonlocal best
        best = max(best, step)
        if step == STEPS:
            return
        for i in range(start, len(usable)):
            if usable[i] == step:
                search(i + 1, step + 1)

    search(0, 0)
    return best


def main():
    rng = Lcg(20261205)
    totals = []
    for name, n, weights in ARMS:
        reached = [0] * STEPS
        for _ in range(n):
            entry, events = visitor(rng, weights)
            k = reach_exhaustive(entry, events)
            for s in range(k):
                reached[s] += 1
        totals.append((name, n, reached))
        print(f"arm {name}: entered {n}, reached {reached}")

    for name, n, reached in totals:
        for s, r in enumerate(reached):
            lo, hi = proportion_confint(r, n, alpha=0.05, method="wilson")
            print(f"wilson {name} step {s}: {r / n!r} [{lo!r}, {hi!r}]")

    _, n_a, reached_a = totals[0]
    family = []
    for ai, (name, n_b, reached_b) in enumerate(totals[1:], start=1):
        for s in range(STEPS):
            low, upp = confint_proportions_2indep(
                reached_b[s], n_b, reached_a[s], n_a, method="newcomb", compare="diff"
            )
            z, p = proportions_ztest([reached_b[s], reached_a[s]], [n_b, n_a])
            diff = reached_b[s] / n_b - reached_a[s] / n_a
            family.append((ai, s, diff, low, upp, z, p))
    holm = multipletests([f[-1] for f in family], method="holm")[1]
    print("(arm, step, difference, lower, upper, z, p, p_holm)")
    for f, ph in zip(family, holm):
        ai, s, diff, low, upp, z, p = f
        print(f"({ai}, {s}, {diff!r}, {float(low)!r}, {float(upp)!r}, {float(z)!r}, {float(p)!r}, {float(ph)!r}),")


if __name__ == "__main__":
    main()
