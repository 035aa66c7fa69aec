import { useState } from 'preact/hooks';
import { ApiError, api, type ConsoleSession } from '../lib/api';
import { currentLang, t } from '../lib/i18n';
import { Problem, fieldError } from '../lib/ui';

/// Sign in, or sign up (a new account and organisation); both set the session cookie —
/// except a sign-up on a server that delivers mail (202): then the address is confirmed
/// first, by the mailed link (pages/AccountLinks.tsx), and this page says to check the inbox.
export function SignIn({ onSignedIn }: { onSignedIn: (s: ConsoleSession) => void }) {
  const [mode, setMode] = useState<'signin' | 'signup'>('signin');
  const [mailedTo, setMailedTo] = useState<string | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const value = (k: string) => String(form.get(k) ?? '');
    setBusy(true);
    setError(undefined);
    try {
      const session =
        mode === 'signin'
          ? await api<ConsoleSession>('POST', '/auth/console/login', { email: value('email'), password: value('password') })
          : await api<ConsoleSession | { status: string }>('POST', '/auth/console/register', {
              email: value('email'),
              password: value('password'),
              name: value('name'),
              organization_name: value('organization_name'),
              language: currentLang(),
            });
      if ('csrf_token' in session) onSignedIn(session);
      else setMailedTo(value('email'));
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    } finally {
      setBusy(false);
    }
  }

  const title = mode === 'signin' ? t('auth.signin') : t('auth.signup');
  if (mailedTo !== undefined)
    return (
      <main class="auth">
        <div class="card auth-card" data-testid="check-inbox">
          <p class="brand">{t('app.name')}</p>
          <h1>{t('auth.check_inbox')}</h1>
          <p role="status">{t('auth.check_inbox_body', { email: mailedTo })}</p>
          <button type="button" class="link" onClick={() => { setMailedTo(undefined); setMode('signin'); }}>
            {t('links.back_to_signin')}
          </button>
        </div>
      </main>
    );
  return (
    <main class="auth">
      <div class="card auth-card">
        <p class="brand">{t('app.name')}</p>
        <p class="muted">{t('auth.tagline')}</p>
        <h1>{title}</h1>
        {error && error.errors.length === 0 && <Problem error={error} />}
        <form onSubmit={submit} class="stack">
          {mode === 'signup' && (
            <>
              <label>
                {t('auth.name')}
                <input name="name" autocomplete="name" maxLength={200} />
              </label>
              <label>
                {t('auth.org')}
                <input name="organization_name" required maxLength={200} aria-describedby="org-error" />
                <small id="org-error" class="field-error">{fieldError(error, 'organization_name')}</small>
              </label>
            </>
          )}
          <label>
            {t('auth.email')}
            <input name="email" type="email" autocomplete="email" required aria-describedby="email-error" />
            <small id="email-error" class="field-error">{fieldError(error, 'email')}</small>
          </label>
          <label>
            {t('auth.password')}
            <input
              name="password"
              type="password"
              required
              minLength={mode === 'signup' ? 10 : undefined}
              autocomplete={mode === 'signin' ? 'current-password' : 'new-password'}
              aria-describedby="password-hint password-error"
            />
            {mode === 'signup' && <small id="password-hint" class="muted">{t('auth.password_hint')}</small>}
            <small id="password-error" class="field-error">{fieldError(error, 'password')}</small>
          </label>
          <button type="submit" class="btn btn-primary" disabled={busy}>
            {title}
          </button>
        </form>
        {mode === 'signin' && (
          <a href="/app/forgot-password" class="link">{t('auth.forgot')}</a>
        )}
        <button type="button" class="link" onClick={() => { setMode(mode === 'signin' ? 'signup' : 'signin'); setError(undefined); }}>
          {mode === 'signin' ? t('auth.no_account') : t('auth.have_account')}
        </button>
      </div>
    </main>
  );
}
