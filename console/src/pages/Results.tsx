import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ApiError, api, get, type AnalysisView, type ResultsView, type Status, type TimeseriesView } from '../lib/api';
import { posteriorGrid } from '../lib/beta';
import { formatAmount, formatDate, formatLift, formatNumber, formatPercent, t } from '../lib/i18n';
import { CopyButton, Problem, Show, StatusBadge, useLoad } from '../lib/ui';
import { ExperimentAlertsControl } from './Notifications';
import { Segments } from './Segments';
import { Funnels } from './Funnels';
import { VarianceReduction } from './VarianceReduction';

/// One experiment's results: the numbers are the API's, formatted, never recomputed.
export function Results({ id, canEdit }: { id: string; canEdit: boolean }) {
  const state = useLoad(
    () =>
      Promise.all([
        get<ResultsView>(`/experiments/${id}/results`),
        get<TimeseriesView>(`/experiments/${id}/timeseries`),
        get<{
          status: Status;
          version: number;
          site_id: string;
          elements: { name: string; variants: { id: string; name: string; is_control: boolean }[] }[];
        }>(`/experiments/${id}`),
      ]),
    [id],
  );
  return (
    <section>
      <Show state={state}>
        {([results, series, experiment]) => (
          <>
            <h1>
              {results.name} <StatusBadge status={experiment.status} />
            </h1>
            {canEdit && <Lifecycle id={id} status={experiment.status} version={experiment.version} onDone={state.reload} />}
            {canEdit && experiment.status === 'draft' && (
              <p class="row" data-testid="editor-links">
                <a class="btn btn-small" href={`/app/experiments/${id}/edit`}>{t('builder.edit')}</a>
                {experiment.elements.flatMap((e) =>
                  e.variants
                    .filter((v) => !v.is_control)
                    .map((v) => (
                      <a key={v.id} class="btn btn-small" href={`/app/experiments/${id}/editor?variant=${v.id}`}>
                        {t('editor.open_in', { variant: experiment.elements.length > 1 ? `${e.name} › ${v.name}` : v.name })}
                      </a>
                    )),
                )}
              </p>
            )}
            <ExperimentAlertsControl experimentId={id} />
            <p class="muted">
              {t('results.goal')}: {results.goal.name}
            </p>
            <p class="row">
              <a class="btn btn-small" href={`/api/v1/experiments/${id}/results/export?format=csv`} download>
                {t('results.export')} CSV
              </a>
              <a class="btn btn-small" href={`/api/v1/experiments/${id}/results/export?format=xlsx`} download>
                {t('results.export')} XLSX
              </a>
            </p>
            {results.analyses.map((a, i) => (
              <Analysis key={i} analysis={a} revenue={results.goal.metric === 'revenue'} />
            ))}
            <Segments experimentId={id} />
            <Funnels experimentId={id} />
            <h2>{t('results.cumulative')}</h2>
            {series.days.length === 0 ? <p class="muted">{t('results.no_data')}</p> : <CumulativeChart series={series} />}
            {series.days.length > 0 && (
              <>
                <h2>{t('results.best_over_time')}</h2>
                <LineChart
                  testId="best-chart"
                  xs={series.days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000)}
                  series={series.arms.map((a) => ({ name: a.name, values: a.points.map((p) => p.cumulative_chance_to_be_best) }))}
                />
              </>
            )}
            {canEdit && <Shares experimentId={id} />}
            <h2>{t('results.traffic')}</h2>
            <TrafficShare siteId={experiment.site_id} experimentId={id} names={armNames(results)} />
          </>
        )}
      </Show>
    </section>
  );
}

type Action = 'start' | 'pause' | 'resume' | 'complete' | 'archive';

/// What each status allows (the server's transition table, docs/experiments.md).
const ACTIONS: Record<Status, Action[]> = {
  draft: ['start'],
  running: ['pause', 'complete'],
  paused: ['resume', 'complete'],
  completed: ['archive'],
  archived: [],
};

