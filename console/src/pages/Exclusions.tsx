// A site's exclusion rules: who never enters its experiments. One small form per kind of
// rule; the list is saved whole (PUT /sites/{id}/exclusions) with the version this page
// showed (If-Match), and the engine validates each rule (its errors name the rule).
import { useState } from 'preact/hooks';
import { ApiError, api } from '../lib/api';
import { t } from '../lib/i18n';
import { Problem } from '../lib/ui';

export type Rule =
  | { type: 'ip'; range: string }
  | { type: 'bots' }
  | { type: 'header'; name: string; value: string }
  | { type: 'cookie' | 'query_param' | 'attribute'; name: string; value: string | null };

type Kind = Rule['type'];
const KINDS: Kind[] = ['ip', 'bots', 'header', 'cookie', 'query_param', 'attribute'];

function describe(r: Rule): string {
  switch (r.type) {
    case 'ip':
      return t('exclusions.describe_ip', { range: r.range });
    case 'bots':
      return t('exclusions.describe_bots');
    case 'header':
      return t('exclusions.describe_header', { name: r.name, value: r.value });
    default:
      return t(r.value === null ? 'exclusions.describe_named_any' : 'exclusions.describe_named', {
        kind: t(`exclusions.kind_${r.type}`),
        name: r.name,
        value: r.value ?? '',
      });
  }
}

export function Exclusions({ siteId, version, rules, canAdmin, onSaved }: { siteId: string; version: number; rules: Rule[]; canAdmin: boolean; onSaved: () => void }) {
  const [kind, setKind] = useState<Kind>('ip');
  const [error, setError] = useState<ApiError | undefined>(undefined);

  async function save(next: Rule[]) {
    try {
      await api('PUT', `/sites/${siteId}/exclusions`, next, { 'If-Match': `"${version}"` });
      setError(undefined);
      onSaved();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  }
  function add(e: Event) {
    e.preventDefault();
    const formEl = e.currentTarget as HTMLFormElement;
    const form = new FormData(formEl);
    const v = (k: string) => String(form.get(k) ?? '').trim();
    let rule: Rule;
    if (kind === 'ip') rule = { type: 'ip', range: v('range') };
    else if (kind === 'bots') rule = { type: 'bots' };
    else if (kind === 'header') rule = { type: 'header', name: v('name'), value: v('value') };
    else rule = { type: kind, name: v('name'), value: v('value') || null };
    formEl.reset();
    void save([...rules, rule]);
  }
  return (
    <div class="exclusions">
      {error && (error.status === 412 ? <p class="alert alert-error" role="alert">{t('lifecycle.stale')}</p> : <Problem error={error} />)}
      {rules.length === 0 ? (
        <p class="muted">{t('exclusions.none')}</p>
      ) : (
        <ul class="list" data-testid="exclusions">
          {rules.map((r, i) => (
            <li key={i}>
              {describe(r)}{' '}
              {canAdmin && (
                <button type="button" class="btn btn-small" onClick={() => void save(rules.filter((_, j) => j !== i))}>
                  {t('builder.remove')}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {canAdmin && (
        <form class="card grid-form" onSubmit={add} aria-label={t('exclusions.add')}>
          <label>
            {t('exclusions.kind')}
            <select value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as Kind)}>
              {KINDS.map((k) => (
                <option key={k} value={k}>{t(`exclusions.kind_${k}`)}</option>
              ))}
            </select>
          </label>
          {kind === 'ip' && (
            <label>
              {t('exclusions.range')}
              <input name="range" required placeholder="203.0.113.0/24" />
            </label>
          )}
          {kind !== 'ip' && kind !== 'bots' && (
            <>
              <label>
                {t('sites.name')}
                <input name="name" required />
              </label>
              <label>
                {kind === 'header' ? t('exclusions.value') : t('exclusions.value_optional')}
                <input name="value" required={kind === 'header'} />
              </label>
            </>
          )}
          <button type="submit" class="btn btn-primary">{t('exclusions.add')}</button>
        </form>
      )}
    </div>
  );
}
