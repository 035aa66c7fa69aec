import { useState } from 'preact/hooks';
import { ApiError, get } from '../lib/api';
import { formatNumber, formatPercent, t } from '../lib/i18n';
import { Problem, fieldError } from '../lib/ui';

interface Plan {
  treatment_rate: number;
  comparisons: number;
  alpha_per_comparison: number;
  fixed_horizon: { visitors_per_arm: number; visitors_total: number; days: number; power: number };
  always_valid: { visitors_per_arm: number; visitors_total: number; days: number; power: number; power_at_fixed_horizon: number };
}

/// The sample-size and duration calculator: the engine's plan (GET /planning/sample-size).
export function Planning() {
  const [plan, setPlan] = useState<Plan | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  async function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const q = new URLSearchParams({
      baseline_rate: String(Number(form.get('baseline')) / 100),
      minimum_detectable_effect: String(Number(form.get('mde')) / 100),
      visitors_per_day: String(form.get('traffic') ?? ''),
      arms: String(form.get('arms') ?? '2'),
      power: String(Number(form.get('power')) / 100),
    });
    try {
      setPlan(await get<Plan>(`/planning/sample-size?${q}`));
      setError(undefined);
    } catch (err) {
      setPlan(undefined);
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  }
  return (
    <section>
      <h1>{t('planning.title')}</h1>
      <p class="muted">{t('planning.lead')}</p>
      <form class="card grid-form" onSubmit={submit}>
        <label>
          {t('planning.baseline')}
          <input name="baseline" type="number" step="any" min="0" max="100" value="5" required aria-describedby="baseline-error" />
          <small id="baseline-error" class="field-error">{fieldError(error, 'baseline_rate')}</small>
        </label>
        <label>
          {t('planning.mde')}
          <input name="mde" type="number" step="any" value="10" required aria-describedby="mde-error" />
          <small id="mde-error" class="field-error">{fieldError(error, 'minimum_detectable_effect')}</small>
        </label>
        <label>
          {t('planning.traffic')}
          <input name="traffic" type="number" min="1" step="1" value="1000" required aria-describedby="traffic-error" />
          <small id="traffic-error" class="field-error">{fieldError(error, 'visitors_per_day')}</small>
        </label>
        <label>
          {t('planning.arms')}
          <input name="arms" type="number" min="2" step="1" value="2" required />
        </label>
        <label>
          {t('planning.power')}
          <input name="power" type="number" min="1" max="99" step="any" value="80" required />
        </label>
        <button type="submit" class="btn btn-primary">{t('planning.compute')}</button>
      </form>
      {error && error.errors.length === 0 && <Problem error={error} />}
      {plan && (
        <div class="plan" data-testid="plan">
          <p>{t('planning.effect', { to: formatPercent(plan.treatment_rate, 2) })}</p>
          <div class="table-wrap" tabIndex={0} role="region" aria-label={t('planning.title')}>
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('planning.test')}</th>
                  <th scope="col">{t('planning.per_arm')}</th>
                  <th scope="col">{t('planning.total')}</th>
                  <th scope="col">{t('planning.days')}</th>
                  <th scope="col">{t('planning.power_col')}</th>
                </tr>
              </thead>
              <tbody>
                <tr data-test="always_valid">
                  <th scope="row">{t('planning.always_valid')}</th>
                  <td>{formatNumber(plan.always_valid.visitors_per_arm)}</td>
                  <td>{formatNumber(plan.always_valid.visitors_total)}</td>
                  <td data-field="days">{formatNumber(plan.always_valid.days)}</td>
                  <td>{formatPercent(plan.always_valid.power)}</td>
                </tr>
                <tr data-test="fixed_horizon">
                  <th scope="row">{t('planning.fixed')}</th>
                  <td>{formatNumber(plan.fixed_horizon.visitors_per_arm)}</td>
                  <td>{formatNumber(plan.fixed_horizon.visitors_total)}</td>
                  <td data-field="days">{formatNumber(plan.fixed_horizon.days)}</td>
                  <td>{formatPercent(plan.fixed_horizon.power)}</td>
                </tr>
              </tbody>
            </table>
          </div>
          <p class="muted">
            {t('planning.explain', {
              power: formatPercent(plan.always_valid.power_at_fixed_horizon),
              comparisons: plan.comparisons,
              alpha: formatPercent(plan.alpha_per_comparison, 2),
            })}
          </p>
        </div>
      )}
    </section>
  );
}
