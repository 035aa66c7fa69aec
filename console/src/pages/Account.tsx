// The signed-in person's account: name and language, the email address (verified or
// not, with a new verification link on request), changing the address (confirmed by a
// mailed link) and the password (the other sessions end).
import { useState } from 'preact/hooks';
import { ApiError, api, type Me } from '../lib/api';
import { setLang, t, type Lang } from '../lib/i18n';
import { Problem, fieldError } from '../lib/ui';

function asError(err: unknown): ApiError {
  return err instanceof ApiError ? err : new ApiError(0, 'error', String(err));
}

type Outcome = { ok: string } | { error: ApiError } | undefined;

function Said({ outcome, id }: { outcome: Outcome; id: string }) {
  if (!outcome) return null;
  if ('ok' in outcome) return <p class="alert alert-info" role="status" data-testid={`${id}-ok`}>{outcome.ok}</p>;
  if (outcome.error.code === 'wrong_password') return <p class="alert alert-error" role="alert">{t('account.wrong_password')}</p>;
  if (outcome.error.errors.length > 0) return null;
  return <Problem error={outcome.error} />;
}

/// Runs a form's request; what happened, for <Said>.
function useForm(run: (form: FormData) => Promise<string>) {
  const [outcome, setOutcome] = useState<Outcome>(undefined);
  const [busy, setBusy] = useState(false);
  async function onSubmit(e: Event) {
    e.preventDefault();
    const el = e.currentTarget as HTMLFormElement;
    setBusy(true);
    try {
      setOutcome({ ok: await run(new FormData(el)) });
      el.reset();
    } catch (err) {
      setOutcome({ error: asError(err) });
    } finally {
      setBusy(false);
    }
  }
  const error = outcome && 'error' in outcome ? outcome.error : undefined;
  return { outcome, busy, onSubmit, error };
}

export function Account({ me, onChanged }: { me: Me; onChanged: () => void }) {
  const user = me.user;
  const [resent, setResent] = useState<Outcome>(undefined);
  const profile = useForm(async (form) => {
    const language = String(form.get('language')) as Lang;
    await api('PATCH', '/auth/me', { name: String(form.get('name') ?? ''), language });
    setLang(language);
    onChanged();
    return t('account.saved');
  });
  const email = useForm(async (form) => {
    const to = String(form.get('new_email') ?? '');
    await api('POST', '/auth/email', { new_email: to, password: String(form.get('password') ?? '') });
    return t('account.change_email_sent', { email: to });
  });
  const password = useForm(async (form) => {
    await api('POST', '/auth/password', {
      current_password: String(form.get('current_password') ?? ''),
      new_password: String(form.get('new_password') ?? ''),
    });
    return t('account.password_changed');
  });
  if (!user) return <p>{t('error.not_found')}</p>;

  async function resend() {
    try {
      await api('POST', '/auth/verify-email/resend');
      setResent({ ok: t('account.resent', { email: user!.email }) });
    } catch (err) {
      setResent({ error: asError(err) });
    }
  }

  return (
    <section class="stack account">
      <h1>{t('account.title')}</h1>

      <div class="card stack">
        <h2>{t('account.email')}</h2>
        <p>
          <strong data-testid="account-email">{user.email}</strong>{' '}
          {user.email_verified ? (
            <span class="badge badge-running" data-testid="email-badge">{t('account.verified')}</span>
          ) : (
            <span class="badge badge-warn" data-testid="email-badge">{t('account.unverified')}</span>
          )}
        </p>
        {!user.email_verified &&
          (me.mail_delivery ? (
            <>
              <p class="muted">{t('account.unverified_note')}</p>
              <div>
                <button type="button" class="btn" onClick={() => void resend()}>{t('account.resend')}</button>
              </div>
              <Said outcome={resent} id="resend" />
            </>
          ) : (
            <p class="muted">{t('account.no_mail')}</p>
          ))}
      </div>

      <form class="card stack" onSubmit={profile.onSubmit}>
        <h2>{t('account.profile')}</h2>
        <label>
          {t('auth.name')}
          <input name="name" autocomplete="name" maxLength={200} defaultValue={user.name} aria-describedby="account-name-error" />
          <small id="account-name-error" class="field-error">{fieldError(profile.error, 'name')}</small>
        </label>
        <label>
          {t('account.language')}
          <select name="language" defaultValue={user.language}>
            <option value="en">English</option>
            <option value="es">Español</option>
          </select>
        </label>
        <div>
          <button type="submit" class="btn btn-primary" disabled={profile.busy}>{t('common.save')}</button>
        </div>
        <Said outcome={profile.outcome} id="profile" />
      </form>

      {me.mail_delivery && (
        <form class="card stack" onSubmit={email.onSubmit}>
          <h2>{t('account.change_email')}</h2>
          <label>
            {t('account.new_email')}
            <input name="new_email" type="email" autocomplete="email" required aria-describedby="new-email-error" />
            <small id="new-email-error" class="field-error">{fieldError(email.error, 'new_email')}</small>
          </label>
          <label>
            {t('account.current_password')}
            <input name="password" type="password" autocomplete="current-password" required />
          </label>
          <div>
            <button type="submit" class="btn btn-primary" disabled={email.busy}>{t('account.change_email_send')}</button>
          </div>
          <Said outcome={email.outcome} id="change-email" />
        </form>
      )}

      <form class="card stack" onSubmit={password.onSubmit}>
        <h2>{t('account.change_password')}</h2>
        <label>
          {t('account.current_password')}
          <input name="current_password" type="password" autocomplete="current-password" required />
        </label>
        <label>
          {t('links.new_password')}
          <input name="new_password" type="password" autocomplete="new-password" required minLength={10} maxLength={128} aria-describedby="account-pw-hint account-pw-error" />
          <small id="account-pw-hint" class="muted">{t('auth.password_hint')}</small>
          <small id="account-pw-error" class="field-error">{fieldError(password.error, 'new_password')}</small>
        </label>
        <div>
          <button type="submit" class="btn btn-primary" disabled={password.busy}>{t('account.change_password_save')}</button>
        </div>
        <Said outcome={password.outcome} id="change-password" />
      </form>
    </section>
  );
}
