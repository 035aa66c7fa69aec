// The visual editor: a site's page, framed through the edge's editor proxy
// (POST /sites/{id}/editor-sessions gives the URL), where a click selects an element;
// the editor builds a change for it, the frame previews every change of the variant
// live, and Save replaces the variant's changes (PUT …/variants/{id}/changes, If-Match).
//
// Messages: the proxied page runs sandboxed (an opaque origin, "null"), so a message is
// taken only when it comes from this page's own frame window (`event.source`), from an
// opaque origin or the edge's, and has the editor script's shape; anything else is
// ignored. Messages to the frame carry only the changes being previewed (nothing
// secret), sent to "*" because an opaque origin cannot be named as a target.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api, get, post, type SiteView, type Status } from '../lib/api';
import { t } from '../lib/i18n';
import { Problem, Show, StatusBadge, useLoad } from '../lib/ui';

export type ChangeAction =
  | { type: 'set_text'; text: string }
  | { type: 'set_html'; html: string }
  | { type: 'set_attribute'; name: string; value: string }
  | { type: 'set_style'; property: string; value: string }
  | { type: 'hide' }
  | { type: 'insert'; position: 'before' | 'after' | 'prepend' | 'append'; html: string }
  | { type: 'redirect'; url: string }
  | { type: 'custom_css'; code: string }
  | { type: 'custom_js'; code: string };

export interface Change {
  selector?: string;
  action: ChangeAction;
}

interface VariantView {
  id: string;
  name: string;
  is_control: boolean;
  changes: Change[];
}

interface ExperimentView {
  id: string;
  site_id: string;
  name: string;
  status: Status;
  version: number;
  elements: { id: string; name: string; selector: string; variants: VariantView[] }[];
}

interface EditorSession {
  editor_url: string;
  expires_at: string;
  admin_origin: string;
}

/// What the editor script says when an element is clicked.
interface Selection {
  selector: string;
  tag: string;
  text: string;
}

type ActionType = ChangeAction['type'];
const STRUCTURAL: ActionType[] = ['set_text', 'set_html', 'set_attribute', 'set_style', 'hide', 'insert', 'redirect'];

/// Reads a message from the frame; null unless it has the editor script's shape.
export function readEditorMessage(data: unknown): { type: string; selection?: Selection; matched?: number[] } | null {
  if (!data || typeof data !== 'object') return null;
  const m = data as Record<string, unknown>;
  if (m.source !== 'samplit-editor' || typeof m.type !== 'string') return null;
  if (m.type === 'samplit:select') {
    const { selector, tag, text } = m;
    if (typeof selector !== 'string' || selector.length === 0 || selector.length > 1000) return null;
    if (typeof tag !== 'string' || tag.length > 40) return null;
    return { type: m.type, selection: { selector, tag, text: typeof text === 'string' ? text.slice(0, 200) : '' } };
  }
  if (m.type === 'samplit:previewed') {
    const matched = Array.isArray(m.matched) ? m.matched.filter((n): n is number => typeof n === 'number') : [];
    return { type: m.type, matched };
  }
  return { type: m.type };
}

/// One line describing a change, as the list shows it.
function describe(c: Change): string {
  const a = c.action;
  const on = c.selector ? `${c.selector}: ` : '';
  switch (a.type) {
    case 'set_text':
      return `${on}${t('editor.action.set_text')} “${a.text}”`;
    case 'set_html':
      return `${on}${t('editor.action.set_html')}`;
    case 'set_attribute':
      return `${on}${a.name}="${a.value}"`;
    case 'set_style':
      return `${on}${a.property}: ${a.value}`;
    case 'hide':
      return `${on}${t('editor.action.hide')}`;
    case 'insert':
      return `${on}${t('editor.action.insert')} (${a.position})`;
    case 'redirect':
      return `${on}${t('editor.action.redirect')} ${a.url}`;
    case 'custom_css':
      return t('editor.action.custom_css');
    case 'custom_js':
      return t('editor.action.custom_js');
  }
}

export function Editor({ id, variant, canAdmin }: { id: string; variant: string | null; canAdmin: boolean }) {
  const state = useLoad(async () => {
    const experiment = await get<ExperimentView>(`/experiments/${id}`);
    const site = await get<SiteView>(`/sites/${experiment.site_id}`);
    return { experiment, site };
  }, [id]);
  return (
    <section class="editor-page">
      <Show state={state}>
        {({ experiment, site }) => (
          <EditorBody experiment={experiment} site={site} initialVariant={variant} canAdmin={canAdmin} onSaved={state.reload} />
        )}
      </Show>
    </section>
  );
}

