// Outgoing webhooks (admins and owners): the organisation's endpoints, a form to add one
// (its signing secret is shown once, with a copy button), enable/disable, rotate the
// secret, send a test, delete, and each webhook's delivery log. The API is
// control-plane/src/http/webhooks.rs; how deliveries are signed is in docs/alerts.md.
import { useState } from 'preact/hooks';
import { ApiError, api, get, post } from '../lib/api';
import { formatDate, t, type Key } from '../lib/i18n';
import { CopyButton, Problem, Show, fieldError, useLoad } from '../lib/ui';

type Kind = 'winner' | 'srm' | 'guardrail_harmed' | 'publish_failing';
const KINDS: Kind[] = ['winner', 'srm', 'guardrail_harmed', 'publish_failing'];

interface WebhookOut {
  id: string;
  url: string;
  description: string;
  kinds: Kind[];
  enabled: boolean;
  secret_version: number;
  created_at: string;
  disabled_at: string | null;
}
interface DeliveryOut {
  id: string;
  event_id: string;
  type: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  next_attempt_at: string | null;
}

function asError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, 'error', String(err));
}

const BADGE: Record<DeliveryOut['status'], string> = { delivered: 'badge-completed', pending: 'badge-draft', failed: 'badge-warn' };

export function Webhooks({ canAdmin }: { canAdmin: boolean }) {
  const hooks = useLoad(() => (canAdmin ? get<WebhookOut[]>('/webhooks') : Promise.resolve([])), [canAdmin]);
  const [shown, setShown] = useState<{ label: string; secret: string } | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [formError, setFormError] = useState<ApiError | undefined>(undefined);
  const [open, setOpen] = useState<string | undefined>(undefined);
  const [logTick, setLogTick] = useState(0);

  if (!canAdmin) return <p>{t('webhooks.admins_only')}</p>;

  async function create(e: Event) {
    e.preventDefault();
    const formEl = e.currentTarget as HTMLFormElement;
    const form = new FormData(formEl);
    const kinds = KINDS.filter((k) => form.get(`kind-${k}`) === 'on');
    try {
      const created = await post<WebhookOut & { secret: string }>('/webhooks', {
        url: String(form.get('url') ?? ''),
        description: String(form.get('description') ?? ''),
        kinds,
      });
      setShown({ label: t('webhooks.secret_shown', { url: created.url }), secret: created.secret });
      setFormError(undefined);
      formEl.reset();
      hooks.reload();
    } catch (err) {
      setFormError(asError(err));
    }
  }

  async function act(run: () => Promise<unknown>, after?: (result: unknown) => void) {
    try {
      const result = await run();
      setError(undefined);
      after?.(result);
      hooks.reload();
      setLogTick((n) => n + 1);
    } catch (err) {
      setError(asError(err));
    }
  }

  return (
    <section>
      <h1>{t('webhooks.title')}</h1>
      <p class="muted">{t('webhooks.lead')}</p>
      {error && <Problem error={error} />}
      {shown && (
        <div class="alert alert-warn" role="status" data-testid="webhook-secret">
          <p>{shown.label}</p>
          <p>
            <code class="secret" data-testid="shown-secret">{shown.secret}</code> <CopyButton text={shown.secret} />
          </p>
          <p>{t('webhooks.secret_warning')}</p>
        </div>
      )}
      <Show state={hooks}>
        {(rows) =>
          rows.length === 0 ? (
            <p class="muted">{t('webhooks.none')}</p>
          ) : (
            <ul class="domains" data-testid="webhooks">
              {rows.map((h) => (
                <li key={h.id} class="domain" data-testid="webhook">
                  <p>
                    <code class="secret">{h.url}</code>{' '}
                    <span class={`badge ${h.enabled ? 'badge-running' : 'badge-draft'}`}>
                      {h.enabled ? t('webhooks.enabled') : t('webhooks.disabled')}
                    </span>
                  </p>
                  {h.description && <p>{h.description}</p>}
                  <p class="muted">
                    {h.kinds.map((k) => t(`webhooks.kind.${k}` as Key)).join(', ')} · {t('webhooks.created', { when: formatDate(h.created_at) })}
                  </p>
                  <div class="row">
                    <button type="button" class="btn btn-small" onClick={() => void act(() => api('PATCH', `/webhooks/${h.id}`, { enabled: !h.enabled }))}>
                      {h.enabled ? t('webhooks.disable') : t('webhooks.enable')}
                    </button>
                    <button
                      type="button"
                      class="btn btn-small"
                      disabled={!h.enabled}
                      onClick={() =>
                        void act(
                          () => post(`/webhooks/${h.id}/test`),
                          () => setOpen(h.id),
                        )
                      }
                    >
                      {t('webhooks.send_test')}
                    </button>
                    <button
                      type="button"
                      class="btn btn-small"
                      onClick={() => {
                        if (!window.confirm(t('webhooks.rotate_confirm'))) return;
                        void act(
                          () => post<{ secret: string }>(`/webhooks/${h.id}/rotate-secret`),
                          (r) => setShown({ label: t('webhooks.secret_rotated', { url: h.url }), secret: (r as { secret: string }).secret }),
                        );
                      }}
                    >
                      {t('webhooks.rotate')}
                    </button>
                    <button type="button" class="btn btn-small" aria-expanded={open === h.id} onClick={() => setOpen(open === h.id ? undefined : h.id)}>
                      {t('webhooks.deliveries')}
                    </button>
                    <button
                      type="button"
                      class="btn btn-small"
                      onClick={() => {
                        if (!window.confirm(t('webhooks.delete_confirm'))) return;
                        void act(() => api('DELETE', `/webhooks/${h.id}`));
                      }}
                    >
                      {t('webhooks.delete')}
                    </button>
                  </div>
                  {open === h.id && <DeliveryLog id={h.id} tick={logTick} />}
                </li>
              ))}
            </ul>
          )
        }
      </Show>
      <form class="card stack" onSubmit={(e) => void create(e)} aria-label={t('webhooks.new')}>
        <h2>{t('webhooks.new')}</h2>
        {formError && formError.errors.length === 0 && <Problem error={formError} />}
        <label>
          {t('webhooks.url')}
          <input name="url" type="url" required maxLength={2048} placeholder="https://hooks.slack.com/services/…" aria-describedby="webhook-url-error" />
          <small id="webhook-url-error" class="field-error">{fieldError(formError, 'url')}</small>
        </label>
        <label>
          {t('webhooks.description')}
          <input name="description" maxLength={200} aria-describedby="webhook-description-error" />
          <small id="webhook-description-error" class="field-error">{fieldError(formError, 'description')}</small>
        </label>
        <fieldset>
          <legend>{t('webhooks.kinds')}</legend>
          <div class="row">
            {KINDS.map((k) => (
              <label key={k} class="inline">
                <input type="checkbox" name={`kind-${k}`} defaultChecked />
                {t(`webhooks.kind.${k}` as Key)}
              </label>
            ))}
          </div>
          <small class="field-error">{fieldError(formError, 'kinds')}</small>
        </fieldset>
        <div>
          <button type="submit" class="btn btn-primary">{t('webhooks.add')}</button>
        </div>
      </form>
    </section>
  );
}

