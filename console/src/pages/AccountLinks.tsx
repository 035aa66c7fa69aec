// The pages mailed links open (signed out or in): /verify-email (also a sign-up's
// confirmation, with ?signup=1), /reset-password, /accept-invitation — each reads the
// token from the URL's fragment (never sent to a server's log), posts it, and says what
// happened — and /forgot-password, which asks for a reset link.
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, get, setCsrf, type ConsoleSession } from '../lib/api';
import { currentLang, t } from '../lib/i18n';
import { Problem, fieldError } from '../lib/ui';

/// The `token` of the page's fragment (`#token=…`), read once; the fragment is then
/// removed from the address bar (and so from the history).
function useLinkToken(): string {
  const [token] = useState(() => new URLSearchParams(window.location.hash.slice(1)).get('token') ?? '');
  useEffect(() => {
    if (window.location.hash) window.history.replaceState(null, '', window.location.pathname + window.location.search);
  }, []);
  return token;
}

function asError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, 'error', String(err));
}

/// The message for a link that cannot be used, or the problem as the API said it.
function LinkProblem({ error }: { error: ApiError }) {
  if (error.code === 'invalid_token')
    return <p class="alert alert-error" role="alert" data-testid="link-invalid">{t('links.invalid')}</p>;
  if (error.code === 'email_taken') return <p class="alert alert-error" role="alert">{t('links.email_taken')}</p>;
  return <Problem error={error} />;
}

function Card({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <main class="auth">
      <div class="card auth-card">
        <p class="brand">{t('app.name')}</p>
        <h1>{title}</h1>
        {children}
      </div>
    </main>
  );
}

function Done({ text, href, label }: { text: string; href: string; label: string }) {
  return (
    <>
      <p class="alert alert-info" role="status" data-testid="link-done">{text}</p>
      <a class="btn btn-primary" href={href}>{label}</a>
    </>
  );
}

type State = { kind: 'working' } | { kind: 'done'; text: string } | { kind: 'failed'; error: ApiError };

/// Follows a verification, email-change or sign-up confirmation link.
export function VerifyEmail() {
  const token = useLinkToken();
  const signup = new URLSearchParams(window.location.search).has('signup');
  const [state, setState] = useState<State>({ kind: 'working' });
  useEffect(() => {
    if (!token) return;
    (async () => {
      try {
        if (signup) {
          const s = await api<ConsoleSession>('POST', '/auth/console/register/confirm', { token });
          setCsrf(s.csrf_token);
          setState({ kind: 'done', text: t('links.signup_confirmed') });
        } else {
          const r = await api<{ email: string }>('POST', '/auth/verify-email', { token });
          setState({ kind: 'done', text: t('links.verified', { email: r.email }) });
        }
      } catch (err) {
        setState({ kind: 'failed', error: asError(err) });
      }
    })();
  }, [token]);
  return (
    <Card title={t('links.verify_title')}>
      {!token ? (
        <p class="alert alert-error" role="alert">{t('links.no_token')}</p>
      ) : state.kind === 'working' ? (
        <p aria-busy="true">{t('links.working')}</p>
      ) : state.kind === 'failed' ? (
        <LinkProblem error={state.error} />
      ) : (
        <Done text={state.text} href="/app" label={t('links.to_console')} />
      )}
    </Card>
  );
}

/// Asks for a reset link (the answer is the same whether or not the address has an account).
export function ForgotPassword() {
  const [sentTo, setSentTo] = useState<string | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    const email = String(new FormData(e.currentTarget as HTMLFormElement).get('email') ?? '');
    setBusy(true);
    setError(undefined);
    try {
      await api('POST', '/auth/password/forgot', { email }, { 'Accept-Language': currentLang() });
      setSentTo(email);
    } catch (err) {
      setError(asError(err));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Card title={t('links.forgot_title')}>
      {sentTo !== undefined ? (
        <Done text={t('links.forgot_sent', { email: sentTo })} href="/app" label={t('links.back_to_signin')} />
      ) : (
        <>
          <p class="muted">{t('links.forgot_lead')}</p>
          {error && error.errors.length === 0 && <Problem error={error} />}
          <form onSubmit={submit} class="stack">
            <label>
              {t('auth.email')}
              <input name="email" type="email" autocomplete="email" required aria-describedby="forgot-email-error" />
              <small id="forgot-email-error" class="field-error">{fieldError(error, 'email')}</small>
            </label>
            <button type="submit" class="btn btn-primary" disabled={busy}>{t('links.forgot_send')}</button>
          </form>
          <a href="/app" class="link">{t('links.back_to_signin')}</a>
        </>
      )}
    </Card>
  );
}

