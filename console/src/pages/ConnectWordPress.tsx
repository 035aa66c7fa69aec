// Connect a WordPress site (the Samplit plugin's "Connect to Samplit" button lands here):
// the admin picks one of the organisation's sites, or creates one for the WordPress host,
// and confirms; POST /wordpress/connect answers the plugin's return URL with a one-time
// code, and the browser goes back there. Nothing happens without the explicit click: the
// page names the WordPress address that will receive the site's credentials.
import { useState } from 'preact/hooks';
import { ApiError, get, post, type SiteView } from '../lib/api';
import { t } from '../lib/i18n';
import { Problem, Show, useLoad } from '../lib/ui';

interface ConnectOutput {
  redirect_url: string;
  site_id: string;
}

function params() {
  const q = new URLSearchParams(window.location.search);
  return { siteUrl: q.get('site_url') ?? '', returnUrl: q.get('return_url') ?? '', state: q.get('state') ?? '' };
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}

export function ConnectWordPress({ canAdmin }: { canAdmin: boolean }) {
  const { siteUrl, returnUrl, state } = params();
  const sites = useLoad(() => get<SiteView[]>('/sites'), []);
  const [choice, setChoice] = useState<string>('new');
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const host = hostOf(siteUrl);

  if (!host || !returnUrl || !state) return <p class="alert alert-error" role="alert">{t('wp.bad_link')}</p>;
  if (!canAdmin) return <p class="alert alert-info" role="status">{t('wp.admin_only')}</p>;

  async function connect(e: Event) {
    e.preventDefault();
    setBusy(true);
    try {
      const body: Record<string, unknown> = { site_url: siteUrl, return_url: returnUrl, state };
      if (choice !== 'new') body.site_id = choice;
      const out = await post<ConnectOutput>('/wordpress/connect', body);
      window.location.assign(out.redirect_url);
    } catch (err) {
      setBusy(false);
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  }

  return (
    <section>
      <h1>{t('wp.title')}</h1>
      <p>
        {t('wp.lead')} <strong data-testid="wp-host">{host}</strong>
      </p>
      <p class="muted">{t('wp.what')}</p>
      {error && <Problem error={error} />}
      <Show state={sites}>
        {(list) => (
          <form class="card stack" onSubmit={connect} aria-labelledby="wp-choose">
            <h2 id="wp-choose">{t('wp.choose')}</h2>
            <label class="inline">
              <input type="radio" name="site" value="new" checked={choice === 'new'} onChange={() => setChoice('new')} />{' '}
              {t('wp.new_site', { host })}
            </label>
            {list.map((s) => (
              <label key={s.id} class="inline">
                <input type="radio" name="site" value={s.id} checked={choice === s.id} onChange={() => setChoice(s.id)} />{' '}
                <span>
                  {s.name} <span class="muted">— {s.domains.join(', ') || t('common.none')}</span>
                </span>
              </label>
            ))}
            <p class="muted">{t('wp.rotates')}</p>
            <button type="submit" class="btn btn-primary" disabled={busy} data-testid="wp-connect">
              {t('wp.connect', { host })}
            </button>
          </form>
        )}
      </Show>
    </section>
  );
}
