import { useState } from 'preact/hooks';
import { get, type ExperimentSummary, type ResultsView, type SiteView, type Status } from '../lib/api';
import { formatDate, formatNumber, formatPercent, t } from '../lib/i18n';
import { Show, StatusBadge, useLoad } from '../lib/ui';

const PAGE = 20;
const STATUSES: Status[] = ['draft', 'running', 'paused', 'completed', 'archived'];

/// Every experiment of the organisation, filtered by site and status, searched by name.
export function Experiments({ canEdit }: { canEdit: boolean }) {
  const state = useLoad(() => Promise.all([get<ExperimentSummary[]>('/experiments'), get<SiteView[]>('/sites')]), []);
  const [site, setSite] = useState('');
  const [status, setStatus] = useState('');
  const [query, setQuery] = useState('');
  const [page, setPage] = useState(0);
  return (
    <section>
      <h1>{t('experiments.title')}</h1>
      {canEdit && (
        <p>
          <a class="btn btn-primary" href="/app/experiments/new">{t('builder.new')}</a>
        </p>
      )}
      <Show state={state}>
        {([experiments, sites]) => {
          const names = new Map(sites.map((s) => [s.id, s.name]));
          const q = query.trim().toLowerCase();
          const rows = experiments.filter(
            (e) => (!site || e.site_id === site) && (!status || e.status === status) && (!q || e.name.toLowerCase().includes(q)),
          );
          const pages = Math.max(1, Math.ceil(rows.length / PAGE));
          const current = Math.min(page, pages - 1);
          const shown = rows.slice(current * PAGE, current * PAGE + PAGE);
          return (
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
                  <input type="search" value={query} onInput={(e) => { setQuery((e.target as HTMLInputElement).value); setPage(0); }} />
                </label>
              </div>
              {shown.length === 0 ? (
                <p class="muted">{t('experiments.empty')}</p>
              ) : (
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
                      {shown.map((e) => (
                        <tr key={e.id}>
                          <td><a href={`/app/experiments/${e.id}/results`}>{e.name}</a></td>
                          <td>{names.get(e.site_id) ?? ''}</td>
                          <td><StatusBadge status={e.status} /></td>
                          <td>{e.kind}</td>
                          <td><Headline experiment={e} /></td>
                          <td>{formatDate(e.updated_at)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              {pages > 1 && (
                <nav class="row pager" aria-label={t('experiments.page', { page: current + 1, pages })}>
                  <button type="button" class="btn" disabled={current === 0} onClick={() => setPage(current - 1)}>{t('experiments.prev')}</button>
                  <span>{t('experiments.page', { page: current + 1, pages })}</span>
                  <button type="button" class="btn" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>{t('experiments.next')}</button>
                </nav>
              )}
            </>
          );
        }}
      </Show>
    </section>
  );
}

/// One row's live headline: visitors, the leader and its chance to be best, an SRM
/// warning and the recommendation — from the experiment's results (drafts have none).
function Headline({ experiment }: { experiment: ExperimentSummary }) {
  const live = experiment.status !== 'draft';
  const state = useLoad(() => (live ? get<ResultsView>(`/experiments/${experiment.id}/results`) : Promise.resolve(undefined)), [experiment.id, live]);
  if (!live) return <span class="muted">—</span>;
  if (state.error) return <span class="muted">{state.error.message}</span>;
  const analysis = state.data?.analyses[0];
  const r = analysis?.result;
  if (!state.data) return <span class="muted">{t('common.loading')}</span>;
  if (!analysis || !r) return <span class="muted">{t('results.no_data')}</span>;
  const visitors = r.arms.reduce((n, a) => n + a.visitors, 0);
  const leader = r.arms.reduce((best, a, i) => (a.chance_to_be_best > (r.arms[best]?.chance_to_be_best ?? -1) ? i : best), 0);
  const rec = r.recommendation;
  return (
    <span class="headline" data-testid="headline">
      {t('experiments.headline_text', {
        visitors: formatNumber(visitors),
        leader: analysis.subjects[leader]?.name ?? '',
        best: formatPercent(r.arms[leader]?.chance_to_be_best ?? 0),
      })}
      {r.srm.mismatch && <span class="badge badge-paused"> SRM</span>}
      <br />
      <span class="muted">
        {rec.action === 'deploy_winner'
          ? t('results.rec_deploy', { arm: analysis.subjects[rec.arm]?.name ?? '' })
          : rec.action === 'no_difference'
            ? t('results.rec_none')
            : t(`results.rec_wait_${rec.reason}`)}
      </span>
    </span>
  );
}
