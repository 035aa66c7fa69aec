import { get, type ExperimentSummary, type SiteView } from '../lib/api';
import { t } from '../lib/i18n';
import { Show, useLoad } from '../lib/ui';

interface Step {
  title: string;
  done: boolean;
  detail: string;
  href: string;
}

/// The onboarding checklist: each step's state comes from the API, never assumed.
export function Overview() {
  const state = useLoad(
    () => Promise.all([get<SiteView[]>('/sites'), get<ExperimentSummary[]>('/experiments')]),
    [],
  );
  return (
    <section>
      <h1>{t('overview.title')}</h1>
      <p class="muted">{t('overview.lead')}</p>
      <Show state={state}>
        {([sites, experiments]) => {
          const site = sites[0];
          const seen = sites.find((s) => s.snippet_seen_at);
          const verified = sites.flatMap((s) => s.domain_verification).find((d) => d.status === 'verified');
          const steps: Step[] = [
            { title: t('overview.step_site'), done: !!site, detail: site ? t('overview.step_site_done', { name: site.name }) : '', href: '/app/sites' },
            {
              title: t('overview.step_snippet'),
              done: !!seen,
              detail: seen ? t('overview.step_snippet_done') : t('overview.step_snippet_todo'),
              href: site ? `/app/sites/${site.id}` : '/app/sites',
            },
            {
              title: t('overview.step_domain'),
              done: !!verified,
              detail: verified ? t('overview.step_domain_done', { host: verified.host }) : t('overview.step_domain_todo'),
              href: site ? `/app/sites/${site.id}` : '/app/sites',
            },
            {
              title: t('overview.step_experiment'),
              done: experiments.length > 0,
              detail: experiments.length > 0 ? t('overview.step_experiment_done', { count: experiments.length }) : '',
              href: '/app/experiments/new',
            },
          ];
          return (
            <ol class="checklist">
              {steps.map((s, i) => (
                <li key={i} class={s.done ? 'done' : 'todo'} data-step={i + 1}>
                  <span class="check" aria-hidden="true">{s.done ? '✓' : i + 1}</span>
                  <div>
                    <strong>{s.title}</strong>
                    {s.detail && <p class="muted">{s.detail}</p>}
                  </div>
                  {!s.done && (
                    <a class="btn btn-small" href={s.href}>
                      {t('overview.go')}
                    </a>
                  )}
                </li>
              ))}
            </ol>
          );
        }}
      </Show>
    </section>
  );
}
