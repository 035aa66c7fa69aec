// The results page's segments panel (issue 16): the experiment's figures per value of one
// dimension (country, device, browser, traffic source, new or returning visitor), from
// `GET /api/v1/experiments/{id}/segments`, with the server's warnings shown above the
// tables. Segments are for exploring: the page says so, and every p-value shown is the
// Holm-adjusted one next to the raw one.
//
// The strings live here (English and Spanish, chosen like the catalogue's) so the panel
// stays one file; `lib/i18n.ts` keeps the page's own.
import { useState } from 'preact/hooks';
import { get } from '../lib/api';
import { countryName, formatAmount, formatLift, formatNumber, formatPercent, useLang, type Lang } from '../lib/i18n';
import { Show, useLoad } from '../lib/ui';

type Dimension = 'country' | 'device' | 'browser' | 'source' | 'visitor_type';
const DIMENSIONS: Dimension[] = ['device', 'country', 'browser', 'source', 'visitor_type'];

interface Interval {
  lower: number;
  upper: number;
}
interface Comparison {
  lift: { relative: number; absolute: number; interval: Interval | null } | null;
  p_value: number | null;
  p_value_holm: number | null;
  small: boolean;
}
interface SegmentArm {
  visitors: number;
  converters: number;
  rate: number | null;
  rate_interval: Interval | null;
  revenue_per_visitor: number | null;
  comparison: Comparison | null;
}
interface Segment {
  value: string;
  visitors: number;
  arms: SegmentArm[];
  srm: { p_value: number; mismatch: boolean } | null;
  small: boolean;
}
export interface SegmentsView {
  dimension: Dimension;
  goal: { id: string; name: string; metric: string };
  analyses: {
    scope: string;
    element_name: string | null;
    subjects: { id: string; name: string; is_control: boolean }[];
    segments: Segment[];
  }[];
  warnings: { code: string; message: string; values: string[] }[];
}

/// How a segment's value reads: a country's name, or the class's name in the page's
/// language (the wire name when it has none, e.g. a class a newer server added).
const VALUE_LABELS: Record<Lang, Record<string, string>> = {
  en: {
    desktop: 'Desktop', mobile: 'Mobile', tablet: 'Tablet', other: 'Other', unknown: 'Unknown',
    chrome: 'Chrome', safari: 'Safari', firefox: 'Firefox', edge: 'Edge', samsung: 'Samsung Internet', opera: 'Opera',
    direct: 'Direct', search: 'Search', social: 'Social', email: 'Email', paid: 'Paid', referral: 'Referral', internal: 'Internal',
    new: 'New', returning: 'Returning',
  },
  es: {
    desktop: 'Escritorio', mobile: 'Móvil', tablet: 'Tableta', other: 'Otro', unknown: 'Desconocido',
    chrome: 'Chrome', safari: 'Safari', firefox: 'Firefox', edge: 'Edge', samsung: 'Samsung Internet', opera: 'Opera',
    direct: 'Directo', search: 'Buscador', social: 'Redes sociales', email: 'Correo', paid: 'Pago', referral: 'Otro sitio', internal: 'Interno',
    new: 'Nuevo', returning: 'Recurrente',
  },
};

function valueLabel(dimension: Dimension, value: string, lang: Lang): string {
  if (dimension === 'country' && /^[A-Z]{2}$/.test(value)) return `${countryName(value)} (${value})`;
  return VALUE_LABELS[lang][value] ?? value;
}

const STRINGS: Record<Lang, Record<string, string>> = {
  en: {
    title: 'Segments',
    intro: 'Results per value of one dimension, for exploring. The decision is the overall result above.',
    dimension: 'Dimension',
    country: 'Country',
    device: 'Device',
    browser: 'Browser',
    source: 'Traffic source',
    visitor_type: 'New or returning',
    value: 'Value',
    arm: 'Variant',
    visitors: 'Visitors',
    rate: 'Rate',
    rpv: 'Revenue / visitor',
    lift: 'Lift (95 % CI)',
    p: 'p (Holm)',
    srm: 'SRM',
    srm_flag: 'mismatch',
    small: 'small segment: no p-value',
    none: 'No segment has visitors yet.',
    control: 'control',
    main_effect: 'main effect (its variants pooled over the other elements)',
    multiple_comparisons: 'Many segments are compared: some differ by chance. Use them to explore; decide on the overall result.',
    small_segments: 'Fewer than 100 visitors in an arm: no p-value is shown for',
    sample_ratio_mismatch: 'The traffic split does not match the allocation in',
    no_srm_for_bandits: 'A bandit moves its traffic over time: no per-segment SRM check.',
  },
  es: {
    title: 'Segmentos',
    intro: 'Resultados por valor de una dimensión, para explorar. La decisión es el resultado global de arriba.',
    dimension: 'Dimensión',
    country: 'País',
    device: 'Dispositivo',
    browser: 'Navegador',
    source: 'Origen del tráfico',
    visitor_type: 'Nuevo o recurrente',
    value: 'Valor',
    arm: 'Variante',
    visitors: 'Visitantes',
    rate: 'Tasa',
    rpv: 'Ingresos / visitante',
    lift: 'Mejora (IC 95 %)',
    p: 'p (Holm)',
    srm: 'SRM',
    srm_flag: 'desajuste',
    small: 'segmento pequeño: sin valor p',
    none: 'Aún no hay visitantes en ningún segmento.',
    control: 'control',
    main_effect: 'efecto principal (sus variantes sumadas sobre los demás elementos)',
    multiple_comparisons: 'Se comparan muchos segmentos: algunos difieren por azar. Úsalos para explorar; decide con el resultado global.',
    small_segments: 'Menos de 100 visitantes en una variante: no se muestra valor p en',
    sample_ratio_mismatch: 'El reparto del tráfico no coincide con la asignación en',
    no_srm_for_bandits: 'Un bandit mueve su tráfico con el tiempo: sin comprobación SRM por segmento.',
  },
};