/// Sets a new password with a reset link.
export function ResetPassword() {
  const token = useLinkToken();
  const [done, setDone] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    const password = String(new FormData(e.currentTarget as HTMLFormElement).get('password') ?? '');
    setBusy(true);
    setError(undefined);
    try {
      await api('POST', '/auth/password/reset', { token, password });
      setDone(true);
    } catch (err) {
      setError(asError(err));
    } finally {
      setBusy(false);
    }
  }
  if (!token)
    return (
      <Card title={t('links.reset_title')}>
        <p class="alert alert-error" role="alert">{t('links.no_token')}</p>
        <a href="/app/forgot-password" class="link">{t('auth.forgot')}</a>
      </Card>
    );
  return (
    <Card title={t('links.reset_title')}>
      {done ? (
        <Done text={t('links.reset_done')} href="/app" label={t('links.back_to_signin')} />
      ) : (
        <>
          {error && error.errors.length === 0 && <LinkProblem error={error} />}
          {error?.code === 'invalid_token' && <a href="/app/forgot-password" class="link">{t('auth.forgot')}</a>}
          <form onSubmit={submit} class="stack">
            <label>
              {t('links.new_password')}
              <input name="password" type="password" required minLength={10} maxLength={128} autocomplete="new-password" aria-describedby="reset-hint reset-error" />
              <small id="reset-hint" class="muted">{t('auth.password_hint')}</small>
              <small id="reset-error" class="field-error">{fieldError(error, 'password')}</small>
            </label>
            <button type="submit" class="btn btn-primary" disabled={busy}>{t('links.reset_save')}</button>
          </form>
        </>
      )}
    </Card>
  );
}

/// Accepts an invitation: as the signed-in person (their session cookie), or as a new
/// account that sets a password here.
export function AcceptInvitation() {
  const token = useLinkToken();
  const [signedIn, setSignedIn] = useState<boolean | undefined>(undefined);
  const [state, setState] = useState<{ kind: 'idle' } | { kind: 'done'; text: string } | { kind: 'failed'; error: ApiError }>({ kind: 'idle' });
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    get<ConsoleSession>('/auth/console/session').then(
      (s) => {
        setCsrf(s.csrf_token);
        setSignedIn(true);
      },
      () => setSignedIn(false),
    );
  }, []);
  async function accept(body: Record<string, string>, newAccount: boolean) {
    setBusy(true);
    try {
      await api('POST', '/invitations/accept', { token, ...body });
      setState({ kind: 'done', text: newAccount ? t('links.invite_joined_new') : t('links.invite_joined') });
    } catch (err) {
      setState({ kind: 'failed', error: asError(err) });
    } finally {
      setBusy(false);
    }
  }
  function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    void accept({ password: String(form.get('password') ?? ''), name: String(form.get('name') ?? '') }, true);
  }
  const error = state.kind === 'failed' ? state.error : undefined;
  const explained =
    error?.code === 'login_required'
      ? t('links.invite_login_required')
      : error?.code === 'email_unverified'
        ? t('links.invite_unverified')
        : error?.status === 403
          ? t('links.invite_other_account')
          : error?.status === 404
            ? t('links.invalid')
            : undefined;
  return (
    <Card title={t('links.invite_title')}>
      {!token ? (
        <p class="alert alert-error" role="alert">{t('links.no_token')}</p>
      ) : state.kind === 'done' ? (
        <Done text={state.text} href="/app" label={signedIn ? t('links.to_console') : t('links.back_to_signin')} />
      ) : signedIn === undefined ? (
        <p aria-busy="true">{t('links.working')}</p>
      ) : (
        <>
          {error && (explained ? <p class="alert alert-error" role="alert">{explained}</p> : error.errors.length === 0 && <Problem error={error} />)}
          {signedIn ? (
            <button type="button" class="btn btn-primary" disabled={busy} onClick={() => void accept({}, false)}>
              {t('links.invite_accept')}
            </button>
          ) : (
            <form onSubmit={submit} class="stack">
              <p class="muted">{t('links.invite_new_account')}</p>
              <label>
                {t('auth.name')}
                <input name="name" autocomplete="name" maxLength={200} />
              </label>
              <label>
                {t('auth.password')}
                <input name="password" type="password" required minLength={10} maxLength={128} autocomplete="new-password" aria-describedby="invite-hint invite-error" />
                <small id="invite-hint" class="muted">{t('auth.password_hint')}</small>
                <small id="invite-error" class="field-error">{fieldError(error, 'password')}</small>
              </label>
              <button type="submit" class="btn btn-primary" disabled={busy}>{t('links.invite_accept')}</button>
            </form>
          )}
          {!signedIn && <a href="/app" class="link">{t('links.back_to_signin')}</a>}
        </>
      )}
    </Card>
  );
}
