import { useState } from 'preact/hooks';
import { ApiError, get, post, type DomainView, type SiteView, type SiteWithSecret } from '../lib/api';
import { formatDate, t } from '../lib/i18n';
import { CopyButton, Problem, Show, fieldError, useLoad } from '../lib/ui';
import { Exclusions, type Rule } from './Exclusions';

export function Sites({ canAdmin }: { canAdmin: boolean }) {
  const state = useLoad(() => get<SiteView[]>('/sites'), []);
  const [created, setCreated] = useState<SiteWithSecret | undefined>(undefined);
  return (
    <section>
      <h1>{t('sites.title')}</h1>
      {created && <SecretOnce site={created} />}
      <Show state={state}>
        {(sites) =>
          sites.length === 0 ? (
            <p class="muted">{t('common.none')}</p>
          ) : (
            <ul class="list">
              {sites.map((s) => (
                <li key={s.id}>
                  <a href={`/app/sites/${s.id}`}>{s.name}</a>
                  <span class="muted"> — {s.domains.join(', ')}</span>
                </li>
              ))}
            </ul>
          )
        }
      </Show>
      {canAdmin && (
        <NewSite
          onCreated={(s) => {
            setCreated(s);
            state.reload();
          }}
        />
      )}
    </section>
  );
}

function SecretOnce({ site }: { site: SiteWithSecret }) {
  if (site.server_secret === null) {
    return (
      <p class="alert alert-info" role="status">
        {t('sites.no_secret')}
      </p>
    );
  }
  return (
    <div class="alert alert-warn" role="status">
      <p>{t('sites.created_secret')}</p>
      <p>
        <code class="secret">{site.server_secret}</code> <CopyButton text={site.server_secret} />
      </p>
    </div>
  );
}