export function Segments({ experimentId }: { experimentId: string }) {
  const lang = useLang();
  const s = STRINGS[lang];
  const [dimension, setDimension] = useState<Dimension>('device');
  const state = useLoad(
    () => get<SegmentsView>(`/experiments/${experimentId}/segments?dimension=${dimension}`),
    [experimentId, dimension],
  );
  return (
    <section class="segments" data-testid="segments">
      <h2>{s.title}</h2>
      <p class="muted">{s.intro}</p>
      <label>
        {s.dimension}{' '}
        <select
          data-testid="segment-dimension"
          value={dimension}
          onChange={(e) => setDimension((e.currentTarget as HTMLSelectElement).value as Dimension)}
        >
          {DIMENSIONS.map((d) => (
            <option key={d} value={d}>
              {s[d]}
            </option>
          ))}
        </select>
      </label>
      <Show state={state}>
        {(view) => (
          <>
            {view.warnings.map((w) => (
              <p key={w.code} class="alert" role="note" data-testid={`segment-warning-${w.code}`}>
                {s[w.code] ?? w.message}
                {w.values.length > 0 && ` ${w.values.map((v) => valueLabel(view.dimension, v, lang)).join(', ')}`}
              </p>
            ))}
            {view.analyses.every((a) => a.segments.length === 0) ? (
              <p class="muted">{s.none}</p>
            ) : (
              view.analyses.map((a, i) => (
                <SegmentTable
                  key={i}
                  analysis={a}
                  revenue={view.goal.metric === 'revenue'}
                  s={s}
                  label={(value) => valueLabel(view.dimension, value, lang)}
                />
              ))
            )}
          </>
        )}
      </Show>
    </section>
  );
}

function SegmentTable({
  analysis,
  revenue,
  s,
  label,
}: {
  analysis: SegmentsView['analyses'][number];
  revenue: boolean;
  s: Record<string, string>;
  label: (value: string) => string;
}) {
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={s.title}>
      {analysis.element_name && (
        <h3>
          {analysis.element_name}
          {analysis.scope === 'main_effect' && <small class="muted"> · {s.main_effect}</small>}
        </h3>
      )}
      <table class="results" data-testid="segments-table">
        <thead>
          <tr>
            <th>{s.value}</th>
            <th>{s.arm}</th>
            <th>{s.visitors}</th>
            <th>{s.rate}</th>
            {revenue && <th>{s.rpv}</th>}
            <th>{s.lift}</th>
            <th>{s.p}</th>
            <th>{s.srm}</th>
          </tr>
        </thead>
        <tbody>
          {analysis.segments.flatMap((seg) =>
            seg.arms.map((cell, i) => (
              <tr key={`${seg.value}-${i}`} data-segment={seg.value}>
                {i === 0 && <th rowSpan={seg.arms.length}>{label(seg.value)}</th>}
                <td>
                  {analysis.subjects[i]?.name}
                  {analysis.subjects[i]?.is_control && <small class="muted"> ({s.control})</small>}
                </td>
                <td>{formatNumber(cell.visitors)}</td>
                <td>{cell.rate === null ? '–' : formatPercent(cell.rate)}</td>
                {revenue && <td>{cell.revenue_per_visitor === null ? '–' : formatAmount(cell.revenue_per_visitor)}</td>}
                <td>{lift(cell.comparison)}</td>
                <td>
                  {cell.comparison?.small ? (
                    <small class="muted">{s.small}</small>
                  ) : cell.comparison?.p_value_holm != null ? (
                    <span title={`p = ${cell.comparison.p_value?.toPrecision(3)}`}>{cell.comparison.p_value_holm.toPrecision(3)}</span>
                  ) : (
                    ''
                  )}
                </td>
                {i === 0 && (
                  <td rowSpan={seg.arms.length} data-testid="segment-srm">
                    {seg.srm?.mismatch ? <strong class="bad">{s.srm_flag}</strong> : seg.srm ? seg.srm.p_value.toPrecision(2) : '–'}
                  </td>
                )}
              </tr>
            )),
          )}
        </tbody>
      </table>
    </div>
  );
}

function lift(c: Comparison | null): string {
  if (!c?.lift) return '–';
  const ci = c.lift.interval;
  const rel = formatLift(c.lift.relative);
  return ci ? `${rel} (${formatPercent(ci.lower)} – ${formatPercent(ci.upper)})` : rel;
}
