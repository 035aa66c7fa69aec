// The console: bootstraps the browser session (GET /auth/console/session: 401 shows the
// sign-in page), then the layout — navigation, organisation switcher, language switch —
// around the page the path names.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, ROLE_RANK, api, get, setCsrf, type ConsoleSession, type Me } from './lib/api';
import { setLang, t, useLang, type Lang } from './lib/i18n';
import { match, navigate, usePath } from './lib/router';
import { Problem, Loading } from './lib/ui';
import { Experiments } from './pages/Experiments';
import { Overview } from './pages/Overview';
import { Planning } from './pages/Planning';
import { Audit, Team } from './pages/Team';
import { Builder, EditDraft } from './pages/Builder';
import { Editor } from './pages/Editor';
import { Results, SharedResults } from './pages/Results';
import { SignIn } from './pages/SignIn';
import { Account } from './pages/Account';
import { AcceptInvitation, ForgotPassword, ResetPassword, VerifyEmail } from './pages/AccountLinks';
import { Site, Sites } from './pages/Sites';
import { ConnectWordPress } from './pages/ConnectWordPress';
import { Notifications } from './pages/Notifications';
import { Webhooks } from './pages/Webhooks';

type Boot = { kind: 'loading' } | { kind: 'signed-out' } | { kind: 'failed'; error: ApiError } | { kind: 'in'; me: Me };

export function App() {
  useLang();
  const path = usePath();
  const shared = match('/share/:token', path);
  // A share link's page is public: no session, nothing else of the console.
  if (shared) return <SharedResults token={shared.token!} />;
  // The pages mailed links open work signed out (pages/AccountLinks.tsx).
  if (path === '/verify-email') return <VerifyEmail />;
  if (path === '/reset-password') return <ResetPassword />;
  if (path === '/forgot-password') return <ForgotPassword />;
  if (path === '/accept-invitation') return <AcceptInvitation />;
  return <Console />;
}

function Console() {
  const [boot, setBoot] = useState<Boot>({ kind: 'loading' });

  async function load() {
    try {
      const session = await get<ConsoleSession>('/auth/console/session');
      setCsrf(session.csrf_token);
      setBoot({ kind: 'in', me: await get<Me>('/auth/me') });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setBoot({ kind: 'signed-out' });
      else setBoot({ kind: 'failed', error: err instanceof ApiError ? err : new ApiError(0, 'error', String(err)) });
    }
  }
  useEffect(() => {
    void load();
  }, []);

  if (boot.kind === 'loading') return <main><Loading /></main>;
  if (boot.kind === 'failed') return <main><Problem error={boot.error} onRetry={() => void load()} /></main>;
  if (boot.kind === 'signed-out')
    return (
      <SignIn
        onSignedIn={(s) => {
          setCsrf(s.csrf_token);
          void load();
        }}
      />
    );
  return <Layout me={boot.me} onChanged={() => void load()} onSignedOut={() => setBoot({ kind: 'signed-out' })} />;
}

