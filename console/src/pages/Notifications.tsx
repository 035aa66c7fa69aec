// The person's alert settings (GET/PUT /notifications/preferences): one switch per kind,
// saved as it changes, and the organisation's recent alerts (GET /alerts). Which alerts
// exist and when they fire: docs/alerts.md.
import { useState } from 'preact/hooks';
import { ApiError, api, get } from '../lib/api';
import { formatDate, formatPercent, t, type Key } from '../lib/i18n';
import { Problem, Show, useLoad } from '../lib/ui';

export type AlertKind = 'winner' | 'srm' | 'guardrail_harmed' | 'publish_failing';

interface Preference {
  kind: AlertKind;
  enabled: boolean;
  is_default: boolean;
  role_default: boolean;
}
interface Preferences {
  preferences: Preference[];
  email_verified: boolean;
}
interface AlertView {
  id: string;
  kind: AlertKind;
  subject_id: string;
  text: string;
  detail: AlertDetail;
  at: string;
}
/** The figures of an alert (the API's `detail`: alerts::conditions::Finding). */
interface Figures {
  arm?: { name: string };
  goal?: { name: string };
  lift?: number | null;
  p_value?: number;
  guardrail?: { margin: number };
}
interface AlertDetail extends Figures {
  experiment?: { id: string; name: string };
  site?: { id: string; name: string };
  srm_p_value?: number;
  harmed?: Figures[];
  failures?: number;
  last_error?: string | null;
}

export const KIND_LABEL: Record<AlertKind, Key> = {
  winner: 'alerts.kind.winner',
  srm: 'alerts.kind.srm',
  guardrail_harmed: 'alerts.kind.guardrail_harmed',
  publish_failing: 'alerts.kind.publish_failing',
};
const KIND_HINT: Record<AlertKind, Key> = {
  winner: 'alerts.hint.winner',
  srm: 'alerts.hint.srm',
  guardrail_harmed: 'alerts.hint.guardrail_harmed',
  publish_failing: 'alerts.hint.publish_failing',
};

