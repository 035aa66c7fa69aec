// The experiment builder, for a new experiment (created as a draft with POST
// /sites/{id}/experiments) and for editing a draft (PATCH /experiments/{id} with
// If-Match): what and where, one or more elements with their variants (each may replace
// its element's text; the visual editor makes the other changes, which editing keeps),
// the kind when there are several elements (independent or factorial), goals, allocator
// and coverage.
import { useState } from 'preact/hooks';
import { ApiError, api, get, post, type SiteView, type Status } from '../lib/api';
import { t } from '../lib/i18n';
import { navigate } from '../lib/router';
import { Problem, Show, useLoad } from '../lib/ui';

interface Change {
  selector?: string;
  action: { type: string; text?: string } & Record<string, unknown>;
}

interface Variant {
  name: string;
  text: string;
  weight: number;
  /// Changes made elsewhere (the visual editor), kept as they are.
  others: Change[];
}

interface Element {
  name: string;
  selector: string;
  variants: Variant[];
}

type Kind = 'single' | 'independent' | 'factorial';
type Trigger = 'custom' | 'url' | 'click';

type Direction = 'higher_is_better' | 'lower_is_better';

interface Goal {
  name: string;
  type: Trigger;
  value: string;
  metric: 'conversion' | 'revenue';
  /// A guardrail (never the primary goal): the tolerated loss in percent and which way is better.
  guardrail?: boolean;
  margin?: number;
  direction?: Direction;
}

/// What the builder edits: a new experiment's defaults, or a draft's current definition.
interface Draft {
  siteId: string;
  name: string;
  description: string;
  urlPrefix: string;
  coverage: number;
  kind: Kind;
  elements: Element[];
  goals: Goal[];
  primary: number;
  allocator: 'fixed_split' | 'thompson';
  minExposures: number;
  floor: number;
}

/// The experiment as GET /experiments/{id} returns it (the parts the builder edits).
interface ExperimentView {
  id: string;
  site_id: string;
  name: string;
  description: string;
  kind: Kind;
  status: Status;
  version: number;
  coverage: number;
  allocator: { kind: string; min_exposures?: number; floor?: number };
  url_rules: { match?: string; pattern?: string; include?: boolean }[];
  elements: { name: string; selector: string; variants: { name: string; is_control: boolean; weight: number; changes: Change[] }[] }[];
  goals: {
    name: string;
    metric: 'conversion' | 'revenue';
    primary: boolean;
    trigger: { type: Trigger; event?: string; selector?: string; rule?: { pattern?: string } };
    guardrail?: boolean;
    guardrail_margin?: number | null;
    guardrail_direction?: Direction | null;
  }[];
}

const variant = (name: string): Variant => ({ name, text: '', weight: 1, others: [] });
const element = (): Element => ({ name: '', selector: '', variants: [variant('Control'), variant('B')] });

function newDraft(siteId: string): Draft {
  return {
    siteId,
    name: '',
    description: '',
    urlPrefix: '',
    coverage: 100,
    kind: 'single',
    elements: [element()],
    goals: [{ name: 'signup', type: 'custom', value: 'signup', metric: 'conversion' }],
    primary: 0,
    allocator: 'fixed_split',
    minExposures: 100,
    floor: 1,
  };
}

