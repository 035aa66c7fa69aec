// The experiment builder: an A/B/n test of one element — its variants (each may replace
// the element's text; the visual editor will add the other changes), goals, allocator,
// coverage and URL targeting — created as a draft with POST /sites/{id}/experiments.
import { useState } from 'preact/hooks';
import { ApiError, get, post, type SiteView } from '../lib/api';
import { t } from '../lib/i18n';
import { navigate } from '../lib/router';
import { Problem, Show, useLoad } from '../lib/ui';

interface Variant {
  name: string;
  text: string;
  weight: number;
}

type Trigger = 'custom' | 'url' | 'click';

interface Goal {
  name: string;
  type: Trigger;
  value: string;
  metric: 'conversion' | 'revenue';
}

function trigger(g: Goal): unknown {
  switch (g.type) {
    case 'custom':
      return { type: 'custom', event: g.value };
    case 'url':
      return { type: 'url', rule: { match: 'prefix', pattern: g.value, include: true } };
    case 'click':
      return { type: 'click', selector: g.value };
  }
}

export function Builder() {
  const sites = useLoad(() => get<SiteView[]>('/sites'), []);
  const [variants, setVariants] = useState<Variant[]>([
    { name: 'Control', text: '', weight: 1 },
    { name: 'B', text: '', weight: 1 },
  ]);
  const [goals, setGoals] = useState<Goal[]>([{ name: 'signup', type: 'custom', value: 'signup', metric: 'conversion' }]);
  const [primary, setPrimary] = useState(0);
  const [allocator, setAllocator] = useState<'fixed_split' | 'thompson'>('fixed_split');
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const setVariant = (i: number, v: Partial<Variant>) => setVariants(variants.map((x, j) => (j === i ? { ...x, ...v } : x)));
  const setGoal = (i: number, g: Partial<Goal>) => setGoals(goals.map((x, j) => (j === i ? { ...x, ...g } : x)));

  async function submit(e: Event) {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    const value = (k: string) => String(form.get(k) ?? '').trim();
    const selector = value('selector');
    const urlPrefix = value('url_prefix');
    const body = {
      name: value('name'),
      description: value('description'),
      kind: 'single',
      coverage: Number(value('coverage')) / 100,
      url_rules: urlPrefix ? [{ match: 'prefix', pattern: urlPrefix, include: true }] : [],
      allocator:
        allocator === 'thompson'
          ? { kind: 'thompson', min_exposures: Number(value('min_exposures')), floor: Number(value('floor')) / 100 }
          : { kind: 'fixed_split' },
      elements: [
        {
          name: value('element_name') || selector,
          selector,
          variants: variants.map((v, i) => ({
            name: v.name,
            is_control: i === 0,
            weight: v.weight,
            changes: i > 0 && v.text ? [{ selector, action: { type: 'set_text', text: v.text } }] : [],
          })),
        },
      ],
      goals: goals.map((g, i) => ({ name: g.name, metric: g.metric, primary: i === primary, trigger: trigger(g) })),
    };
    setBusy(true);
    try {
      const created = await post<{ id: string }>(`/sites/${value('site')}/experiments`, body);
      navigate(`/experiments/${created.id}/results`);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
      window.scrollTo(0, 0);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section>
      <h1>{t('builder.title')}</h1>
      {error && <Problem error={error} />}
      <Show state={sites}>
        {(list) =>
          list.length === 0 ? (
            <p class="muted">{t('builder.no_site')}</p>
          ) : (
            <form class="stack" onSubmit={submit}>
              <fieldset class="card stack">
                <legend>{t('builder.basics')}</legend>
                <label>
                  {t('experiments.site')}
                  <select name="site">
                    {list.map((s) => (
                      <option key={s.id} value={s.id}>{s.name}</option>
                    ))}
                  </select>
                </label>
                <label>
                  {t('sites.name')}
                  <input name="name" required maxLength={200} />
                </label>
                <label>
                  {t('builder.description')}
                  <textarea name="description" rows={2} />
                </label>
                <label>
                  {t('builder.url_prefix')}
                  <input name="url_prefix" placeholder="/pricing" />
                  <small class="muted">{t('builder.url_prefix_hint')}</small>
                </label>
                <label>
                  {t('builder.coverage')}
                  <input name="coverage" type="number" min="1" max="100" step="any" value="100" required />
                </label>
              </fieldset>

              <fieldset class="card stack">
                <legend>{t('builder.element')}</legend>
                <label>
                  {t('builder.selector')}
                  <input name="selector" required placeholder="#hero h1" />
                </label>
                <label>
                  {t('builder.element_name')}
                  <input name="element_name" placeholder="Headline" />
                </label>
                {variants.map((v, i) => (
                  <div class="grid-form variant" key={i} data-variant={i}>
                    <label>
                      {i === 0 ? t('builder.control_name') : t('builder.variant_name', { n: i })}
                      <input value={v.name} required onInput={(e) => setVariant(i, { name: (e.target as HTMLInputElement).value })} />
                    </label>
                    {i > 0 && (
                      <label>
                        {t('builder.variant_text')}
                        <input value={v.text} onInput={(e) => setVariant(i, { text: (e.target as HTMLInputElement).value })} />
                      </label>
                    )}
                    {allocator === 'fixed_split' && (
                      <label>
                        {t('builder.weight')}
                        <input type="number" min="0" step="any" value={v.weight} onInput={(e) => setVariant(i, { weight: Number((e.target as HTMLInputElement).value) })} />
                      </label>
                    )}
                    {i > 1 && (
                      <button type="button" class="btn btn-small" onClick={() => setVariants(variants.filter((_, j) => j !== i))}>
                        {t('builder.remove')}
                      </button>
                    )}
                  </div>
                ))}
                <button type="button" class="btn" onClick={() => setVariants([...variants, { name: String.fromCharCode(65 + variants.length), text: '', weight: 1 }])}>
                  {t('builder.add_variant')}
                </button>
              </fieldset>

              <fieldset class="card stack">
                <legend>{t('builder.goals')}</legend>
                {goals.map((g, i) => (
                  <div class="grid-form" key={i} data-goal={i}>
                    <label>
                      {t('sites.name')}
                      <input value={g.name} required onInput={(e) => setGoal(i, { name: (e.target as HTMLInputElement).value })} />
                    </label>
                    <label>
                      {t('builder.trigger')}
                      <select value={g.type} onChange={(e) => setGoal(i, { type: (e.target as HTMLSelectElement).value as Trigger })}>
                        <option value="custom">{t('builder.trigger_custom')}</option>
                        <option value="url">{t('builder.trigger_url')}</option>
                        <option value="click">{t('builder.trigger_click')}</option>
                      </select>
                    </label>
                    <label>
                      {g.type === 'custom' ? t('builder.event') : g.type === 'url' ? t('builder.url_prefix') : t('builder.selector')}
                      <input value={g.value} required onInput={(e) => setGoal(i, { value: (e.target as HTMLInputElement).value })} />
                    </label>
                    <label>
                      {t('builder.metric')}
                      <select value={g.metric} onChange={(e) => setGoal(i, { metric: (e.target as HTMLSelectElement).value as Goal['metric'] })}>
                        <option value="conversion">{t('builder.metric_conversion')}</option>
                        <option value="revenue">{t('builder.metric_revenue')}</option>
                      </select>
                    </label>
                    <label class="inline">
                      <input type="radio" name="primary" checked={primary === i} onChange={() => setPrimary(i)} />
                      {t('builder.primary')}
                    </label>
                  </div>
                ))}
                <button type="button" class="btn" onClick={() => setGoals([...goals, { name: '', type: 'custom', value: '', metric: 'conversion' }])}>
                  {t('builder.add_goal')}
                </button>
              </fieldset>

              <fieldset class="card stack">
                <legend>{t('builder.allocator')}</legend>
                <label class="inline">
                  <input type="radio" name="allocator" checked={allocator === 'fixed_split'} onChange={() => setAllocator('fixed_split')} />
                  {t('builder.fixed')}
                </label>
                <p class="muted">{t('builder.fixed_explain')}</p>
                <label class="inline">
                  <input type="radio" name="allocator" checked={allocator === 'thompson'} onChange={() => setAllocator('thompson')} />
                  {t('builder.thompson')}
                </label>
                <p class="muted">{t('builder.thompson_explain')}</p>
                {allocator === 'thompson' && (
                  <div class="grid-form">
                    <label>
                      {t('builder.burn_in')}
                      <input name="min_exposures" type="number" min="0" step="1" value="100" />
                      <small class="muted">{t('builder.burn_in_explain')}</small>
                    </label>
                    <label>
                      {t('builder.floor')}
                      <input name="floor" type="number" min="0" max="50" step="any" value="1" />
                      <small class="muted">{t('builder.floor_explain')}</small>
                    </label>
                  </div>
                )}
              </fieldset>
              <button type="submit" class="btn btn-primary" disabled={busy}>
                {t('builder.create')}
              </button>
            </form>
          )
        }
      </Show>
    </section>
  );
}