export function Notifications() {
  const prefs = useLoad(() => get<Preferences>('/notifications/preferences'), []);
  const alerts = useLoad(() => get<AlertView[]>('/alerts?limit=50'), []);
  const [saved, setSaved] = useState<Preferences | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  /// Shows the change at once (the box follows the click), then the server's answer; a
  /// refused change goes back to what was saved.
  async function toggle(before: Preferences, kind: AlertKind, enabled: boolean) {
    setBusy(true);
    setSaved({
      ...before,
      preferences: before.preferences.map((p) => (p.kind === kind ? { ...p, enabled, is_default: false } : p)),
    });
    try {
      setSaved(await api<Preferences>('PUT', '/notifications/preferences', { [kind]: enabled }));
      setError(undefined);
    } catch (err) {
      setSaved(before);
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section>
      <h1>{t('alerts.title')}</h1>
      <p class="muted">{t('alerts.lead')}</p>
      {error && <Problem error={error} />}
      <Show state={prefs}>
        {(loaded) => {
          const current = saved ?? loaded;
          return (
            <form class="stack" onSubmit={(e) => e.preventDefault()} data-testid="alert-preferences">
              <fieldset class="card stack">
                <legend>{t('alerts.mine')}</legend>
                {!current.email_verified && (
                  <p class="alert alert-warn" data-testid="alerts-unverified">{t('alerts.unverified')}</p>
                )}
                {current.preferences.map((p) => (
                  <div key={p.kind}>
                    <label class="inline">
                      <input
                        type="checkbox"
                        name={p.kind}
                        checked={p.enabled}
                        disabled={busy}
                        onChange={(e) => void toggle(current, p.kind, (e.target as HTMLInputElement).checked)}
                      />
                      <strong>{t(KIND_LABEL[p.kind])}</strong>
                    </label>
                    <p class="muted">
                      {t(KIND_HINT[p.kind])}
                      {p.is_default && ` (${t('alerts.role_default')})`}
                    </p>
                  </div>
                ))}
                <p class="muted">{t('alerts.per_experiment')}</p>
              </fieldset>
            </form>
          );
        }}
      </Show>
      <h2>{t('alerts.recent')}</h2>
      <Show state={alerts}>
        {(list) =>
          list.length === 0 ? (
            <p class="muted">{t('alerts.none')}</p>
          ) : (
            <ul class="domains" data-testid="alert-list">
              {list.map((a) => {
                const href = a.detail.experiment
                  ? `/app/experiments/${a.detail.experiment.id}/results`
                  : `/app/sites/${a.subject_id}`;
                const name = a.detail.experiment?.name ?? a.detail.site?.name ?? a.subject_id;
                return (
                  <li key={a.id} class="domain" data-kind={a.kind}>
                    <span class={`badge ${a.kind === 'winner' ? 'badge-running' : 'badge-warn'}`}>{t(KIND_LABEL[a.kind])}</span>{' '}
                    <a href={href}>{name}</a> <span class="muted">· {formatDate(a.at)}</span>
                    <p class="muted" style={{ overflowWrap: 'anywhere' }} data-testid="alert-line">
                      <AlertLine alert={a} />
                    </p>
                  </li>
                );
              })}
            </ul>
          )
        }
      </Show>
    </section>
  );
}

type Mode = 'default' | 'follow' | 'mute';
interface ExperimentAlerts {
  mode: Mode;
  alerts: { kind: AlertKind; active: boolean; activations: number; receives: boolean }[];
}

/// The results page's "Alerts for this experiment" select (PUT /experiments/{id}/alerts).
export function ExperimentAlertsControl({ experimentId }: { experimentId: string }) {
  const state = useLoad(() => get<ExperimentAlerts>(`/experiments/${experimentId}/alerts`), [experimentId]);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  async function change(mode: Mode) {
    try {
      await api('PUT', `/experiments/${experimentId}/alerts`, { mode });
      setError(undefined);
      state.reload();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  }
  if (state.error || !state.data) return null;
  const data = state.data;
  const active = data.alerts.filter((a) => a.active);
  return (
    <div class="row" data-testid="experiment-alerts">
      <label class="inline">
        {t('alerts.for_experiment')}
        <select value={data.mode} onChange={(e) => void change((e.target as HTMLSelectElement).value as Mode)}>
          <option value="default">{t('alerts.mode.default')}</option>
          <option value="follow">{t('alerts.mode.follow')}</option>
          <option value="mute">{t('alerts.mode.mute')}</option>
        </select>
      </label>
      {active.map((a) => (
        <span key={a.kind} class="badge badge-warn">{t(KIND_LABEL[a.kind])}</span>
      ))}
      <a href="/app/notifications" class="muted">{t('alerts.settings_link')}</a>
      {error && <Problem error={error} />}
    </div>
  );
}

const pValue = (p: number | undefined) => (p === undefined ? '–' : p < 0.001 ? '< 0.001' : `= ${p.toFixed(3)}`);
const signed = (x: number | null | undefined) => (x == null ? '–' : `${x > 0 ? '+' : ''}${formatPercent(x)}`);

/** An alert's one line in the console's language, from its figures (`detail`); the
 *  server's English `text` (the chat tools' line) when the figures are not there. */
function AlertLine({ alert }: { alert: AlertView }) {
  const d = alert.detail;
  switch (alert.kind) {
    case 'winner':
      if (!d.arm || !d.goal) break;
      return <>{t('alerts.line.winner', { arm: d.arm.name, goal: d.goal.name, lift: signed(d.lift), p: pValue(d.p_value) })}</>;
    case 'srm':
      if (d.srm_p_value === undefined) break;
      return <>{t('alerts.line.srm', { p: pValue(d.srm_p_value) })}</>;
    case 'guardrail_harmed': {
      const first = d.harmed?.[0];
      if (!first?.arm || !first.goal) break;
      const line = t('alerts.line.guardrail_harmed', {
        arm: first.arm.name,
        goal: first.goal.name,
        lift: signed(first.lift),
        margin: first.guardrail ? formatPercent(first.guardrail.margin) : '–',
        p: pValue(first.p_value),
      });
      const more = (d.harmed?.length ?? 0) > 1 ? ` ${t('alerts.line.more', { n: (d.harmed?.length ?? 1) - 1 })}` : '';
      return <>{line + more}</>;
    }
    case 'publish_failing':
      if (d.failures === undefined) break;
      return (
        <>
          {d.failures === 1 ? t('alerts.line.publish_failing_once') : t('alerts.line.publish_failing', { n: d.failures })}
          {d.last_error && (
            <>
              {' '}
              {t('alerts.line.last_error')} <span lang="en">{d.last_error}</span>
            </>
          )}
        </>
      );
  }
  return <span lang="en">{alert.text}</span>;
}