function Layout({ me, onChanged, onSignedOut }: { me: Me; onChanged: () => void; onSignedOut: () => void }) {
  const path = usePath();
  const lang = useLang();
  const canEdit = ROLE_RANK[me.role] >= ROLE_RANK.editor;
  const canAdmin = ROLE_RANK[me.role] >= ROLE_RANK.admin;
  const [error, setError] = useState<ApiError | undefined>(undefined);

  async function switchOrg(id: string) {
    try {
      const s = await api<ConsoleSession>('POST', '/auth/console/switch', { organization_id: id });
      setCsrf(s.csrf_token);
      navigate('/');
      onChanged();
    } catch (err) {
      if (err instanceof ApiError) setError(err);
    }
  }
  async function signOut() {
    try {
      await api('POST', '/auth/logout');
    } finally {
      onSignedOut();
    }
  }

  const nav: [string, string][] = [
    ['/', t('nav.overview')],
    ['/sites', t('nav.sites')],
    ['/experiments', t('nav.experiments')],
    ['/planning', t('nav.planning')],
    ['/team', t('nav.team')],
  ];
  // The person's and the organisation's settings: under the account menu, so the top bar
  // stays one row at 1280 px.
  const menu: [string, string, string][] = [
    ['/account', t('nav.account'), 'nav-account'],
    ['/notifications', t('nav.notifications'), 'nav-notifications'],
    ...(canAdmin ? ([['/webhooks', t('nav.webhooks'), 'nav-webhooks']] as [string, string, string][]) : []),
    ...(canAdmin ? ([['/audit', t('nav.audit'), 'nav-audit']] as [string, string, string][]) : []),
  ];
  const inMenu = menu.some(([p]) => path.startsWith(p));
  /// Closes the menu once a choice is made (a <details> stays open across client-side navigation).
  const closeMenu = (e: Event) => {
    const details = (e.currentTarget as HTMLElement).closest('details');
    if (details) details.open = false;
  };
  return (
    <>
      <header class="topbar">
        <a class="brand" href="/app">{t('app.name')}</a>
        <nav aria-label="main">
          {nav.map(([p, label]) => (
            <a key={p} href={`/app${p === '/' ? '' : p}`} aria-current={(p === '/' ? path === '/' : path.startsWith(p)) ? 'page' : undefined}>
              {label}
            </a>
          ))}
          <a href="/docs">{t('nav.docs')}</a>
        </nav>
        <div class="row controls">
          <label>
            <span class="sr-only">{t('nav.organization')}</span>
            <select value={me.organization.id} onChange={(e) => void switchOrg((e.target as HTMLSelectElement).value)} data-testid="org-switcher">
              {me.organizations.map((o) => (
                <option key={o.id} value={o.id}>{o.name} ({o.role})</option>
              ))}
            </select>
          </label>
          <label>
            <span class="sr-only">{t('nav.language')}</span>
            <select value={lang} onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)} data-testid="lang-switcher">
              <option value="en">English</option>
              <option value="es">Español</option>
            </select>
          </label>
          <details class="account-menu">
            <summary class="btn btn-small" data-testid="account-menu" aria-current={inMenu ? 'page' : undefined}>
              {me.user?.name || me.user?.email || t('nav.account')}
            </summary>
            <div class="account-menu-items">
              {me.user && <p class="muted account-menu-email">{me.user.email}</p>}
              {menu.map(([p, label, testId]) => (
                <a key={p} href={`/app${p}`} aria-current={path.startsWith(p) ? 'page' : undefined} data-testid={testId} onClick={closeMenu}>
                  {label}
                </a>
              ))}
              <button type="button" class="btn btn-small" onClick={() => void signOut()}>{t('nav.signout')}</button>
            </div>
          </details>
        </div>
      </header>
      <main>
        {error && <Problem error={error} />}
        {!canEdit && <p class="alert alert-info">{t('common.role_viewer_note')}</p>}
        {path === '/account' ? <Account me={me} onChanged={onChanged} /> : <Page path={path} canEdit={canEdit} canAdmin={canAdmin} />}
      </main>
    </>
  );
}

function Page({ path, canEdit, canAdmin }: { path: string; canEdit: boolean; canAdmin: boolean }) {
  let m: Record<string, string> | null;
  if (path === '/') return <Overview />;
  if (match('/sites', path)) return <Sites canAdmin={canAdmin} />;
  if ((m = match('/sites/:id', path))) return <Site id={m.id!} canAdmin={canAdmin} />;
  if (match('/experiments', path)) return <Experiments canEdit={canEdit} />;
  if (match('/experiments/new', path)) return <Builder />;
  if ((m = match('/experiments/:id/results', path))) return <Results id={m.id!} canEdit={canEdit} />;
  if ((m = match('/experiments/:id/edit', path))) return canEdit ? <EditDraft id={m.id!} /> : <p>{t('error.not_found')}</p>;
  if ((m = match('/experiments/:id/editor', path)))
    return canEdit ? (
      <Editor id={m.id!} variant={new URLSearchParams(window.location.search).get('variant')} canAdmin={canAdmin} />
    ) : (
      <p>{t('error.not_found')}</p>
    );
  if (match('/planning', path)) return <Planning />;
  if (match('/team', path)) return <Team canAdmin={canAdmin} />;
  if (match('/audit', path)) return <Audit />;
  if (match('/notifications', path)) return <Notifications />;
  if (match('/webhooks', path)) return <Webhooks canAdmin={canAdmin} />;
  if (match('/connect/wordpress', path)) return <ConnectWordPress canAdmin={canAdmin} />;
  return <p>{t('error.not_found')}</p>;
}
