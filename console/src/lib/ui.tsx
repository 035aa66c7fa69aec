// Small shared pieces: loading/error states, a data hook, the copy button, status badges.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';
import { t } from './i18n';
import type { Status } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  reload: () => void;
}

/// Runs `load` on mount and whenever `deps` change; `reload` runs it again.
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setError(undefined);
    load().then(
      (d) => live && setData(d),
      (e: unknown) => live && setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e))),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  return { data, error, reload };
}

export function Problem({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  return (
    <div class="alert alert-error" role="alert">
      <strong>{t('error.title')}</strong>
      <p>{error.message}</p>
      {error.errors.length > 0 && (
        <ul>
          {error.errors.map((e) => (
            <li key={e.field}>
              <code>{e.field}</code>: {e.message}
            </li>
          ))}
        </ul>
      )}
      {onRetry && (
        <button type="button" class="btn" onClick={onRetry}>
          {t('common.retry')}
        </button>
      )}
    </div>
  );
}

export function Loading() {
  return (
    <p class="muted" aria-busy="true">
      {t('common.loading')}
    </p>
  );
}

/// Renders `children(data)` once loaded, the problem if it failed, a loading line before.
export function Show<T>({ state, children }: { state: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (state.error) return <Problem error={state.error} onRetry={state.reload} />;
  if (state.data === undefined) return <Loading />;
  return <>{children(state.data)}</>;
}

export function CopyButton({ text, label }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      class="btn btn-small"
      aria-label={label ?? t('common.copy')}
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => {
          setCopied(true);
          setTimeout(() => setCopied(false), 1500);
        });
      }}
    >
      {copied ? t('common.copied') : t('common.copy')}
    </button>
  );
}

export function StatusBadge({ status }: { status: Status }) {
  return <span class={`badge badge-${status}`}>{t(`status.${status}`)}</span>;
}

/// Field errors of a 422 for one field, shown under its input.
export function fieldError(error: ApiError | undefined, field: string): string | undefined {
  return error?.errors.find((e) => e.field === field || e.field.startsWith(`${field}[`) || e.field.startsWith(`${field}.`))?.message;
}