/// One webhook's deliveries, newest first (reloads on `tick` and on demand).
function DeliveryLog({ id, tick }: { id: string; tick: number }) {
  const log = useLoad(() => get<DeliveryOut[]>(`/webhooks/${id}/deliveries?limit=50`), [id, tick]);
  return (
    <div data-testid="deliveries">
      <div class="row">
        <h3>{t('webhooks.deliveries')}</h3>
        <button type="button" class="btn btn-small" onClick={log.reload} data-testid="deliveries-refresh">
          {t('webhooks.refresh')}
        </button>
      </div>
      <Show state={log}>
        {(rows) =>
          rows.length === 0 ? (
            <p class="muted">{t('webhooks.no_deliveries')}</p>
          ) : (
            <div class="table-wrap" tabIndex={0} role="region" aria-label={t('webhooks.deliveries')}>
              <table>
                <thead>
                  <tr>
                    <th>{t('webhooks.col.event')}</th>
                    <th>{t('webhooks.col.status')}</th>
                    <th>{t('webhooks.col.attempts')}</th>
                    <th>{t('webhooks.col.code')}</th>
                    <th>{t('webhooks.col.error')}</th>
                    <th>{t('webhooks.col.times')}</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((d) => (
                    <tr key={d.id} data-testid="delivery">
                      <td>
                        <code>{d.type}</code>
                      </td>
                      <td>
                        <span class={`badge ${BADGE[d.status]}`} data-testid="delivery-status">
                          {t(`webhooks.status.${d.status}` as Key)}
                        </span>
                      </td>
                      <td>{d.attempts}</td>
                      <td>{d.last_status_code ?? '—'}</td>
                      <td>{d.last_error ?? '—'}</td>
                      <td>
                        {t('webhooks.queued', { when: formatDate(d.created_at) })}
                        {d.delivered_at && <br />}
                        {d.delivered_at && t('webhooks.delivered_at', { when: formatDate(d.delivered_at) })}
                        {d.next_attempt_at && <br />}
                        {d.next_attempt_at && t('webhooks.next_attempt', { when: formatDate(d.next_attempt_at) })}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Show>
    </div>
  );
}