function EditorBody({
  experiment,
  site,
  initialVariant,
  canAdmin,
  onSaved,
}: {
  experiment: ExperimentView;
  site: SiteView;
  initialVariant: string | null;
  canAdmin: boolean;
  onSaved: () => void;
}) {
  const variants = useMemo(
    () => experiment.elements.flatMap((e) => e.variants.filter((v) => !v.is_control).map((v) => ({ element: e, variant: v }))),
    [experiment],
  );
  const [variantId, setVariantId] = useState(initialVariant && variants.some((v) => v.variant.id === initialVariant) ? initialVariant : variants[0]?.variant.id ?? '');
  const current = variants.find((v) => v.variant.id === variantId);
  const [changes, setChanges] = useState<Change[]>(current?.variant.changes ?? []);
  const [dirty, setDirty] = useState(false);
  const verified = site.domain_verification.filter((d) => d.status === 'verified').map((d) => d.host);
  const [pageUrl, setPageUrl] = useState(verified[0] ? `https://${verified[0]}/` : '');
  const [session, setSession] = useState<EditorSession | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [saveError, setSaveError] = useState<ApiError | string | undefined>(undefined);
  const [saved, setSaved] = useState(false);
  const [ready, setReady] = useState(false);
  const [selection, setSelection] = useState<Selection | undefined>(undefined);
  const [matched, setMatched] = useState<number[]>([]);
  const [browse, setBrowse] = useState(false);
  const frame = useRef<HTMLIFrameElement>(null);
  const editable = experiment.status === 'draft';

  // Switching variant, or a new version (the reload after a save), loads its saved changes.
  useEffect(() => {
    setChanges(current?.variant.changes ?? []);
    setDirty(false);
  }, [variantId, experiment.version]);
  // Only switching variant clears the save's outcome: the reload a save triggers must not
  // hide its own "Saved." (an edit clears it, in `update`).
  useEffect(() => {
    setSaved(false);
    setSaveError(undefined);
  }, [variantId]);

  const edgeOrigin = useMemo(() => {
    try {
      return session ? new URL(session.editor_url).origin : '';
    } catch {
      return '';
    }
  }, [session]);

  // The latest changes, for the message handler (registered once per session).
  const changesRef = useRef(changes);
  changesRef.current = changes;

  function toFrame(msg: unknown) {
    frame.current?.contentWindow?.postMessage(msg, '*');
  }

  useEffect(() => {
    function onMessage(e: MessageEvent) {
      if (!frame.current || e.source !== frame.current.contentWindow) return;
      if (e.origin !== 'null' && e.origin !== edgeOrigin) return;
      const m = readEditorMessage(e.data);
      if (!m) return;
      if (m.type === 'samplit:ready') {
        setReady(true);
        toFrame({ type: 'samplit:preview', changes: previewable(changesRef.current) });
      } else if (m.type === 'samplit:select' && m.selection) {
        setSelection(m.selection);
      } else if (m.type === 'samplit:previewed') {
        setMatched(m.matched ?? []);
      }
    }
    window.addEventListener('message', onMessage);
    return () => window.removeEventListener('message', onMessage);
  }, [edgeOrigin]);

  useEffect(() => {
    if (ready) toFrame({ type: 'samplit:preview', changes: previewable(changes) });
  }, [changes, ready]);

  async function open(e?: Event) {
    e?.preventDefault();
    setError(undefined);
    setReady(false);
    setSelection(undefined);
    try {
      setSession(await post<EditorSession>(`/sites/${site.id}/editor-sessions`, { url: pageUrl }));
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'error', String(err)));
    }
  }

  function update(next: Change[]) {
    setChanges(next);
    setDirty(true);
    setSaved(false);
  }

  async function save() {
    if (!current) return;
    setSaveError(undefined);
    try {
      await api('PUT', `/experiments/${experiment.id}/variants/${current.variant.id}/changes`, { changes }, { 'If-Match': `"${experiment.version}"` });
      setDirty(false);
      setSaved(true);
      onSaved();
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) setSaveError(t('lifecycle.stale'));
      else setSaveError(err instanceof ApiError ? err : String(err));
    }
  }

  function changeError(i: number): string | undefined {
    if (!(saveError instanceof ApiError)) return undefined;
    return saveError.errors.find((f) => f.field === `changes[${i}]` || f.field.startsWith(`changes[${i}].`))?.message;
  }

  if (variants.length === 0) return <p class="muted">{t('editor.no_variants')}</p>;
  return (
    <>
      <h1>
        {t('editor.title')}: {experiment.name} <StatusBadge status={experiment.status} />
      </h1>
      <p class="row">
        <a class="btn btn-small" href={`/app/experiments/${experiment.id}/results`}>{t('editor.back')}</a>
      </p>
      {!editable && <p class="alert alert-info">{t('editor.not_draft')}</p>}
      {verified.length === 0 ? (
        <p class="alert alert-info" data-testid="editor-no-domain">
          {t('editor.no_domain')} <a href={`/app/sites/${site.id}`}>{t('editor.verify_link')}</a>
        </p>
      ) : (
        <form class="row editor-open" onSubmit={(e) => void open(e)}>
          <label>
            {t('editor.page')}
            <input name="page_url" value={pageUrl} onInput={(e) => setPageUrl((e.target as HTMLInputElement).value)} required />
          </label>
          <button class="btn btn-primary" type="submit">{t('editor.open')}</button>
        </form>
      )}
      {error && <Problem error={error} />}
      <div class="editor-layout">
        <div class="editor-panel stack">
          <label>
            {t('editor.variant')}
            <select value={variantId} onChange={(e) => setVariantId((e.target as HTMLSelectElement).value)} data-testid="editor-variant">
              {variants.map(({ element, variant }) => (
                <option key={variant.id} value={variant.id}>{element.name} › {variant.name}</option>
              ))}
            </select>
          </label>
          {session && (
            <p class="row">
              <span class="muted" data-testid="editor-state">{ready ? t('editor.ready') : t('editor.loading')}</span>
              <button
                type="button"
                class="btn btn-small"
                onClick={() => {
                  setBrowse(!browse);
                  toFrame({ type: 'samplit:mode', mode: browse ? 'select' : 'browse' });
                }}
              >
                {browse ? t('editor.mode_select') : t('editor.mode_browse')}
              </button>
            </p>
          )}
          {selection && editable && (
            <ChangeForm key={selection.selector} selection={selection} onAdd={(c) => update([...changes, c])} />
          )}
          <h2>{t('editor.changes')}</h2>
          {changes.length === 0 ? (
            <p class="muted">{t('editor.no_changes')}</p>
          ) : (
            <ol class="change-list" data-testid="change-list">
              {changes.map((c, i) => (
                <li key={i}>
                  <code>{describe(c)}</code>
                  {c.selector && ready && matched[i] === 0 && <span class="badge badge-warn">{t('editor.no_match')}</span>}
                  {(c.action.type === 'custom_css' || c.action.type === 'custom_js') && <span class="badge">{t('editor.custom_code')}</span>}
                  {editable && (
                    <button type="button" class="btn btn-small" onClick={() => update(changes.filter((_, j) => j !== i))} aria-label={t('editor.remove_change', { n: i + 1 })}>
                      {t('builder.remove')}
                    </button>
                  )}
                  {changeError(i) && <p class="field-error" role="alert">{changeError(i)}</p>}
                </li>
              ))}
            </ol>
          )}
          {editable && canAdmin && <CustomCode onAdd={(c) => update([...changes, c])} />}
          {editable && (
            <p class="row">
              <button type="button" class="btn btn-primary" disabled={!dirty} onClick={() => void save()} data-testid="editor-save">
                {t('common.save')}
              </button>
              {saved && <span class="muted" role="status">{t('editor.saved')}</span>}
            </p>
          )}
          {typeof saveError === 'string' ? (
            <p class="alert alert-error" role="alert">{saveError}</p>
          ) : (
            saveError && <Problem error={saveError} />
          )}
        </div>
        <div class="editor-frame">
          {session ? (
            <iframe
              ref={frame}
              title={t('editor.frame_title')}
              src={session.editor_url}
              sandbox="allow-scripts allow-forms allow-popups allow-modals"
              referrerpolicy="no-referrer"
              data-testid="editor-frame"
            />
          ) : (
            <p class="muted">{t('editor.open_hint')}</p>
          )}
        </div>
      </div>
    </>
  );
}

