// The results page's funnels panel (issue 16; docs/funnels.md): the experiment's funnels,
// each with a chart (one bar per arm at each step, the reach from entry as a percentage,
// the drop-off since the previous step) and a table comparing each arm with the control
// at each step (difference of reach, its 95 % interval, the Holm-adjusted p-value); a
// form to create a funnel from the experiment's goals, in order, with a window.
//
// The strings live here (English and Spanish, chosen like the catalogue's) so the panel
// stays one file, as the segments panel does.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, get, post } from '../lib/api';
import { formatNumber, formatPercent, useLang, type Lang } from '../lib/i18n';
import { Problem, Show, useLoad } from '../lib/ui';

interface Interval {
  lower: number;
  upper: number;
}
interface StepResult {
  goal_id: string;
  reached: number;
  rate_from_entry: number | null;
  rate_interval: Interval | null;
  rate_from_previous: number | null;
  drop_off: number;
  drop_off_rate: number | null;
  comparison: {
    difference: number;
    interval: Interval;
    z: number;
    p_value: number;
    p_value_holm: number;
  } | null;
}
interface ArmResult {
  id: string;
  name: string;
  is_control: boolean;
  entered: number;
  steps: StepResult[];
}
export interface FunnelView {
  id: string;
  name: string;
  window_seconds: number;
  steps: { goal_id: string; goal_name: string }[];
}
export interface FunnelResults {
  funnel: FunnelView;
  analyses: { scope: string; element_name: string | null; arms: ArmResult[] }[];
  complete_from: string | null;
  warnings: { code: string; message: string }[];
  computed_at: string;
}
/// The answer (202) while a funnel too large for a request is computed in the background.
interface FunnelComputing {
  status: 'computing';
  requested_at: string;
  message: string;
}
/// How often the panel asks again while its funnel is computed in the background.
const POLL_MS = 5000;
interface ExperimentGoals {
  goals: { id: string; name: string }[];
}

const STRINGS: Record<Lang, Record<string, string>> = {
  en: {
    title: 'Funnels',
    main_effect: 'main effect (its variants pooled over the other elements)',
    intro: 'Visitors who completed the steps in order, within the window after they saw the experiment. For exploring: the decision is the overall result above.',
    none: 'No funnel yet.',
    create: 'New funnel',
    name: 'Name',
    step: 'Step',
    add_step: 'Add a step',
    remove_step: 'Remove the last step',
    window: 'Window (hours)',
    save: 'Create the funnel',
    delete: 'Delete',
    choose: 'Choose a goal',
    need_goals: 'A funnel needs at least two goals on the experiment.',
    arm: 'Variant',
    entered: 'Entered',
    reached: 'Reached',
    from_previous: 'From previous step',
    drop_off: 'Drop-off',
    difference: 'Difference vs control (95 % CI)',
    p: 'p (Holm)',
    control: 'control',
    window_is: 'window',
    chart: 'Funnel chart',
    exploratory: 'One look at the data, Holm-adjusted over the steps and arms: for exploring, not deciding.',
    small_arms: 'An arm has fewer than 100 visitors: its rates are imprecise.',
    raw_events_expired: 'Raw events past the retention are gone: the funnel is complete for visitors who entered from',
    raw_events_capped: 'The site reached its daily raw-event quota on some of these days: the funnel undercounts there (the results above count every event).',
    computing: 'This funnel takes too long to compute while you wait: it is being computed in the background and appears here when it is ready.',
    computed_in_background: 'A large funnel, computed in the background at',
  },
  es: {
    title: 'Embudos',
    main_effect: 'efecto principal (sus variantes sumadas sobre los demás elementos)',
    intro: 'Visitantes que completaron los pasos en orden, dentro de la ventana tras ver el experimento. Para explorar: la decisión es el resultado global de arriba.',
    none: 'Aún no hay embudos.',
    create: 'Nuevo embudo',
    name: 'Nombre',
    step: 'Paso',
    add_step: 'Añadir un paso',
    remove_step: 'Quitar el último paso',
    window: 'Ventana (horas)',
    save: 'Crear el embudo',
    delete: 'Eliminar',
    choose: 'Elige un objetivo',
    need_goals: 'Un embudo necesita al menos dos objetivos en el experimento.',
    arm: 'Variante',
    entered: 'Entraron',
    reached: 'Llegaron',
    from_previous: 'Desde el paso anterior',
    drop_off: 'Abandono',
    difference: 'Diferencia con el control (IC 95 %)',
    p: 'p (Holm)',
    control: 'control',
    window_is: 'ventana',
    chart: 'Gráfico del embudo',
    exploratory: 'Una sola mirada a los datos, ajustada por Holm sobre pasos y variantes: para explorar, no para decidir.',
    small_arms: 'Una variante tiene menos de 100 visitantes: sus tasas son imprecisas.',
    raw_events_expired: 'Los eventos pasada la retención ya no están: el embudo está completo para los visitantes que entraron desde el',
    raw_events_capped: 'El sitio alcanzó su cuota diaria de eventos en bruto algunos de estos días: el embudo se queda corto ahí (los resultados de arriba cuentan todos los eventos).',
    computing: 'Este embudo tarda demasiado en calcularse mientras esperas: se está calculando en segundo plano y aparecerá aquí cuando esté listo.',
    computed_in_background: 'Un embudo grande, calculado en segundo plano el',
  },
};

