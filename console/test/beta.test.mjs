// console/src/lib/beta.ts (the results page's posterior densities) against reference
// values computed independently with Python's math.lgamma (CPython's own log-gamma):
//   lgamma(x); exp((a-1)·ln x + (b-1)·ln(1-x) − (lgamma a + lgamma b − lgamma(a+b))).
// The module is TypeScript: esbuild (the console's own bundler) strips the types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { root } from './harness.mjs';

const source = readFileSync(join(root, 'console', 'src', 'lib', 'beta.ts'), 'utf8');
const { code } = transformSync(source, { loader: 'ts', format: 'esm' });
const beta = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);

const close = (got, want, rel, what) =>
  assert.ok(Math.abs(got - want) <= rel * Math.abs(want), `${what}: ${got} vs ${want}`);

test('ln Γ matches Python’s math.lgamma', () => {
  for (const [x, want] of [[0.5, 0.5723649429247004], [3, 0.693147180559945], [10.5, 13.940625219403763], [1e6 + 0.5, 12815511.476902764]]) {
    close(beta.lnGamma(x), want, 1e-12, `lnΓ(${x})`);
  }
});

test('the Beta density matches the reference, including an arm with 100 000 visitors', () => {
  for (const [x, a, b, want] of [
    [0.05, 7, 115, 19.939570939182495],
    [0.12, 15, 42, 0.16571371900437087],
    [0.031, 3101, 96901, 727.8803364012995],
    [0.5, 1, 1, 1.0],
    [0.3, 2, 5, 2.1609], // 30 · 0.3 · 0.7⁴, by hand
  ]) {
    close(beta.betaPdf(x, a, b), want, 1e-9, `Beta(${a}, ${b}) at ${x}`);
  }
  assert.equal(beta.betaPdf(0, 2, 2), 0);
  assert.equal(beta.betaPdf(1, 2, 2), 0);
});

test('the grid covers every arm, each density integrates to 1 and peaks at conversions / visitors', () => {
  const arms = [{ visitors: 1000, conversions: 50 }, { visitors: 1200, conversions: 90 }];
  const { xs, ys } = beta.posteriorGrid(arms, 400);
  assert.equal(xs.length, 400);
  const step = xs[1] - xs[0];
  for (const [i, arm] of arms.entries()) {
    const area = ys[i].reduce((s, y) => s + y * step, 0);
    close(area, 1, 1e-3, `arm ${i}'s density integrates to 1 over the grid`);
    const peak = xs[ys[i].indexOf(Math.max(...ys[i]))];
    assert.ok(Math.abs(peak - arm.conversions / arm.visitors) <= step, `arm ${i} peaks at its rate: ${peak}`);
  }
});