/// Changes the frame can preview in place (custom code and redirects are not).
function previewable(changes: Change[]): Change[] {
  return changes.filter((c) => c.selector && STRUCTURAL.includes(c.action.type) && c.action.type !== 'redirect');
}

function ChangeForm({ selection, onAdd }: { selection: Selection; onAdd: (c: Change) => void }) {
  const [type, setType] = useState<ActionType>('set_text');
  const [selector, setSelector] = useState(selection.selector);
  const [a, setA] = useState(selection.text);
  const [b, setB] = useState('');
  const [position, setPosition] = useState<'before' | 'after' | 'prepend' | 'append'>('after');

  function action(): ChangeAction {
    switch (type) {
      case 'set_text':
        return { type, text: a };
      case 'set_html':
        return { type, html: a };
      case 'set_attribute':
        return { type, name: a, value: b };
      case 'set_style':
        return { type, property: a, value: b };
      case 'hide':
        return { type };
      case 'insert':
        return { type, position, html: a };
      case 'redirect':
        return { type, url: a };
      default:
        return { type: 'hide' };
    }
  }
  const first: Partial<Record<ActionType, string>> = {
    set_text: t('editor.field.text'),
    set_html: t('editor.field.html'),
    set_attribute: t('editor.field.attribute'),
    set_style: t('editor.field.property'),
    insert: t('editor.field.html'),
    redirect: t('editor.field.url'),
  };
  const second: Partial<Record<ActionType, string>> = {
    set_attribute: t('editor.field.value'),
    set_style: t('editor.field.value'),
  };
  return (
    <form
      class="card stack"
      data-testid="change-form"
      onSubmit={(e) => {
        e.preventDefault();
        onAdd({ selector, action: action() });
      }}
    >
      <p class="muted">
        {t('editor.selected')} <code>&lt;{selection.tag}&gt;</code>
      </p>
      <label>
        {t('builder.selector')}
        <input name="selector" value={selector} onInput={(e) => setSelector((e.target as HTMLInputElement).value)} required />
      </label>
      <label>
        {t('editor.change_type')}
        <select name="type" value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value as ActionType)}>
          {STRUCTURAL.map((s) => (
            <option key={s} value={s}>{t(`editor.action.${s}`)}</option>
          ))}
        </select>
      </label>
      {type === 'insert' && (
        <label>
          {t('editor.field.position')}
          <select value={position} onChange={(e) => setPosition((e.target as HTMLSelectElement).value as typeof position)}>
            {(['before', 'after', 'prepend', 'append'] as const).map((p) => (
              <option key={p} value={p}>{t(`editor.position.${p}`)}</option>
            ))}
          </select>
        </label>
      )}
      {first[type] && (
        <label>
          {first[type]}
          {type === 'set_html' || type === 'insert' ? (
            <textarea name="a" rows={3} value={a} onInput={(e) => setA((e.target as HTMLTextAreaElement).value)} />
          ) : (
            <input name="a" value={a} onInput={(e) => setA((e.target as HTMLInputElement).value)} />
          )}
        </label>
      )}
      {second[type] && (
        <label>
          {second[type]}
          <input name="b" value={b} onInput={(e) => setB((e.target as HTMLInputElement).value)} />
        </label>
      )}
      <button type="submit" class="btn">{t('editor.add_change')}</button>
    </form>
  );
}

/// Owners and admins only (the server refuses anyone else): page-wide CSS or JavaScript.
function CustomCode({ onAdd }: { onAdd: (c: Change) => void }) {
  const [kind, setKind] = useState<'custom_css' | 'custom_js'>('custom_css');
  const [code, setCode] = useState('');
  return (
    <details class="card">
      <summary>{t('editor.custom_code')}</summary>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          onAdd({ action: { type: kind, code } });
          setCode('');
        }}
      >
        <p class="muted">{t('editor.custom_code_note')}</p>
        <select value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value as typeof kind)}>
          <option value="custom_css">CSS</option>
          <option value="custom_js">JavaScript</option>
        </select>
        <textarea rows={4} value={code} onInput={(e) => setCode((e.target as HTMLTextAreaElement).value)} required />
        <button type="submit" class="btn">{t('editor.add_change')}</button>
      </form>
    </details>
  );
}