/// The lifecycle buttons. Each sends the version this page showed (If-Match): a change
/// made meanwhile by someone else is a 412, said in a sentence, never overwritten.
function Lifecycle({ id, status, version, onDone }: { id: string; status: Status; version: number; onDone: () => void }) {
  const [error, setError] = useState<string | ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  async function act(action: Action) {
    setBusy(true);
    try {
      await api('POST', `/experiments/${id}/${action}`, {}, { 'If-Match': `"${version}"` });
      setError(undefined);
      onDone();
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) setError(t('lifecycle.stale'));
      else if (err instanceof ApiError && err.code === 'invalid_transition') setError(t('lifecycle.invalid', { detail: err.message }));
      else setError(err instanceof ApiError ? err : String(err));
    } finally {
      setBusy(false);
    }
  }
  const actions = ACTIONS[status];
  if (actions.length === 0 && !error) return null;
  return (
    <div class="lifecycle">
      {typeof error === 'string' ? (
        <p class="alert alert-error" role="alert" data-testid="lifecycle-error">
          {error}{' '}
          <button type="button" class="btn btn-small" onClick={() => { setError(undefined); onDone(); }}>
            {t('lifecycle.reload')}
          </button>
        </p>
      ) : (
        error && <Problem error={error} />
      )}
      <p class="row">
        {actions.map((a) => (
          <button key={a} type="button" class={`btn${a === 'start' ? ' btn-primary' : ''}`} disabled={busy} onClick={() => void act(a)}>
            {t(`lifecycle.${a}`)}
          </button>
        ))}
      </p>
    </div>
  );
}

function interval(lo: number, hi: number): string {
  return `${formatPercent(lo)} – ${formatPercent(hi)}`;
}

