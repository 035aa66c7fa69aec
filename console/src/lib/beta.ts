// The Beta distribution's density, for the results page's posterior plot: each arm's
// conversion rate after `conversions` of `visitors`, with the Beta(1, 1) prior the
// results use (Beta(1 + conversions, 1 + visitors − conversions)). Written here because
// the npm packages that have it bring far more than one function into a console whose
// first load is budgeted (jStat is a whole statistics library; stdlib's gammaln pulls a
// tree of packages): the log-gamma is Lanczos' approximation with the usual g = 7,
// n = 9 coefficients (relative error about 1e-15), and the density is computed in log
// space, so arms with millions of visitors do not overflow. console/test/beta.test.mjs
// checks both against values from Python's math.lgamma.

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function lnGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The density of Beta(a, b) at x in (0, 1). */
export function betaPdf(x: number, a: number, b: number): number {
  if (x <= 0 || x >= 1) return 0;
  const lnB = lnGamma(a) + lnGamma(b) - lnGamma(a + b);
  return Math.exp((a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x) - lnB);
}

/** Mean and standard deviation of Beta(a, b). */
export function betaMoments(a: number, b: number): { mean: number; sd: number } {
  const n = a + b;
  return { mean: a / n, sd: Math.sqrt((a * b) / (n * n * (n + 1))) };
}

/**
 * The posterior densities of several arms on one grid of `points` rates: the grid spans
 * every arm's mean ± 4 standard deviations, clipped to [0, 1].
 */
export function posteriorGrid(arms: { visitors: number; conversions: number }[], points = 200): { xs: number[]; ys: number[][] } {
  const params = arms.map((a) => [1 + a.conversions, 1 + Math.max(0, a.visitors - a.conversions)] as const);
  let lo = 1;
  let hi = 0;
  for (const [a, b] of params) {
    const { mean, sd } = betaMoments(a, b);
    lo = Math.min(lo, mean - 4 * sd);
    hi = Math.max(hi, mean + 4 * sd);
  }
  lo = Math.max(0, lo);
  hi = Math.min(1, hi);
  const xs = Array.from({ length: points }, (_, i) => lo + ((hi - lo) * (i + 0.5)) / points);
  return { xs, ys: params.map(([a, b]) => xs.map((x) => betaPdf(x, a, b))) };
}
