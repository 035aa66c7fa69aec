import type { AnalysisView, Interval } from '../lib/api';
import { formatLift, formatPercent, t } from '../lib/i18n';

// The variance-reduced comparison the results API adds to an analysis over arms
// (`analyses[].variance_reduction`, docs/api.md "Variance reduction in the results"):
// per variant the CUPED-adjusted relative lift, its 95 % interval, how much smaller its
// variance is than unadjusted, and its always-valid p-value. Shown beside the
// unadjusted table, which (and the recommendation) it does not change.

interface CupedComparison {
  relative_lift: number | null;
  relative_interval: Interval | null;
  variance_reduction: number;
  p_value: number;
  reject: boolean;
}

interface VarianceReductionView {
  method: string;
  result: {
    strata: { name: string; members: string[]; weight: number }[];
    comparisons: (CupedComparison | null)[];
  } | null;
  error?: string | null;
}

export function VarianceReduction({ analysis }: { analysis: AnalysisView }) {
  const view = (analysis as AnalysisView & { variance_reduction?: VarianceReductionView | null }).variance_reduction;
  const r = view?.result;
  if (!r || !r.comparisons.some((c) => c)) return null;
  return (
    <div class="variance-reduction" data-testid="variance-reduction">
      <h3>{t('results.cuped')}</h3>
      <p class="muted">{t('results.cuped_explain', { strata: r.strata.map((s) => s.name).join(', ') })}</p>
      <ul>
        {r.comparisons.map((c, i) =>
          c ? (
            <li key={analysis.subjects[i]?.id ?? i} data-arm={analysis.subjects[i]?.name} data-reject={String(c.reject)}>
              <strong>{analysis.subjects[i]?.name}</strong>{' '}
              {t('results.cuped_line', {
                lift: c.relative_lift === null ? '—' : formatLift(c.relative_lift),
                lower: c.relative_interval ? formatLift(c.relative_interval.lower) : '—',
                upper: c.relative_interval ? formatLift(c.relative_interval.upper) : '—',
                variance: formatLift(-c.variance_reduction),
                p: c.p_value.toPrecision(3),
              })}
            </li>
          ) : null,
        )}
      </ul>
      {/* The width of the interval shrinks by √(1 − reduction): said once, in percent. */}
      <p class="muted">
        {t('results.cuped_width', {
          width: formatPercent(
            Math.max(...r.comparisons.map((c) => (c ? 1 - Math.sqrt(Math.max(0, 1 - c.variance_reduction)) : 0))),
          ),
        })}
      </p>
    </div>
  );
}