function NewSite({ onCreated }: { onCreated: (s: SiteWithSecret) => void }) {
  const [error, setError] = useState<ApiError | undefined>(undefined);
  async function submit(e: Event) {
    e.preventDefault();
    const formEl = e.currentTarget as HTMLFormElement;
    const form = new FormData(formEl);
    const domains = String(form.get('domains') ?? '')
      .split(/[\s,]+/)
      .map((d) => d.trim())
      .filter(Boolean);
    try {
      const site = await post<SiteWithSecret>('/sites', { name: String(form.get('name') ?? ''), domains });
      setError(undefined);
      formEl.reset();
      onCreated(site);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  }
  return (
    <form class="card stack" onSubmit={submit} aria-labelledby="new-site">
      <h2 id="new-site">{t('sites.new')}</h2>
      {error && error.errors.length === 0 && <Problem error={error} />}
      <label>
        {t('sites.name')}
        <input name="name" required maxLength={200} aria-describedby="site-name-error" />
        <small id="site-name-error" class="field-error">{fieldError(error, 'name')}</small>
      </label>
      <label>
        {t('sites.domains')}
        <textarea name="domains" rows={2} required aria-describedby="domains-hint domains-error" />
        <small id="domains-hint" class="muted">{t('sites.domains_hint')}</small>
        <small id="domains-error" class="field-error">{fieldError(error, 'domains')}</small>
      </label>
      <button type="submit" class="btn btn-primary">
        {t('common.create')}
      </button>
    </form>
  );
}

interface Publication {
  version: number;
  status: 'published' | 'failed';
  published_at?: string;
  error?: string | null;
}

export function Site({ id, canAdmin }: { id: string; canAdmin: boolean }) {
  const state = useLoad(() => Promise.all([get<SiteView>(`/sites/${id}`), get<Publication[]>(`/sites/${id}/publications`)]), [id]);
  // Apart: without an edge configured there is no snippet yet (409), and the rest of the
  // page still works.
  const snippet = useLoad(() => get<{ html: string }>(`/sites/${id}/snippet`), [id]);
  const [rotated, setRotated] = useState<SiteWithSecret | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  return (
    <section>
      <Show state={state}>
        {([site, publications]) => (
          <>
            <h1>{site.name}</h1>
            <p>
              {t('sites.key')}: <code>{site.site_key}</code>
            </p>
            <p class="muted">
              {site.snippet_seen_at ? t('sites.snippet_seen', { when: formatDate(site.snippet_seen_at) }) : t('sites.snippet_not_seen')}
            </p>
            <h2>{t('sites.snippet')}</h2>
            <p class="muted">{t('sites.snippet_hint')}</p>
            <Show state={snippet}>
              {(s) => (
                <>
                  <pre class="code" data-testid="snippet">{s.html}</pre>
                  <CopyButton text={s.html} />
                </>
              )}
            </Show>

            <h2>{t('sites.domains')}</h2>
            {error && <Problem error={error} />}
            <ul class="domains">
              {site.domain_verification.map((d) => (
                <DomainRow key={d.host} siteId={site.id} domain={d} canAdmin={canAdmin} onError={setError} onDone={state.reload} />
              ))}
            </ul>

            <h2>{t('exclusions.title')}</h2>
            <p class="muted">{t('exclusions.lead')}</p>
            <Exclusions siteId={site.id} version={site.version} rules={(site.exclusions ?? []) as Rule[]} canAdmin={canAdmin} onSaved={state.reload} />

            {canAdmin && (
              <>
                {rotated && <SecretOnce site={rotated} />}
                <button
                  type="button"
                  class="btn"
                  onClick={async () => {
                    if (!window.confirm(t('sites.rotate_confirm'))) return;
                    try {
                      setRotated(await post<SiteWithSecret>(`/sites/${site.id}/rotate-secret`));
                    } catch (err) {
                      if (err instanceof ApiError) setError(err);
                    }
                  }}
                >
                  {t('sites.rotate')}
                </button>
              </>
            )}

            <h2>{t('sites.publications')}</h2>
            {publications.length === 0 ? (
              <p class="muted">{t('common.none')}</p>
            ) : (
              <div class="table-wrap" tabIndex={0} role="region" aria-label={t('sites.publications')}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">{t('sites.version')}</th>
                      <th scope="col">{t('sites.status')}</th>
                      <th scope="col">{t('sites.when')}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {publications.map((p) => (
                      <tr key={p.version}>
                        <td>{p.version}</td>
                        <td>{p.status}{p.error ? ` — ${p.error}` : ''}</td>
                        <td>{p.published_at ? formatDate(p.published_at) : ''}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </>
        )}
      </Show>
    </section>
  );
}

function DomainRow({
  siteId,
  domain,
  canAdmin,
  onError,
  onDone,
}: {
  siteId: string;
  domain: DomainView;
  canAdmin: boolean;
  onError: (e: ApiError | undefined) => void;
  onDone: () => void;
}) {
  const [busy, setBusy] = useState(false);
  async function verify(method: 'dns_txt' | 'http_file') {
    setBusy(true);
    try {
      await post(`/sites/${siteId}/domains/${encodeURIComponent(domain.host)}/verify`, { method });
      onError(undefined);
      onDone();
    } catch (err) {
      if (err instanceof ApiError) onError(err);
    } finally {
      setBusy(false);
    }
  }
  const verified = domain.status === 'verified';
  return (
    <li class="domain" data-host={domain.host}>
      <strong>{domain.host}</strong>{' '}
      <span class={`badge ${verified ? 'badge-running' : 'badge-draft'}`}>
        {verified ? t('sites.domain_verified') : t('sites.domain_pending')}
      </span>
      {!verified && (
        <>
          <p class="muted">{t('sites.verify_how', { name: domain.txt_name, url: domain.file_url })}</p>
          <p>
            <code>{domain.txt_value}</code> <CopyButton text={domain.txt_value} />
          </p>
          {canAdmin && (
            <p class="row">
              <button type="button" class="btn" disabled={busy} onClick={() => void verify('dns_txt')}>
                {t('sites.verify_dns')}
              </button>
              <button type="button" class="btn" disabled={busy} onClick={() => void verify('http_file')}>
                {t('sites.verify_file')}
              </button>
            </p>
          )}
        </>
      )}
    </li>
  );
}
