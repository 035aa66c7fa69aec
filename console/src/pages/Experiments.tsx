import { useEffect, useState } from 'preact/hooks';
import { get, getWithHeaders, type ApiError, type ExperimentSummary, type Headline, type SiteView, type Status } from '../lib/api';
import { formatDate, formatNumber, formatPercent, t } from '../lib/i18n';
import { Show, StatusBadge, useLoad } from '../lib/ui';

const PAGE = 20;
const STATUSES: Status[] = ['draft', 'running', 'paused', 'completed', 'archived'];
/// How long the search box waits for the typing to stop before asking the server.
const SEARCH_DELAY_MS = 250;
/// The server's longest search text.
const SEARCH_MAX = 200;

/// The organisation's experiments, a page at a time, filtered by site and status and
/// searched by name on the server (`GET /experiments`, `X-Total-Count` for the pager).
export function Experiments({ canEdit }: { canEdit: boolean }) {
  const sites = useLoad(() => get<SiteView[]>('/sites'), []);
  const [site, setSite] = useState('');
  const [status, setStatus] = useState('');
  const [query, setQuery] = useState('');
  const [search, setSearch] = useState('');
  const [page, setPage] = useState(0);
  // The search box asks the server once the typing pauses, from the first page.
  useEffect(() => {
    const q = query.trim();
    if (q === search) return;
    const timer = setTimeout(() => {
      setSearch(q);
      setPage(0);
    }, SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [query, search]);
  const list = useLoad(() => {
    const params = new URLSearchParams({ limit: String(PAGE), offset: String(page * PAGE) });
    if (site) params.set('site_id', site);
    if (status) params.set('status', status);
    if (search) params.set('q', search);
    return getWithHeaders<ExperimentSummary[]>(`/experiments?${params.toString()}`);
  }, [site, status, search, page]);
  const total = list.data ? Number(list.data.headers.get('X-Total-Count') ?? list.data.body.length) : 0;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  // Experiments deleted meanwhile can leave the page past the end: back to the last one.
  useEffect(() => {
    if (list.data && page >= pages) setPage(pages - 1);
  }, [list.data, page, pages]);
  return (
    <section>
      <h1>{t('experiments.title')}</h1>
      {canEdit && (
        <p>
          <a class="btn btn-primary" href="/app/experiments/new">{t('builder.new')}</a>
        </p>
      )}
      <Show state={sites}>
        {(sites) => (
          <>
            <div class="filters row">
              <label>
                {t('experiments.site')}
                <select value={site} onChange={(e) => { setSite((e.target as HTMLSelectElement).value); setPage(0); }}>
                  <option value="">{t('common.all')}</option>
                  {sites.map((s) => (
                    <option key={s.id} value={s.id}>{s.name}</option>
                  ))}
                </select>
              </label>
              <label>
                {t('experiments.status')}
                <select value={status} onChange={(e) => { setStatus((e.target as HTMLSelectElement).value); setPage(0); }}>
                  <option value="">{t('common.all')}</option>
                  {STATUSES.map((s) => (
                    <option key={s} value={s}>{t(`status.${s}`)}</option>
                  ))}
                </select>
              </label>
              <label>
                {t('common.search')}
                <input type="search" value={query} maxLength={SEARCH_MAX} onInput={(e) => setQuery((e.target as HTMLInputElement).value)} />
              </label>
            </div>
            <Show state={list}>
              {({ body: experiments }) => (
                <>
                  {experiments.length === 0 ? (
                    <p class="muted">{t('experiments.empty')}</p>
                  ) : (
                    <Rows experiments={experiments} names={new Map(sites.map((s) => [s.id, s.name]))} />
                  )}
                  {pages > 1 && (
                    <nav class="row pager" aria-label={t('experiments.page', { page: page + 1, pages })}>
                      <button type="button" class="btn" disabled={page === 0} onClick={() => setPage(page - 1)}>{t('experiments.prev')}</button>
                      <span>{t('experiments.page', { page: page + 1, pages })}</span>
                      <button type="button" class="btn" disabled={page >= pages - 1} onClick={() => setPage(page + 1)}>{t('experiments.next')}</button>
                    </nav>
                  )}
                </>
              )}
            </Show>
          </>
        )}
      </Show>
    </section>
  );
}

/// The page's table, with the headlines of its live rows from one
/// `GET /experiments/headlines` call.
function Rows({ experiments, names }: { experiments: ExperimentSummary[]; names: Map<string, string> }) {
  const ids = experiments.filter((e) => e.status !== 'draft').map((e) => e.id).join(',');
  const headlines = useLoad(
    async () => ({ ids, list: ids ? await get<Headline[]>(`/experiments/headlines?ids=${ids}`) : [] }),
    [ids],
  );
  // Until this page's answer arrives, the previous page's is not this page's.
  const current = headlines.data?.ids === ids ? headlines.data.list : undefined;
  const byId = new Map((current ?? []).map((h) => [h.experiment_id, h]));
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={t('experiments.title')}>
      <table>
        <thead>
          <tr>
            <th scope="col">{t('sites.name')}</th>
            <th scope="col">{t('experiments.site')}</th>
            <th scope="col">{t('experiments.status')}</th>
            <th scope="col">{t('experiments.kind')}</th>
            <th scope="col">{t('experiments.headline')}</th>
            <th scope="col">{t('experiments.updated')}</th>
          </tr>
        </thead>
        <tbody>
          {experiments.map((e) => (
            <tr key={e.id}>
              <td><a href={`/app/experiments/${e.id}/results`}>{e.name}</a></td>
              <td>{names.get(e.site_id) ?? ''}</td>
              <td><StatusBadge status={e.status} /></td>
              <td>{e.kind}</td>
              <td>
                <HeadlineCell live={e.status !== 'draft'} headline={byId.get(e.id)} loading={current === undefined} error={headlines.error} />
              </td>
              <td>{formatDate(e.updated_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/// One row's live headline: visitors, the leader and its chance to be best, an SRM
/// warning and the recommendation — from the experiment's results (drafts have none;
/// nor has a live experiment without a primary goal).
function HeadlineCell({ live, headline, loading, error }: { live: boolean; headline: Headline | undefined; loading: boolean; error: ApiError | undefined }) {
  if (!live) return <span class="muted">—</span>;
  if (error) return <span class="muted">{error.message}</span>;
  if (loading) return <span class="muted">{t('common.loading')}</span>;
  if (!headline) return <span class="muted">—</span>;
  const { leader, recommendation: rec } = headline;
  if (!leader || !rec) return <span class="muted">{t('results.no_data')}</span>;
  return (
    <span class="headline" data-testid="headline">
      {t('experiments.headline_text', {
        visitors: formatNumber(headline.visitors),
        leader: leader.name,
        best: formatPercent(leader.chance_to_be_best),
      })}
      {headline.srm_mismatch && <span class="badge badge-paused"> SRM</span>}
      <br />
      <span class="muted">
        {rec.action === 'deploy_winner'
          ? t('results.rec_deploy', { arm: headline.recommended_arm?.name ?? '' })
          : rec.action === 'guardrail_harmed'
            ? t('results.rec_guardrail_harmed_short')
            : rec.action === 'no_difference'
              ? t('results.rec_none')
              : t(`results.rec_wait_${rec.reason}`)}
      </span>
    </span>
  );
}