export function Analysis({ analysis, revenue }: { analysis: AnalysisView; revenue: boolean }) {
  const r = analysis.result;
  // The engine's reason is English and technical ("arm 0: no visitors"): the sentence
  // is the catalogue's, the reason follows only when it is not the obvious one.
  if (!r)
    return (
      <p class="muted" data-testid="no-result">
        {analysis.element_name ? `${analysis.element_name}: ` : ''}
        {t('results.no_data')}
        {analysis.error && !/no visitors/.test(analysis.error) && <small> ({analysis.error})</small>}
      </p>
    );
  const rec = r.recommendation;
  const harm = rec.action === 'guardrail_harmed' ? analysis.subjects[rec.arm]?.guardrails?.[rec.guardrail] : undefined;
  const sentence =
    rec.action === 'deploy_winner'
      ? t('results.rec_deploy', { arm: analysis.subjects[rec.arm]?.name ?? '' })
      : rec.action === 'guardrail_harmed'
        ? t('results.rec_guardrail_harmed', { arm: analysis.subjects[rec.arm]?.name ?? '', goal: harm?.name ?? '', margin: formatPercent(harm?.margin ?? 0) })
        : rec.action === 'no_difference'
          ? t('results.rec_none')
          : t(`results.rec_wait_${rec.reason}`);
  const guarded = analysis.subjects.some((s) => (s.guardrails ?? []).length > 0);
  return (
    <div class="analysis" data-scope={analysis.scope}>
      {analysis.element_name && <h2>{analysis.element_name}</h2>}
      {r.srm.mismatch && (
        <div class="alert alert-error" role="alert" data-testid="srm">
          {t('results.srm', { p: r.srm.p_value.toPrecision(2) })}
        </div>
      )}
      <p class="recommendation" data-testid="recommendation">
        {sentence}
        {analysis.recommendation_reason && (
          <small class="muted" data-testid="recommendation-reason">
            {' '}
            {analysis.recommendation_reason}
          </small>
        )}
      </p>
      <div class="table-wrap" tabIndex={0} role="region" aria-label={t('results.title')}>
        <table class="results" data-testid="results-table">
          <thead>
            <tr>
              <th scope="col">{t('results.arm')}</th>
              <th scope="col">{t('results.visitors')}</th>
              <th scope="col">{t('results.conversions')}</th>
              <th scope="col">{t('results.rate')}</th>
              <th scope="col">{t('results.lift')}</th>
              <th scope="col">{t('results.best')}</th>
              <th scope="col">{t('results.loss')}</th>
              <th scope="col">{t('results.p')}</th>
              {revenue && <th scope="col">{t('results.rpv')}</th>}
            </tr>
          </thead>
          <tbody>
            {r.arms.map((arm, i) => {
              const subject = analysis.subjects[i];
              const c = arm.comparison;
              return (
                <tr key={arm.arm_id} data-arm={subject?.name}>
                  <th scope="row">
                    {subject?.name}
                    {i === r.control && <span class="muted"> ({t('results.control')})</span>}
                  </th>
                  <td data-field="visitors">{formatNumber(arm.visitors)}</td>
                  <td data-field="conversions">{formatNumber(arm.conversions)}</td>
                  <td>
                    {formatPercent(arm.rate, 2)} <span class="muted">({interval(arm.rate_interval.lower, arm.rate_interval.upper)})</span>
                  </td>
                  <td>
                    {c?.lift ? (
                      <>
                        {formatLift(c.lift.relative)}
                        {c.lift.interval && <span class="muted"> ({interval(c.lift.interval.lower, c.lift.interval.upper)})</span>}
                      </>
                    ) : (
                      '—'
                    )}
                  </td>
                  <td data-field="chance_to_be_best">{formatPercent(arm.chance_to_be_best)}</td>
                  <td>{formatPercent(arm.expected_loss, 3)}</td>
                  <td>{c ? c.p_value_holm.toPrecision(3) : '—'}</td>
                  {revenue && <td>{arm.revenue ? formatAmount(arm.revenue.mean) : '—'}</td>}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {guarded && <Guardrails analysis={analysis} />}
      <VarianceReduction analysis={analysis} />
      {(analysis.scope === 'element' || analysis.scope === 'main_effect') && (
        <IntervalBars
          title={t(analysis.scope === 'main_effect' ? 'results.main_effect' : 'results.element_rates', { element: analysis.element_name ?? '' })}
          rows={r.arms.map((arm, i) => ({ name: analysis.subjects[i]?.name ?? '', rate: arm.rate, lower: arm.rate_interval.lower, upper: arm.rate_interval.upper, control: i === r.control }))}
        />
      )}
      {!revenue && r.arms.some((a) => a.visitors > 0) && (
        <>
          <h3>{t('results.posterior')}</h3>
          <p class="muted">{t('results.posterior_explain')}</p>
          <DensityChart names={r.arms.map((_, i) => analysis.subjects[i]?.name ?? '')} arms={r.arms} />
        </>
      )}
    </div>
  );
}

/// Each variant's verdict on each guardrail goal, as the API computed it: the relative
/// difference against the control with its always-valid interval, the goal's margin and
/// a status badge.
function Guardrails({ analysis }: { analysis: AnalysisView }) {
  const rows = analysis.subjects.flatMap((s) => (s.guardrails ?? []).map((g) => ({ arm: s.name, g })));
  return (
    <div class="guardrails" data-testid="guardrails">
      <h3>{t('results.guardrails')}</h3>
      <p class="muted">{t('results.guardrails_explain')}</p>
      <div class="table-wrap" tabIndex={0} role="region" aria-label={t('results.guardrails')}>
        <table class="results">
          <thead>
            <tr>
              <th scope="col">{t('results.arm')}</th>
              <th scope="col">{t('results.guardrail_goal')}</th>
              <th scope="col">{t('results.guardrail_difference')}</th>
              <th scope="col">{t('results.guardrail_margin')}</th>
              <th scope="col">{t('results.guardrail_status')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ arm, g }) => (
              <tr key={`${arm}:${g.goal_id}`} data-arm={arm} data-guardrail={g.name} data-status={g.status}>
                <th scope="row">{arm}</th>
                <td>{g.name}</td>
                <td>
                  {g.relative_difference === null ? '—' : formatLift(g.relative_difference)}
                  {g.interval && <span class="muted"> ({interval(g.interval.lower, g.interval.upper)})</span>}
                </td>
                <td>
                  {g.direction === 'higher_is_better' ? '−' : '+'}
                  {formatPercent(g.margin)}
                </td>
                <td>
                  {/* The stylesheet's badge colours: warning, success and muted. */}
                  <span class={`badge ${g.status === 'harmed' ? 'badge-warn' : g.status === 'not_inferior' ? 'badge-completed' : 'badge-draft'}`}>
                    {t(`results.guardrail_${g.status}`)}
                  </span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

/// One element's variants side by side (factorial: its main effect, pooled over the other
/// elements' variants; independent: the element's own test): each rate as a dot on its
/// 95 % interval, all on one scale from 0 to the highest upper bound, the control's
/// interval shaded behind the others so an overlap is seen at a glance. The numbers are
/// the table's.
function IntervalBars({ title, rows }: { title: string; rows: { name: string; rate: number; lower: number; upper: number; control: boolean }[] }) {
  const top = Math.max(0.0001, ...rows.map((r) => r.upper));
  const pct = (x: number) => `${Math.min(100, Math.max(0, (100 * x) / top))}%`;
  // CSSOM, not style attributes: the console's CSP refuses inline styles.
  const place = (left: number, width?: number) => (el: HTMLElement | null) => {
    if (!el) return;
    el.style.setProperty('left', pct(left));
    if (width !== undefined) el.style.setProperty('width', pct(width));
  };
  const control = rows.find((r) => r.control);
  return (
    <figure class="intervals" data-testid="interval-bars">
      <figcaption>
        <h3>{title}</h3>
      </figcaption>
      {rows.map((r) => (
        <div class="interval-row" key={r.name} data-arm={r.name}>
          <span class="interval-name">{r.name}</span>
          <span class="interval-track" role="img" aria-label={t('results.interval_label', { arm: r.name, rate: formatPercent(r.rate, 2), lower: formatPercent(r.lower, 2), upper: formatPercent(r.upper, 2) })}>
            {control && !r.control && <span class="interval-control" ref={place(control.lower, control.upper - control.lower)} />}
            <span class={`interval-bar${r.control ? ' is-control' : ''}`} ref={place(r.lower, r.upper - r.lower)} />
            <span class="interval-dot" ref={place(r.rate)} />
          </span>
          <span class="interval-value">{formatPercent(r.rate, 2)}</span>
        </div>
      ))}
      <div class="interval-row interval-axis" aria-hidden="true">
        <span />
        <span class="interval-track">
          <span>0</span>
          <span>{formatPercent(top, 1)}</span>
        </span>
        <span />
      </div>
    </figure>
  );
}

/// Each arm's posterior density of its conversion rate (Beta(1 + conversions, 1 +
/// visitors − conversions), the prior the results use): where the curves overlap, the
/// data cannot yet tell the arms apart.
function DensityChart({ names, arms }: { names: string[]; arms: { visitors: number; conversions: number }[] }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const { xs, ys } = posteriorGrid(arms);
    const plot = new uPlot(
      {
        width: Math.min(el.current.clientWidth || 640, 900),
        height: 220,
        series: [
          { label: t('results.posterior_x'), value: (_: uPlot, v: number | null) => (v == null ? '—' : formatPercent(v, 2)) },
          ...names.map((name, i) => ({ label: name, stroke: PALETTE[i % PALETTE.length]!, width: 2, value: (_: uPlot, v: number | null) => (v == null ? '—' : v.toFixed(1)) })),
        ],
        axes: [{ values: (_: uPlot, ticks: number[]) => ticks.map((v) => formatPercent(v, 1)) }, { size: 56 }],
        scales: { x: { time: false } },
        cursor: { points: { show: false } },
      },
      [xs, ...ys],
      el.current,
    );
    return () => plot.destroy();
  }, [names, arms]);
  return <div ref={el} class="chart" data-testid="posterior-chart" />;
}

/// Arm (and variant) ids to the names the analyses give them.
function armNames(results: ResultsView): Map<string, string> {
  const names = new Map<string, string>();
  for (const a of results.analyses) for (const s of a.subjects) names.set(s.id, s.name);
  return names;
}

interface Publication {
  version: number;
  status: 'published' | 'failed';
  published_at: string;
  weights: { experiment_id: string; units: { unit_id: string; arms: { arm_id: string; propensity: number }[] }[] }[];
}

/// The share of new visitors each arm was assigned, per snapshot that reached the edge:
/// with Thompson sampling, the picture of traffic moving to the better arms.
function TrafficShare({ siteId, experimentId, names }: { siteId: string; experimentId: string; names: Map<string, string> }) {
  const state = useLoad(() => get<Publication[]>(`/sites/${siteId}/publications`), [siteId]);
  return (
    <Show state={state}>
      {(pubs) => {
        const points = pubs
          .filter((p) => p.status === 'published')
          .map((p) => ({ at: Date.parse(p.published_at) / 1000, arms: p.weights.find((w) => w.experiment_id === experimentId)?.units.flatMap((u) => u.arms) ?? [] }))
          .filter((p) => p.arms.length > 0)
          .sort((a, b) => a.at - b.at);
        if (points.length === 0) return <p class="muted" data-testid="traffic-empty">{t('results.traffic_none')}</p>;
        const ids = [...new Set(points.flatMap((p) => p.arms.map((a) => a.arm_id)))];
        const series = ids.map((id) => ({ name: names.get(id) ?? id.slice(0, 8), values: points.map((p) => p.arms.find((a) => a.arm_id === id)?.propensity ?? null) }));
        return <LineChart testId="traffic-chart" xs={points.map((p) => p.at)} series={series} />;
      }}
    </Show>
  );
}

const PALETTE = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2'];

/// Each arm's cumulative rate with its 95 % interval (the API's Wilson bounds, dashed in
/// the arm's colour).
function CumulativeChart({ series }: { series: TimeseriesView }) {
  return (
    <LineChart
      testId="cumulative-chart"
      xs={series.days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000)}
      series={series.arms.map((a) => ({
        name: a.name,
        values: a.points.map((p) => p.cumulative_rate),
        band: [a.points.map((p) => p.cumulative_rate_interval?.lower ?? null), a.points.map((p) => p.cumulative_rate_interval?.upper ?? null)],
      }))}
    />
  );
}

/// Rates over time, one line per arm (uPlot).
function LineChart({
  testId,
  xs,
  series,
}: {
  testId: string;
  xs: number[];
  /// `band`: lower and upper bounds drawn as dashed lines in the series' colour.
  series: { name: string; values: (number | null)[]; band?: [(number | null)[], (number | null)[]] }[];
}) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const bands = series.flatMap((s, i) =>
      s.band
        ? s.band.map((values, j) => ({
            values,
            opts: { label: `${s.name} ${j === 0 ? '−' : '+'}95 %`, stroke: PALETTE[i % PALETTE.length]!, width: 1, dash: [4, 4], value: (_: uPlot, v: number | null) => (v == null ? '—' : formatPercent(v, 2)) },
          }))
        : [],
    );
    const data: uPlot.AlignedData = [xs, ...series.map((s) => s.values), ...bands.map((b) => b.values)];
    const plot = new uPlot(
      {
        width: Math.min(el.current.clientWidth || 640, 900),
        height: 260,
        series: [
          {},
          ...series.map((s, i) => ({ label: s.name, stroke: PALETTE[i % PALETTE.length]!, width: 2, value: (_: uPlot, v: number | null) => (v == null ? '—' : formatPercent(v, 2)) })),
          ...bands.map((b) => b.opts),
        ],
        axes: [{}, { size: 64, values: (_: uPlot, ticks: number[]) => ticks.map((v) => formatPercent(v, 1)) }],
        // One point in time: a two-day window around it, not uPlot's default of years.
        // Shares in [0, 1]: from 0 to a little above the highest value (at least 1 %), so
        // an all-zero series does not get a scale of ±thousands of percent.
        scales: {
          x: xs.length === 1 ? { time: true, range: [xs[0]! - 86400, xs[0]! + 86400] } : { time: true },
          y: { range: (_u: uPlot, _min: number, max: number) => [0, Math.min(1, Math.max((max || 0) * 1.15, 0.01))] },
        },
      },
      data,
      el.current,
    );
    return () => plot.destroy();
  }, [xs, series]);
  return <div ref={el} class="chart" data-testid={testId} />;
}

