// The public simulator (/simulator, no account): the 3×3 landing-page grid of the
// original product — three headlines × three calls to action, each combination with a
// hidden true conversion rate — run in the browser by Samplit's own engine compiled to
// WebAssembly (simulator/, packaged with wasm-pack). A fixed split and Thompson sampling
// get the same number of visitors; the page shows where each sent them, what each
// converted, and the conversions each lost against always showing the best combination.
// Nothing is sent anywhere, except the optional sign-up form (POST
// /api/v1/public/signups), whose failures are shown as failures.
import { Fragment, render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import init, { Simulation } from 'samplit-simulator';
import { formatNumber, formatPercent, setLang, t, useLang, type Lang } from './lib/i18n';

const HEADLINES = ['A', 'B', 'C'];
const BUTTONS = ['X', 'Y', 'Z'];
/// The original demo's rates (headline × button), best B × Y at 5.5 %.
const DEFAULT_RATES = [0.025, 0.038, 0.028, 0.042, 0.055, 0.045, 0.021, 0.031, 0.036];
const TOTAL = 30_000;
const PER_TICK = 600;
/// Visitors between two snapshots of Thompson's statistics (the control plane publishes
/// every few seconds; at a few hundred visitors a second that is ~500 visitors).
const REFRESH = 500;
const MIN_EXPOSURES = 100;
const FLOOR = 0.01;

interface View {
  visitors: number;
  fixed: Side;
  thompson: Side;
  history: { visitors: number[]; fixedRegret: number[]; thompsonRegret: number[] };
}

interface Side {
  exposures: number[];
  conversions: number[];
  best: number[];
  propensities: number[];
  regret: number;
}

function side(sim: Simulation, thompson: boolean): Side {
  return {
    exposures: Array.from(sim.exposures(thompson)),
    conversions: Array.from(sim.conversions(thompson)),
    best: Array.from(sim.chanceToBeBest(thompson)),
    propensities: Array.from(sim.propensities(thompson)),
    regret: sim.regret(thompson),
  };
}

function randomRates(): number[] {
  return DEFAULT_RATES.map(() => Math.round((0.01 + Math.random() * 0.06) * 1000) / 1000);
}

function Simulator() {
  const lang = useLang();
  const [ready, setReady] = useState<'loading' | 'ready' | string>('loading');
  const [rates, setRates] = useState<number[]>(DEFAULT_RATES);
  const [seed, setSeed] = useState(1);
  const [running, setRunning] = useState(false);
  const [view, setView] = useState<View | undefined>(undefined);
  const sim = useRef<Simulation | null>(null);
  const history = useRef<View['history']>({ visitors: [], fixedRegret: [], thompsonRegret: [] });

  useEffect(() => {
    init({ module_or_path: '/simulator/sim.wasm' })
      .then(() => setReady('ready'))
      .catch((e: unknown) => setReady(String(e)));
  }, []);

  function reset() {
    sim.current?.free();
    sim.current = null;
    history.current = { visitors: [], fixedRegret: [], thompsonRegret: [] };
    setView(undefined);
    setRunning(false);
  }

  function tick(): boolean {
    if (!sim.current) {
      sim.current = new Simulation(new Float64Array(rates), seed, MIN_EXPOSURES, FLOOR, REFRESH);
    }
    const s = sim.current;
    s.run(Math.min(PER_TICK, TOTAL - s.visitors));
    const fixed = side(s, false);
    const thompson = side(s, true);
    const h = history.current;
    h.visitors.push(s.visitors);
    h.fixedRegret.push(fixed.regret);
    h.thompsonRegret.push(thompson.regret);
    setView({ visitors: s.visitors, fixed, thompson, history: { ...h } });
    return s.visitors < TOTAL;
  }

  // Runs a tick per animation frame until the total is reached or Pause is pressed.
  useEffect(() => {
    if (!running) return;
    let frame = 0;
    const loop = () => {
      if (tick()) frame = requestAnimationFrame(loop);
      else setRunning(false);
    };
    frame = requestAnimationFrame(loop);
    return () => cancelAnimationFrame(frame);
  }, [running]);

  const bestArm = rates.indexOf(Math.max(...rates));
  const done = view !== undefined && view.visitors >= TOTAL;
  return (
    <main>
      <header class="row">
        <h1>{t('sim.title')}</h1>
        <label>
          <span class="sr-only">{t('nav.language')}</span>
          <select value={lang} onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)}>
            <option value="en">English</option>
            <option value="es">Español</option>
          </select>
        </label>
      </header>
      <p>{t('sim.intro', { total: formatNumber(TOTAL) })}</p>
      <p class="muted">{t('sim.engine_note')}</p>
      {ready !== 'ready' && ready !== 'loading' && (
        <p class="alert alert-error" role="alert">{t('sim.load_failed', { reason: ready })}</p>
      )}

      <section class="card stack" aria-labelledby="rates-title">
        <h2 id="rates-title">{t('sim.rates')}</h2>
        <p class="muted">{t('sim.rates_explain')}</p>
        <div class="sim-rates">
          <span />
          {BUTTONS.map((b) => (
            <strong key={b}>{t('sim.button', { b })}</strong>
          ))}
          {HEADLINES.map((hl, r) => (
            <Fragment key={hl}>
              <strong>{t('sim.headline', { h: hl })}</strong>
              {BUTTONS.map((b, c) => (
                <label key={b}>
                  <span class="sr-only">{`${hl} × ${b}`}</span>
                  <input
                    type="number"
                    min="0"
                    max="100"
                    step="0.1"
                    disabled={view !== undefined}
                    value={Math.round(rates[r * 3 + c]! * 1000) / 10}
                    onInput={(e) => {
                      const v = Number((e.target as HTMLInputElement).value) / 100;
                      if (Number.isFinite(v) && v >= 0 && v <= 1) setRates(rates.map((x, i) => (i === r * 3 + c ? v : x)));
                    }}
                    data-testid={`rate-${hl}${b}`}
                  />
                </label>
              ))}
            </Fragment>
          ))}
        </div>
        <p class="row">
          <button type="button" class="btn btn-primary" disabled={ready !== 'ready' || done} onClick={() => setRunning(!running)} data-testid="sim-run">
            {running ? t('sim.pause') : view ? t('sim.resume') : t('sim.run')}
          </button>
          <button type="button" class="btn" onClick={reset} disabled={view === undefined}>
            {t('sim.reset')}
          </button>
          <button type="button" class="btn" disabled={view !== undefined} onClick={() => { setRates(randomRates()); setSeed(1 + Math.floor(Math.random() * 1e9)); }}>
            {t('sim.randomise')}
          </button>
        </p>
      </section>

      {view && (
        <>
          <p role="status" data-testid="sim-progress">
            {t('sim.progress', { n: formatNumber(view.visitors), total: formatNumber(TOTAL) })}
          </p>
          <div class="table-wrap" tabIndex={0} role="region" aria-label={t('sim.summary')}>
            <table class="sim-summary" data-testid="sim-summary">
              <thead>
                <tr>
                  <th scope="col">{t('sim.strategy')}</th>
                  <th scope="col">{t('results.conversions')}</th>
                  <th scope="col">{t('sim.lost')}</th>
                  <th scope="col">{t('sim.best_share', { arm: `${HEADLINES[Math.floor(bestArm / 3)]} × ${BUTTONS[bestArm % 3]}` })}</th>
                </tr>
              </thead>
              <tbody>
                {(['fixed', 'thompson'] as const).map((k) => {
                  const s = view[k];
                  const conv = s.conversions.reduce((a, b) => a + b, 0);
                  return (
                    <tr key={k} data-strategy={k}>
                      <th scope="row">{t(`sim.${k}`)}</th>
                      <td data-field="conversions">{formatNumber(conv)}</td>
                      <td data-field="lost">{formatNumber(s.regret, 1)}</td>
                      <td data-field="best_share">{formatPercent(s.exposures[bestArm]! / Math.max(1, view.visitors))}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <div class="sim-grids">
            <Grid title={t('sim.fixed')} side={view.fixed} rates={rates} bestArm={bestArm} testId="grid-fixed" />
            <Grid title={t('sim.thompson')} side={view.thompson} rates={rates} bestArm={bestArm} testId="grid-thompson" />
          </div>
          <h2>{t('sim.lost_over_time')}</h2>
          <RegretChart history={view.history} />
        </>
      )}
      <Signup />
    </main>
  );
}

function Grid({ title, side, rates, bestArm, testId }: { title: string; side: Side; rates: number[]; bestArm: number; testId: string }) {
  const total = Math.max(1, side.exposures.reduce((a, b) => a + b, 0));
  return (
    <section aria-label={title}>
      <h2>{title}</h2>
      <div class="sim-grid" data-testid={testId}>
        <span />
        {BUTTONS.map((b) => (
          <span class="head" key={b}>{b}</span>
        ))}
        {HEADLINES.map((hl, r) => (
          <Fragment key={hl}>
            <span class="head">{hl}</span>
            {BUTTONS.map((b, c) => {
              const i = r * 3 + c;
              const n = side.exposures[i]!;
              return (
                <div key={b} class={`sim-cell${i === bestArm ? ' best' : ''}`} data-arm={`${hl}${b}`}>
                  <strong>{formatNumber(n)}</strong> <span class="muted">{t('sim.visitors_short')}</span>
                  <br />
                  {formatNumber(side.conversions[i]!)} {t('sim.conv_short')} · {formatPercent(rates[i]!, 1)}
                  <br />
                  <span class="muted">{t('sim.p_best', { p: formatPercent(side.best[i]!, 0) })}</span>
                  <span
                    class="share"
                    aria-hidden="true"
                    data-share={n / total}
                    // CSSOM, not a style attribute: the page's CSP refuses inline styles.
                    ref={(el) => {
                      if (el) el.style.setProperty('width', `${Math.round((100 * n) / total)}%`);
                    }}
                  />
                </div>
              );
            })}
          </Fragment>
        ))}
      </div>
    </section>
  );
}

function RegretChart({ history }: { history: View['history'] }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!el.current) return;
    plot.current = new uPlot(
      {
        width: Math.min(el.current.clientWidth || 640, 900),
        height: 240,
        scales: { x: { time: false } },
        series: [
          { label: t('sim.visitors') },
          { label: t('sim.fixed'), stroke: '#d97706', width: 2 },
          { label: t('sim.thompson'), stroke: '#2563eb', width: 2 },
        ],
      },
      [[], [], []],
      el.current,
    );
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => {
    plot.current?.setData([history.visitors, history.fixedRegret, history.thompsonRegret]);
  }, [history]);
  return <div ref={el} class="chart" data-testid="regret-chart" />;
}

type SignupState = { kind: 'idle' } | { kind: 'sending' } | { kind: 'done' } | { kind: 'failed'; message: string; fields: { field: string; message: string }[] };

function Signup() {
  const [state, setState] = useState<SignupState>({ kind: 'idle' });
  async function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const body = {
      email: String(form.get('email') ?? ''),
      name: String(form.get('name') ?? ''),
      company: String(form.get('company') ?? ''),
      source: 'simulator',
    };
    setState({ kind: 'sending' });
    try {
      const res = await fetch('/api/v1/public/signups', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status === 202) {
        setState({ kind: 'done' });
        return;
      }
      const problem = (await res.json().catch(() => ({}))) as { detail?: string; title?: string; errors?: { field: string; message: string }[] };
      const message =
        res.status === 429
          ? t('sim.signup_too_many', { minutes: Math.max(1, Math.ceil(Number(res.headers.get('retry-after') ?? '60') / 60)) })
          : problem.detail ?? problem.title ?? res.statusText;
      setState({ kind: 'failed', message, fields: problem.errors ?? [] });
    } catch {
      setState({ kind: 'failed', message: t('sim.signup_network'), fields: [] });
    }
  }
  const fieldError = (f: string) => (state.kind === 'failed' ? state.fields.find((x) => x.field === f)?.message : undefined);
  return (
    <section class="card stack" aria-labelledby="signup-title">
      <h2 id="signup-title">{t('sim.signup_title')}</h2>
      <p class="muted">{t('sim.signup_explain')}</p>
      {state.kind === 'done' ? (
        <p class="alert alert-info" role="status" data-testid="signup-done">{t('sim.signup_done')}</p>
      ) : (
        <form class="stack" onSubmit={(e) => void submit(e)} noValidate>
          {state.kind === 'failed' && (
            <p class="alert alert-error" role="alert" data-testid="signup-error">{t('sim.signup_failed', { reason: state.message })}</p>
          )}
          <label>
            {t('auth.email')}
            <input name="email" type="email" autoComplete="email" required aria-invalid={fieldError('email') ? 'true' : undefined} />
            {fieldError('email') && <span class="field-error">{fieldError('email')}</span>}
          </label>
          <label>
            {t('sim.signup_name')}
            <input name="name" autoComplete="name" maxLength={200} />
          </label>
          <label>
            {t('sim.signup_company')}
            <input name="company" autoComplete="organization" maxLength={200} />
          </label>
          <button type="submit" class="btn btn-primary" disabled={state.kind === 'sending'}>{t('sim.signup_send')}</button>
        </form>
      )}
    </section>
  );
}

const root = document.getElementById('app');
if (root) render(<Simulator />, root);