const MAX_STEPS = 8;
/// One colour per arm, from the console's palette (control first).
const COLOURS = ['var(--muted)', 'var(--accent)', '#b45309', '#7c3aed', '#0f766e', '#be123c'];

export function Funnels({ experimentId }: { experimentId: string }) {
  const lang = useLang();
  const s = STRINGS[lang];
  const funnels = useLoad(() => get<FunnelView[]>(`/experiments/${experimentId}/funnels`), [experimentId]);
  const experiment = useLoad(() => get<ExperimentGoals>(`/experiments/${experimentId}`), [experimentId]);
  return (
    <section class="funnels" data-testid="funnels">
      <h2>{s.title}</h2>
      <p class="muted">{s.intro}</p>
      <Show state={funnels}>
        {(list) =>
          list.length === 0 ? (
            <p class="muted">{s.none}</p>
          ) : (
            list.map((f) => <FunnelPanel key={f.id} experimentId={experimentId} funnel={f} s={s} onDeleted={funnels.reload} />)
          )
        }
      </Show>
      <Show state={experiment}>
        {(x) => <FunnelForm experimentId={experimentId} goals={x.goals} s={s} onCreated={funnels.reload} />}
      </Show>
    </section>
  );
}

function FunnelPanel({
  experimentId,
  funnel,
  s,
  onDeleted,
}: {
  experimentId: string;
  funnel: FunnelView;
  s: Record<string, string>;
  onDeleted: () => void;
}) {
  const lang = useLang();
  const results = useLoad(
    () => get<FunnelResults | FunnelComputing>(`/experiments/${experimentId}/funnels/${funnel.id}/results`),
    [experimentId, funnel.id],
  );
  // While the background computes it, ask again every few seconds (each ask is a read of
  // one row, not a computation).
  const computing = results.data !== undefined && 'status' in results.data;
  useEffect(() => {
    if (!computing) return;
    const timer = setTimeout(results.reload, POLL_MS);
    return () => clearTimeout(timer);
  }, [computing, results.data, results.reload]);
  const [error, setError] = useState<ApiError | null>(null);
  const remove = async () => {
    try {
      await api('DELETE', `/experiments/${experimentId}/funnels/${funnel.id}`);
      onDeleted();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
    }
  };
  return (
    <article class="funnel" data-testid="funnel" data-funnel={funnel.name}>
      <h3>
        {funnel.name} <small class="muted">({s.window_is} {formatWindow(funnel.window_seconds)})</small>{' '}
        <button type="button" class="btn btn-small" onClick={remove} data-testid="funnel-delete">
          {s.delete}
        </button>
      </h3>
      {error && <Problem error={error} />}
      <Show state={results}>
        {(r) =>
          'status' in r ? (
            <p class="muted" role="status" data-testid="funnel-computing">
              {s.computing}
            </p>
          ) : (
            <>
              {r.warnings.map((w) => (
                <p
                  key={w.code}
                  class={w.code === 'exploratory' || w.code === 'computed_in_background' ? 'muted' : 'alert'}
                  role="note"
                  data-testid={`funnel-warning-${w.code}`}
                >
                  {s[w.code] ?? w.message}
                  {w.code === 'raw_events_expired' && r.complete_from && ` ${r.complete_from}.`}
                  {w.code === 'computed_in_background' && ` ${new Date(r.computed_at).toLocaleString(lang)}.`}
                </p>
              ))}
              {r.analyses.map((a, i) => (
                <div key={i}>
                  {a.element_name && (
                    <h4>
                      {a.element_name}
                      {a.scope === 'main_effect' && <small class="muted"> · {s.main_effect}</small>}
                    </h4>
                  )}
                  <FunnelChart funnel={r.funnel} arms={a.arms} s={s} />
                  <FunnelTable funnel={r.funnel} arms={a.arms} s={s} />
                </div>
              ))}
            </>
          )
        }
      </Show>
    </article>
  );
}