interface Share {
  id: string;
  created_at: string;
  revoked_at: string | null;
}

/// Read-only share links of these results: none until an editor creates one; the link is
/// shown once; each can be revoked.
function Shares({ experimentId }: { experimentId: string }) {
  const state = useLoad(() => get<Share[]>(`/experiments/${experimentId}/shares`), [experimentId]);
  const [link, setLink] = useState<string | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  async function run(f: () => Promise<void>) {
    try {
      await f();
      setError(undefined);
      state.reload();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  }
  return (
    <div class="shares">
      <h2>{t('share.title')}</h2>
      <p class="muted">{t('share.lead')}</p>
      {error && <Problem error={error} />}
      {link && (
        <div class="alert alert-warn" role="status">
          <p>{t('share.shown_once')}</p>
          <p>
            <code class="secret" data-testid="share-link">{link}</code> <CopyButton text={link} />
          </p>
        </div>
      )}
      <Show state={state}>
        {(shares) => (
          <ul class="list">
            {shares.map((s) => (
              <li key={s.id}>
                {t('share.created', { when: formatDate(s.created_at) })}{' '}
                {s.revoked_at ? (
                  <span class="muted">({t('team.revoked')})</span>
                ) : (
                  <button type="button" class="btn btn-small" onClick={() => void run(() => api('DELETE', `/experiments/${experimentId}/shares/${s.id}`))}>
                    {t('team.revoke')}
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
      </Show>
      <button
        type="button"
        class="btn"
        onClick={() =>
          void run(async () => {
            const created = await api<{ token: string }>('POST', `/experiments/${experimentId}/shares`, {});
            setLink(`${window.location.origin}/app/share/${created.token}`);
          })
        }
      >
        {t('share.create')}
      </button>
    </div>
  );
}

/// The public, read-only view a share link opens (no account).
export function SharedResults({ token }: { token: string }) {
  const state = useLoad(() => get<ResultsView>(`/public/results/${encodeURIComponent(token)}`), [token]);
  return (
    <main>
      <p class="brand">{t('app.name')}</p>
      <Show state={state}>
        {(results) => (
          <section>
            <h1>
              {results.name} <StatusBadge status={results.status} />
            </h1>
            <p class="muted">
              {t('share.public_note')} {t('results.goal')}: {results.goal.name}
            </p>
            {results.analyses.map((a, i) => (
              <Analysis key={i} analysis={a} revenue={results.goal.metric === 'revenue'} />
            ))}
          </section>
        )}
      </Show>
    </main>
  );
}
