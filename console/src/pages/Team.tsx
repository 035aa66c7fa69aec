import { useState } from 'preact/hooks';
import { ApiError, api, get, post, type Role } from '../lib/api';
import { formatDate, t } from '../lib/i18n';
import { CopyButton, Problem, Show, fieldError, useLoad } from '../lib/ui';

interface MemberOut {
  user_id: string;
  email: string;
  name: string;
  role: Role;
  joined_at: string;
}
interface InvitationOut {
  id: string;
  email: string;
  role: Role;
  expires_at: string;
}
interface ApiKeyOut {
  id: string;
  name: string;
  prefix: string;
  role: Role;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

function asError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, 'error', String(err));
}

/// Members, invitations (the token shown once) and API keys (the key shown once).
export function Team({ canAdmin }: { canAdmin: boolean }) {
  const members = useLoad(() => get<MemberOut[]>('/members'), []);
  const invitations = useLoad(() => (canAdmin ? get<InvitationOut[]>('/invitations') : Promise.resolve([])), [canAdmin]);
  const keys = useLoad(() => (canAdmin ? get<ApiKeyOut[]>('/api-keys') : Promise.resolve([])), [canAdmin]);
  const [shown, setShown] = useState<{ label: string; secret: string } | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);

  /// Submits a create form whose answer carries a secret shown once, and shows it.
  function createShown<T>(path: string, fields: string[], show: (created: T) => { label: string; secret: string }, reload: () => void) {
    return async (e: Event) => {
      e.preventDefault();
      const formEl = e.currentTarget as HTMLFormElement;
      const form = new FormData(formEl);
      try {
        const created = await post<T>(path, Object.fromEntries(fields.map((f) => [f, form.get(f)])));
        setShown(show(created));
        setError(undefined);
        formEl.reset();
        reload();
      } catch (err) {
        setError(asError(err));
      }
    };
  }
  // With mail configured the invitation is mailed and the answer carries no token.
  const invite = createShown<InvitationOut & { token?: string }>(
    '/invitations',
    ['email', 'role'],
    (c) =>
      c.token
        ? { label: t('team.invitation_token', { email: c.email }), secret: c.token }
        : { label: t('team.invitation_mailed', { email: c.email }), secret: '' },
    invitations.reload,
  );
  const createKey = createShown<ApiKeyOut & { key: string }>(
    '/api-keys',
    ['name', 'role'],
    (c) => ({ label: t('team.key_shown', { name: c.name }), secret: c.key }),
    keys.reload,
  );
  async function act(method: 'DELETE', path: string, reload: () => void) {
    try {
      await api(method, path);
      setError(undefined);
      reload();
    } catch (err) {
      setError(asError(err));
    }
  }
  const roles: Role[] = ['viewer', 'editor', 'admin'];
  return (
    <section>
      <h1>{t('team.title')}</h1>
      {error && error.errors.length === 0 && <Problem error={error} />}
      {shown && (
        <div class="alert alert-warn" role="status">
          <p>{shown.label}</p>
          <p>
            {shown.secret && (
              <>
                <code class="secret" data-testid="shown-secret">{shown.secret}</code> <CopyButton text={shown.secret} />
              </>
            )}
          </p>
        </div>
      )}
      <h2>{t('team.members')}</h2>
      <Show state={members}>
        {(rows) => (
          <ul class="list">
            {rows.map((m) => (
              <li key={m.user_id}>
                {m.name || m.email} <span class="muted">— {m.email}, {m.role}, {formatDate(m.joined_at)}</span>
              </li>
            ))}
          </ul>
        )}
      </Show>
      {canAdmin && (
        <>
          <h2>{t('team.invitations')}</h2>
          <Show state={invitations}>
            {(rows) =>
              rows.length === 0 ? (
                <p class="muted">{t('common.none')}</p>
              ) : (
                <ul class="list">
                  {rows.map((i) => (
                    <li key={i.id}>
                      {i.email} <span class="muted">({i.role}, {t('team.expires', { when: formatDate(i.expires_at) })})</span>{' '}
                      <button type="button" class="btn btn-small" onClick={() => void act('DELETE', `/invitations/${i.id}`, invitations.reload)}>
                        {t('team.revoke')}
                      </button>
                    </li>
                  ))}
                </ul>
              )
            }
          </Show>
          <form class="card grid-form" onSubmit={invite} aria-label={t('team.invite')}>
            <label>
              {t('auth.email')}
              <input name="email" type="email" required aria-describedby="invite-email-error" />
              <small id="invite-email-error" class="field-error">{fieldError(error, 'email')}</small>
            </label>
            <label>
              {t('team.role')}
              <select name="role">
                {roles.map((r) => (
                  <option key={r} value={r}>{r}</option>
                ))}
              </select>
            </label>
            <button type="submit" class="btn btn-primary">{t('team.invite')}</button>
          </form>

          <h2>{t('team.keys')}</h2>
          <Show state={keys}>
            {(rows) =>
              rows.length === 0 ? (
                <p class="muted">{t('common.none')}</p>
              ) : (
                <ul class="list">
                  {rows.map((k) => (
                    <li key={k.id}>
                      {k.name} <code>{k.prefix}…</code>{' '}
                      <span class="muted">
                        ({k.role}, {k.revoked_at ? t('team.revoked') : k.last_used_at ? t('team.last_used', { when: formatDate(k.last_used_at) }) : t('team.never_used')})
                      </span>{' '}
                      {!k.revoked_at && (
                        <button type="button" class="btn btn-small" onClick={() => void act('DELETE', `/api-keys/${k.id}`, keys.reload)}>
                          {t('team.revoke')}
                        </button>
                      )}
                    </li>
                  ))}
                </ul>
              )
            }
          </Show>
          <form class="card grid-form" onSubmit={createKey} aria-label={t('team.new_key')}>
            <label>
              {t('sites.name')}
              <input name="name" required maxLength={100} aria-describedby="key-name-error" />
              <small id="key-name-error" class="field-error">{fieldError(error, 'name')}</small>
            </label>
            <label>
              {t('team.role')}
              <select name="role">
                {roles.map((r) => (
                  <option key={r} value={r}>{r}</option>
                ))}
              </select>
            </label>
            <button type="submit" class="btn btn-primary">{t('team.new_key')}</button>
          </form>
        </>
      )}
    </section>
  );
}