/// A draft's definition in the builder's terms: a variant's text is its `set_text` on its
/// element's selector; every other change is kept aside and sent back unchanged.
export function fromExperiment(e: ExperimentView): Draft {
  const prefix = e.url_rules.length === 1 && e.url_rules[0]!.match === 'prefix' && e.url_rules[0]!.include !== false ? e.url_rules[0]!.pattern ?? '' : '';
  return {
    siteId: e.site_id,
    name: e.name,
    description: e.description,
    urlPrefix: prefix,
    coverage: Math.round(e.coverage * 10000) / 100,
    kind: e.kind,
    elements: e.elements.map((el) => ({
      name: el.name,
      selector: el.selector,
      variants: el.variants.map((v) => {
        const text = v.changes.find((c) => c.selector === el.selector && c.action.type === 'set_text');
        return {
          name: v.name,
          weight: v.weight,
          text: typeof text?.action.text === 'string' ? text.action.text : '',
          others: v.changes.filter((c) => c !== text),
        };
      }),
    })),
    goals: e.goals.map((g) => ({
      name: g.name,
      metric: g.metric,
      type: g.trigger.type,
      value: g.trigger.type === 'custom' ? g.trigger.event ?? '' : g.trigger.type === 'url' ? g.trigger.rule?.pattern ?? '' : g.trigger.selector ?? '',
      guardrail: g.guardrail ?? false,
      margin: Math.round((g.guardrail_margin ?? 0.05) * 10000) / 100,
      direction: g.guardrail_direction ?? 'higher_is_better',
    })),
    primary: Math.max(0, e.goals.findIndex((g) => g.primary)),
    allocator: e.allocator.kind === 'thompson' ? 'thompson' : 'fixed_split',
    minExposures: e.allocator.min_exposures ?? 100,
    floor: Math.round((e.allocator.floor ?? 0.01) * 10000) / 100,
  };
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

/// The request body (the same for POST and PATCH, less the site).
export function body(d: Draft): Record<string, unknown> {
  return {
    name: d.name.trim(),
    description: d.description.trim(),
    kind: d.elements.length === 1 ? 'single' : d.kind === 'single' ? 'independent' : d.kind,
    coverage: d.coverage / 100,
    url_rules: d.urlPrefix.trim() ? [{ match: 'prefix', pattern: d.urlPrefix.trim(), include: true }] : [],
    allocator: d.allocator === 'thompson' ? { kind: 'thompson', min_exposures: d.minExposures, floor: d.floor / 100 } : { kind: 'fixed_split' },
    elements: d.elements.map((el) => ({
      name: el.name.trim() || el.selector.trim(),
      selector: el.selector.trim(),
      variants: el.variants.map((v, i) => ({
        name: v.name,
        is_control: i === 0,
        weight: v.weight,
        changes: [...v.others, ...(i > 0 && v.text ? [{ selector: el.selector.trim(), action: { type: 'set_text', text: v.text } }] : [])],
      })),
    })),
    goals: d.goals.map((g, i) => ({
      name: g.name,
      metric: g.metric,
      primary: i === d.primary,
      trigger: trigger(g),
      // The primary goal is never a guardrail (the API refuses it): its box is hidden and ignored.
      ...(g.guardrail && i !== d.primary
        ? { guardrail: true, guardrail_margin: (g.margin ?? 5) / 100, guardrail_direction: g.direction ?? 'higher_is_better' }
        : {}),
    })),
  };
}

/// `/experiments/new`.
export function Builder() {
  const sites = useLoad(() => get<SiteView[]>('/sites'), []);
  return (
    <section>
      <h1>{t('builder.title')}</h1>
      <Show state={sites}>
        {(list) => (list.length === 0 ? <p class="muted">{t('builder.no_site')}</p> : <BuilderForm sites={list} initial={newDraft(list[0]!.id)} />)}
      </Show>
    </section>
  );
}

/// `/experiments/{id}/edit`: a draft only (the server refuses other changes anyway).
export function EditDraft({ id }: { id: string }) {
  const state = useLoad(() => Promise.all([get<ExperimentView>(`/experiments/${id}`), get<SiteView[]>('/sites')]), [id]);
  return (
    <section>
      <Show state={state}>
        {([experiment, sites]) => (
          <>
            <h1>{t('builder.edit_title', { name: experiment.name })}</h1>
            {experiment.status !== 'draft' ? (
              <p class="alert alert-info">{t('editor.not_draft')}</p>
            ) : (
              <BuilderForm key={experiment.version} sites={sites} initial={fromExperiment(experiment)} editing={{ id, version: experiment.version }} onStale={state.reload} />
            )}
          </>
        )}
      </Show>
    </section>
  );
}

function BuilderForm({
  sites,
  initial,
  editing,
  onStale,
}: {
  sites: SiteView[];
  initial: Draft;
  editing?: { id: string; version: number };
  onStale?: () => void;
}) {
  const [d, setD] = useState<Draft>(initial);
  const [error, setError] = useState<ApiError | string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const set = (patch: Partial<Draft>) => setD({ ...d, ...patch });
  const setElement = (i: number, patch: Partial<Element>) => set({ elements: d.elements.map((x, j) => (j === i ? { ...x, ...patch } : x)) });
  const setVariant = (e: number, i: number, patch: Partial<Variant>) =>
    setElement(e, { variants: d.elements[e]!.variants.map((x, j) => (j === i ? { ...x, ...patch } : x)) });
  const setGoal = (i: number, g: Partial<Goal>) => set({ goals: d.goals.map((x, j) => (j === i ? { ...x, ...g } : x)) });
  const multi = d.elements.length > 1;
  const input = (f: (v: string) => void) => (e: Event) => f((e.target as HTMLInputElement).value);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    try {
      if (editing) {
        await api('PATCH', `/experiments/${editing.id}`, body(d), { 'If-Match': `"${editing.version}"` });
        navigate(`/experiments/${editing.id}/results`);
      } else {
        const created = await post<{ id: string }>(`/sites/${d.siteId}/experiments`, body(d));
        navigate(`/experiments/${created.id}/results`);
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) setError(t('lifecycle.stale'));
      else setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
      window.scrollTo(0, 0);
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      {typeof error === 'string' ? (
        <p class="alert alert-error" role="alert" data-testid="builder-stale">
          {error}{' '}
          {onStale && (
            <button type="button" class="btn btn-small" onClick={onStale}>
              {t('lifecycle.reload')}
            </button>
          )}
        </p>
      ) : (
        error && <Problem error={error} />
      )}
      <form class="stack" onSubmit={submit}>
        <fieldset class="card stack">
          <legend>{t('builder.basics')}</legend>
          <label>
            {t('experiments.site')}
            <select name="site" value={d.siteId} disabled={!!editing} onChange={(e) => set({ siteId: (e.target as HTMLSelectElement).value })}>
              {sites.map((s) => (
                <option key={s.id} value={s.id}>{s.name}</option>
              ))}
            </select>
          </label>
          <label>
            {t('sites.name')}
            <input name="name" required maxLength={200} value={d.name} onInput={input((v) => set({ name: v }))} />
          </label>
          <label>
            {t('builder.description')}
            <textarea name="description" rows={2} value={d.description} onInput={input((v) => set({ description: v }))} />
          </label>
          <label>
            {t('builder.url_prefix')}
            <input name="url_prefix" placeholder="/pricing" value={d.urlPrefix} onInput={input((v) => set({ urlPrefix: v }))} />
            <small class="muted">{t('builder.url_prefix_hint')}</small>
          </label>
          <label>
            {t('builder.coverage')}
            <input name="coverage" type="number" min="1" max="100" step="any" required value={d.coverage} onInput={input((v) => set({ coverage: Number(v) }))} />
          </label>
        </fieldset>

        {d.elements.map((el, e) => (
          <fieldset class="card stack" key={e} data-element={e}>
            <legend>{multi ? t('builder.element_n', { n: e + 1 }) : t('builder.element')}</legend>
            <label>
              {t('builder.selector')}
              <input name={e === 0 ? 'selector' : `selector_${e}`} required placeholder="#hero h1" value={el.selector} onInput={input((v) => setElement(e, { selector: v }))} />
            </label>
            <label>
              {t('builder.element_name')}
              <input name={e === 0 ? 'element_name' : `element_name_${e}`} placeholder="Headline" value={el.name} onInput={input((v) => setElement(e, { name: v }))} />
            </label>
            {el.variants.map((v, i) => (
              <div class="grid-form variant" key={i} data-variant={i}>
                <label>
                  {i === 0 ? t('builder.control_name') : t('builder.variant_name', { n: i })}
                  <input value={v.name} required onInput={input((x) => setVariant(e, i, { name: x }))} />
                </label>
                {i > 0 && (
                  <label>
                    {t('builder.variant_text')}
                    <input value={v.text} onInput={input((x) => setVariant(e, i, { text: x }))} />
                  </label>
                )}
                {d.allocator === 'fixed_split' && (
                  <label>
                    {t('builder.weight')}
                    <input type="number" min="0" step="any" value={v.weight} onInput={input((x) => setVariant(e, i, { weight: Number(x) }))} />
                  </label>
                )}
                {v.others.length > 0 && <p class="muted">{t('builder.other_changes', { n: v.others.length })}</p>}
                {i > 1 && (
                  <button type="button" class="btn btn-small" onClick={() => setElement(e, { variants: el.variants.filter((_, j) => j !== i) })}>
                    {t('builder.remove')}
                  </button>
                )}
              </div>
            ))}
            <p class="row">
              <button type="button" class="btn" onClick={() => setElement(e, { variants: [...el.variants, variant(String.fromCharCode(65 + el.variants.length))] })}>
                {t('builder.add_variant')}
              </button>
              {multi && (
                <button type="button" class="btn" onClick={() => set({ elements: d.elements.filter((_, j) => j !== e) })}>
                  {t('builder.remove_element')}
                </button>
              )}
            </p>
          </fieldset>
        ))}
        <p class="row">
          <button type="button" class="btn" onClick={() => set({ elements: [...d.elements, element()], kind: d.kind === 'single' ? 'independent' : d.kind })}>
            {t('builder.add_element')}
          </button>
        </p>
        {multi && (
          <fieldset class="card stack">
            <legend>{t('builder.kind')}</legend>
            <label class="inline">
              <input type="radio" name="kind" checked={d.kind !== 'factorial'} onChange={() => set({ kind: 'independent' })} />
              {t('builder.kind_independent')}
            </label>
            <p class="muted">{t('builder.kind_independent_explain')}</p>
            <label class="inline">
              <input type="radio" name="kind" checked={d.kind === 'factorial'} onChange={() => set({ kind: 'factorial' })} />
              {t('builder.kind_factorial')}
            </label>
            <p class="muted">
              {t('builder.kind_factorial_explain', { n: d.elements.reduce((n, el) => n * el.variants.length, 1) })}
            </p>
          </fieldset>
        )}

        <fieldset class="card stack">
          <legend>{t('builder.goals')}</legend>
          {d.goals.map((g, i) => (
            <div class="grid-form" key={i} data-goal={i}>
              <label>
                {t('sites.name')}
                <input value={g.name} required onInput={input((v) => setGoal(i, { name: v }))} />
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
                <input value={g.value} required onInput={input((v) => setGoal(i, { value: v }))} />
              </label>
              <label>
                {t('builder.metric')}
                <select value={g.metric} onChange={(e) => setGoal(i, { metric: (e.target as HTMLSelectElement).value as Goal['metric'] })}>
                  <option value="conversion">{t('builder.metric_conversion')}</option>
                  <option value="revenue">{t('builder.metric_revenue')}</option>
                </select>
              </label>
              <label class="inline">
                <input type="radio" name="primary" checked={d.primary === i} onChange={() => set({ primary: i })} />
                {t('builder.primary')}
              </label>
              {d.primary !== i && (
                <label class="inline">
                  <input
                    type="checkbox"
                    name={`guardrail-${i}`}
                    checked={g.guardrail ?? false}
                    onChange={(e) => setGoal(i, { guardrail: (e.target as HTMLInputElement).checked })}
                  />
                  {t('builder.guardrail')}
                </label>
              )}
              {d.primary !== i && g.guardrail && (
                <>
                  <label>
                    {t('builder.guardrail_margin')}
                    <input
                      type="number"
                      name={`guardrail-margin-${i}`}
                      min="0.1"
                      max="100"
                      step="any"
                      required
                      value={g.margin ?? 5}
                      onInput={(e) => setGoal(i, { margin: Number((e.target as HTMLInputElement).value) })}
                    />
                  </label>
                  <label>
                    {t('builder.guardrail_direction')}
                    <select
                      name={`guardrail-direction-${i}`}
                      value={g.direction ?? 'higher_is_better'}
                      onChange={(e) => setGoal(i, { direction: (e.target as HTMLSelectElement).value as Direction })}
                    >
                      <option value="higher_is_better">{t('builder.higher_is_better')}</option>
                      <option value="lower_is_better">{t('builder.lower_is_better')}</option>
                    </select>
                  </label>
                </>
              )}
            </div>
          ))}
          <button type="button" class="btn" onClick={() => set({ goals: [...d.goals, { name: '', type: 'custom', value: '', metric: 'conversion' }] })}>
            {t('builder.add_goal')}
          </button>
        </fieldset>

        <fieldset class="card stack">
          <legend>{t('builder.allocator')}</legend>
          <label class="inline">
            <input type="radio" name="allocator" checked={d.allocator === 'fixed_split'} onChange={() => set({ allocator: 'fixed_split' })} />
            {t('builder.fixed')}
          </label>
          <p class="muted">{t('builder.fixed_explain')}</p>
          <label class="inline">
            <input type="radio" name="allocator" checked={d.allocator === 'thompson'} onChange={() => set({ allocator: 'thompson' })} />
            {t('builder.thompson')}
          </label>
          <p class="muted">{t('builder.thompson_explain')}</p>
          {d.allocator === 'thompson' && (
            <div class="grid-form">
              <label>
                {t('builder.burn_in')}
                <input name="min_exposures" type="number" min="0" step="1" value={d.minExposures} onInput={input((v) => set({ minExposures: Number(v) }))} />
                <small class="muted">{t('builder.burn_in_explain')}</small>
              </label>
              <label>
                {t('builder.floor')}
                <input name="floor" type="number" min="0" max="50" step="any" value={d.floor} onInput={input((v) => set({ floor: Number(v) }))} />
                <small class="muted">{t('builder.floor_explain')}</small>
              </label>
            </div>
          )}
        </fieldset>
        <button type="submit" class="btn btn-primary" disabled={busy}>
          {editing ? t('builder.save') : t('builder.create')}
        </button>
      </form>
    </>
  );
}