function formatWindow(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  return `${Math.round(seconds / 60)} min`;
}

function pct(x: number | null): string {
  return x === null ? '–' : formatPercent(x);
}

/// Bars per step (one per arm, height = reach from entry), the percentage above each bar
/// and the drop-off from the previous step under it.
function FunnelChart({ funnel, arms, s }: { funnel: FunnelView; arms: ArmResult[]; s: Record<string, string> }) {
  const barW = 36;
  const gap = 28;
  const plotH = 160;
  const top = 24;
  const groupW = arms.length * barW + gap;
  const width = Math.max(funnel.steps.length * groupW + gap, 240);
  // The legend wraps into rows that fit the chart's width (four or more arms on a
  // two-step funnel would otherwise run past its right edge).
  const legendW = 160;
  const perRow = Math.max(1, Math.floor((width - gap) / legendW));
  const legendRows = Math.ceil(arms.length / perRow);
  const height = top + plotH + 48 + legendRows * 16;
  return (
    <div class="chart">
      <svg
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${s.chart}: ${funnel.name}`}
        data-testid="funnel-chart"
      >
        <line x1={gap / 2} x2={width - gap / 2} y1={top + plotH} y2={top + plotH} stroke="currentColor" stroke-opacity="0.3" />
        {funnel.steps.map((step, k) => {
          const x0 = gap + k * groupW;
          return (
            <g key={step.goal_id} data-step={k}>
              {arms.map((arm, i) => {
                const st = arm.steps[k];
                const rate = st?.rate_from_entry ?? 0;
                const h = Math.max(rate * plotH, rate > 0 ? 1 : 0);
                const x = x0 + i * barW;
                return (
                  <g key={arm.id} data-arm={arm.name}>
                    <rect
                      x={x + 3}
                      y={top + plotH - h}
                      width={barW - 6}
                      height={h}
                      style={{ fill: COLOURS[i % COLOURS.length] }}
                      data-testid="funnel-bar"
                      data-rate={st?.rate_from_entry ?? ''}
                    >
                      <title>
                        {arm.name}: {formatNumber(st?.reached ?? 0)} / {formatNumber(arm.entered)} ({pct(st?.rate_from_entry ?? null)})
                      </title>
                    </rect>
                    <text x={x + barW / 2} y={top + plotH - h - 4} text-anchor="middle" font-size="10" data-testid="funnel-bar-label">
                      {pct(st?.rate_from_entry ?? null)}
                    </text>
                    <text x={x + barW / 2} y={top + plotH + 14} text-anchor="middle" font-size="9" fill="currentColor" fill-opacity="0.7">
                      −{formatNumber(st?.drop_off ?? 0)}
                    </text>
                  </g>
                );
              })}
              <text x={x0 + (arms.length * barW) / 2} y={top + plotH + 32} text-anchor="middle" font-size="11" font-weight="600">
                {k + 1}. {step.goal_name}
              </text>
            </g>
          );
        })}
        <g transform={`translate(${gap / 2}, ${top + plotH + 52})`}>
          {arms.map((arm, i) => (
            <g key={arm.id} transform={`translate(${(i % perRow) * legendW}, ${Math.floor(i / perRow) * 16})`} data-testid="funnel-legend-item">
              <rect x={0} y={-9} width={10} height={10} style={{ fill: COLOURS[i % COLOURS.length] }} />
              <text x={14} y={0} font-size="11">
                {arm.name}
                {arm.is_control ? ` (${s.control})` : ''}
              </text>
            </g>
          ))}
        </g>
      </svg>
    </div>
  );
}

/// A difference of proportions in percentage points, one decimal, in the page's language.
function points(x: number, lang: Lang, signed = false): string {
  return new Intl.NumberFormat(lang, {
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
    signDisplay: signed ? 'exceptZero' : 'auto',
  }).format(x * 100);
}

function FunnelTable({ funnel, arms, s }: { funnel: FunnelView; arms: ArmResult[]; s: Record<string, string> }) {
  const lang = useLang();
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={funnel.name}>
      <table class="results" data-testid="funnel-table">
        <thead>
          <tr>
            <th>{s.step}</th>
            <th>{s.arm}</th>
            <th>{s.reached}</th>
            <th>{s.from_previous}</th>
            <th>{s.drop_off}</th>
            <th>{s.difference}</th>
            <th>{s.p}</th>
          </tr>
        </thead>
        <tbody>
          {funnel.steps.flatMap((step, k) =>
            arms.map((arm, i) => {
              const st = arm.steps[k];
              const c = st?.comparison;
              return (
                <tr key={`${k}-${arm.id}`} data-step={k} data-arm={arm.name}>
                  {i === 0 && (
                    <th rowSpan={arms.length}>
                      {k + 1}. {step.goal_name}
                    </th>
                  )}
                  <td>
                    {arm.name}
                    {arm.is_control && <small class="muted"> ({s.control})</small>}
                  </td>
                  <td data-testid="funnel-reached">
                    {formatNumber(st?.reached ?? 0)} / {formatNumber(arm.entered)} ({pct(st?.rate_from_entry ?? null)})
                  </td>
                  <td>{pct(st?.rate_from_previous ?? null)}</td>
                  <td>
                    {formatNumber(st?.drop_off ?? 0)} ({pct(st?.drop_off_rate ?? null)})
                  </td>
                  <td>
                    {c ? `${points(c.difference, lang, true)} pp (${points(c.interval.lower, lang)} – ${points(c.interval.upper, lang)})` : '–'}
                  </td>
                  <td>{c ? <span title={`p = ${c.p_value.toPrecision(3)}`}>{c.p_value_holm.toPrecision(3)}</span> : ''}</td>
                </tr>
              );
            }),
          )}
        </tbody>
      </table>
    </div>
  );
}

function FunnelForm({
  experimentId,
  goals,
  s,
  onCreated,
}: {
  experimentId: string;
  goals: { id: string; name: string }[];
  s: Record<string, string>;
  onCreated: () => void;
}) {
  const [name, setName] = useState('');
  const [steps, setSteps] = useState<string[]>(['', '']);
  const [hours, setHours] = useState('168');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  if (goals.length < 2) return <p class="muted">{s.need_goals}</p>;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await post(`/experiments/${experimentId}/funnels`, {
        name,
        steps,
        window_seconds: Math.round(Number(hours) * 3600),
      });
      setName('');
      setSteps(['', '']);
      onCreated();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="stack" onSubmit={submit} data-testid="funnel-form">
      <h3>{s.create}</h3>
      <label>
        {s.name}{' '}
        <input value={name} maxLength={100} required onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} data-testid="funnel-name" />
      </label>
      {steps.map((goal, i) => (
        <label key={i}>
          {s.step} {i + 1}{' '}
          <select
            value={goal}
            required
            data-testid={`funnel-step-${i}`}
            onChange={(e) => {
              const next = [...steps];
              next[i] = (e.currentTarget as HTMLSelectElement).value;
              setSteps(next);
            }}
          >
            <option value="">{s.choose}</option>
            {goals.map((g) => (
              <option key={g.id} value={g.id}>
                {g.name}
              </option>
            ))}
          </select>
        </label>
      ))}
      <p class="row">
        <button
          type="button"
          class="btn btn-small"
          disabled={steps.length >= Math.min(MAX_STEPS, goals.length)}
          onClick={() => setSteps([...steps, ''])}
          data-testid="funnel-add-step"
        >
          {s.add_step}
        </button>
        <button type="button" class="btn btn-small" disabled={steps.length <= 2} onClick={() => setSteps(steps.slice(0, -1))}>
          {s.remove_step}
        </button>
      </p>
      <label>
        {s.window}{' '}
        <input
          type="number"
          min="0.02"
          max="2160"
          step="any"
          value={hours}
          onInput={(e) => setHours((e.currentTarget as HTMLInputElement).value)}
          data-testid="funnel-window"
        />
      </label>
      {error && <Problem error={error} />}
      <button type="submit" class="btn" disabled={busy} data-testid="funnel-create">
        {s.save}
      </button>
    </form>
  );
}