interface AuditEntry {
  seq: number;
  at: string;
  action: string;
  actor_label: string | null;
  target_type: string;
  target_id: string | null;
}

/// The audit log, newest first, with the chain check and the export.
export function Audit() {
  const [action, setAction] = useState('');
  const [before, setBefore] = useState<number | undefined>(undefined);
  const page = useLoad(() => {
    const q = new URLSearchParams({ limit: '50' });
    if (action) q.set('action', action);
    if (before !== undefined) q.set('before_seq', String(before));
    return get<{ items: AuditEntry[]; next_before_seq: number | null }>(`/audit?${q}`);
  }, [action, before]);
  const chain = useLoad(() => get<{ ok: boolean; checked: number; reason: string | null }>('/audit/verify'), []);
  return (
    <section>
      <h1>{t('audit.title')}</h1>
      <Show state={chain}>
        {(c) => (
          <p class={`alert ${c.ok ? 'alert-info' : 'alert-error'}`} data-testid="chain">
            {c.ok ? t('audit.chain_ok', { count: c.checked }) : t('audit.chain_broken', { reason: c.reason ?? '' })}
          </p>
        )}
      </Show>
      <div class="filters row">
        <label>
          {t('audit.action')}
          <input
            type="search"
            value={action}
            placeholder="site.created"
            onChange={(e) => {
              setAction((e.target as HTMLInputElement).value.trim());
              setBefore(undefined);
            }}
          />
        </label>
        <a class="btn btn-small" href="/api/v1/audit/export?format=csv" download>{t('results.export')} CSV</a>
      </div>
      <Show state={page}>
        {(p) => (
          <>
            <div class="table-wrap" tabIndex={0} role="region" aria-label={t('audit.title')}>
              <table>
                <thead>
                  <tr>
                    <th scope="col">#</th>
                    <th scope="col">{t('sites.when')}</th>
                    <th scope="col">{t('audit.action')}</th>
                    <th scope="col">{t('audit.who')}</th>
                    <th scope="col">{t('audit.target')}</th>
                  </tr>
                </thead>
                <tbody>
                  {p.items.map((e) => (
                    <tr key={e.seq}>
                      <td>{e.seq}</td>
                      <td>{formatDate(e.at)}</td>
                      <td><code>{e.action}</code></td>
                      <td>{e.actor_label ?? ''}</td>
                      <td>{e.target_type}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {p.next_before_seq !== null && (
              <button type="button" class="btn" onClick={() => setBefore(p.next_before_seq ?? undefined)}>
                {t('experiments.next')}
              </button>
            )}
          </>
        )}
      </Show>
    </section>
  );
}
