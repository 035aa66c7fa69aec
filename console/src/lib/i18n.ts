// Every string the console shows, in English and Spanish. The language comes from the
// switch (remembered in localStorage) or else the browser's preferences. The Spanish
// catalogue is typed against the English one, so a missing translation fails the
// type-check (`tsc -p console`).
import { useEffect, useState } from 'preact/hooks';

const en = {
  'app.name': 'Samplit',
  'nav.overview': 'Overview',
  'nav.sites': 'Sites',
  'nav.experiments': 'Experiments',
  'nav.docs': 'API reference',
  'nav.signout': 'Sign out',
  'nav.organization': 'Organization',
  'nav.language': 'Language',
  'auth.signin': 'Sign in',
  'auth.signup': 'Create an account',
  'auth.email': 'Email',
  'auth.password': 'Password',
  'auth.password_hint': '10 to 128 characters.',
  'auth.name': 'Your name',
  'auth.org': 'Company or team name',
  'auth.have_account': 'Already have an account? Sign in',
  'auth.no_account': 'New to Samplit? Create an account',
  'auth.tagline': 'A/B tests and bandits that run at the edge, without flicker.',
  'common.loading': 'Loading…',
  'common.save': 'Save',
  'common.cancel': 'Cancel',
  'common.create': 'Create',
  'common.copy': 'Copy',
  'common.copied': 'Copied',
  'common.retry': 'Retry',
  'common.none': 'None yet.',
  'common.all': 'All',
  'common.search': 'Search',
  'common.role_viewer_note': 'You are a viewer in this organization: you can look at everything, but not change it.',
  'overview.title': 'Get started',
  'overview.lead': 'Four steps from nothing to a running experiment. Each shows its real state.',
  'overview.step_site': 'Create a site',
  'overview.step_site_done': 'Site “{name}” created.',
  'overview.step_snippet': 'Paste the snippet into every page’s <head>',
  'overview.step_snippet_done': 'The snippet was seen on your site.',
  'overview.step_snippet_todo': 'Not seen on your site yet.',
  'overview.step_domain': 'Verify your domain',
  'overview.step_domain_done': '{host} is verified.',
  'overview.step_domain_todo': 'No verified domain yet: the edge does not serve your site until one is.',
  'overview.step_experiment': 'Create your first experiment',
  'overview.step_experiment_done': '{count} experiment(s).',
  'overview.go': 'Go',
  'sites.title': 'Sites',
  'sites.new': 'New site',
  'sites.name': 'Name',
  'sites.domains': 'Domains',
  'sites.domains_hint': 'One host name per line, e.g. shop.example.com (no https://, no path).',
  'sites.created_secret': 'Server secret — shown this once. Store it in your plugin’s settings now:',
  'sites.no_secret': 'No server secret yet: this Samplit has no edge to check signed calls. Rotate the secret once it has one.',
  'sites.key': 'Site key',
  'sites.snippet': 'Snippet',
  'sites.snippet_hint': 'Paste this as the first element of every page’s <head>.',
  'sites.domain_pending': 'Pending',
  'sites.domain_verified': 'Verified',
  'sites.verify': 'Verify',
  'sites.verify_dns': 'Verify by DNS',
  'sites.verify_file': 'Verify by file',
  'sites.verify_how': 'Create a TXT record {name} with the value below, or serve it as the text of {url}. Then press Verify.',
  'sites.rotate': 'Rotate server secret',
  'sites.rotate_confirm': 'The old secret stops working once the next snapshot is published. Rotate?',
  'sites.publications': 'Publications',
  'sites.version': 'Version',
  'sites.status': 'Status',
  'sites.when': 'When',
  'sites.snippet_seen': 'Snippet last seen {when}.',
  'sites.snippet_not_seen': 'Snippet not seen yet.',
  'experiments.title': 'Experiments',
  'experiments.site': 'Site',
  'experiments.status': 'Status',
  'experiments.kind': 'Kind',
  'experiments.updated': 'Updated',
  'experiments.results': 'Results',
  'experiments.empty': 'No experiment matches.',
  'experiments.page': 'Page {page} of {pages}',
  'experiments.prev': 'Previous',
  'experiments.next': 'Next',
  'status.draft': 'Draft',
  'status.running': 'Running',
  'status.paused': 'Paused',
  'status.completed': 'Completed',
  'status.archived': 'Archived',
  'results.title': 'Results',
  'results.goal': 'Goal',
  'results.arm': 'Arm',
  'results.visitors': 'Visitors',
  'results.conversions': 'Conversions',
  'results.rate': 'Rate (95% interval)',
  'results.lift': 'Lift vs control (95% interval)',
  'results.best': 'Chance to be best',
  'results.loss': 'Expected loss',
  'results.p': 'Always-valid p (Holm)',
  'results.rpv': 'Revenue per visitor',
  'results.control': 'control',
  'results.srm': 'Sample ratio mismatch (p = {p}): the traffic split does not match the allocation. Do not trust these numbers until the cause is found.',
  'results.rec_deploy': 'Deploy “{arm}”: it is the winner.',
  'results.rec_none': 'No difference worth having: stop the experiment and keep the control.',
  'results.rec_wait_minimum_sample': 'Keep collecting: some arm is below the minimum sample.',
  'results.rec_wait_sample_ratio_mismatch': 'Keep collecting: the traffic split does not match the allocation.',
  'results.rec_wait_not_conclusive': 'Keep collecting: not enough evidence either way yet.',
  'results.cumulative': 'Cumulative conversion rate per arm',
  'results.export': 'Export',
  'results.no_data': 'No visitors yet.',
  'error.title': 'Something went wrong',
  'error.not_found': 'This page does not exist.',
} as const;

export type Key = keyof typeof en;

const es: Record<Key, string> = {
  'app.name': 'Samplit',
  'nav.overview': 'Resumen',
  'nav.sites': 'Sitios',
  'nav.experiments': 'Experimentos',
  'nav.docs': 'Referencia de la API',
  'nav.signout': 'Cerrar sesión',
  'nav.organization': 'Organización',
  'nav.language': 'Idioma',
  'auth.signin': 'Iniciar sesión',
  'auth.signup': 'Crear una cuenta',
  'auth.email': 'Correo electrónico',
  'auth.password': 'Contraseña',
  'auth.password_hint': 'De 10 a 128 caracteres.',
  'auth.name': 'Tu nombre',
  'auth.org': 'Nombre de la empresa o del equipo',
  'auth.have_account': '¿Ya tienes cuenta? Inicia sesión',
  'auth.no_account': '¿Nuevo en Samplit? Crea una cuenta',
  'auth.tagline': 'Tests A/B y bandits que se ejecutan en el edge, sin parpadeo.',
  'common.loading': 'Cargando…',
  'common.save': 'Guardar',
  'common.cancel': 'Cancelar',
  'common.create': 'Crear',
  'common.copy': 'Copiar',
  'common.copied': 'Copiado',
  'common.retry': 'Reintentar',
  'common.none': 'Nada todavía.',
  'common.all': 'Todos',
  'common.search': 'Buscar',
  'common.role_viewer_note': 'Eres lector en esta organización: puedes verlo todo, pero no cambiarlo.',
  'overview.title': 'Primeros pasos',
  'overview.lead': 'Cuatro pasos para pasar de nada a un experimento en marcha. Cada uno muestra su estado real.',
  'overview.step_site': 'Crea un sitio',
  'overview.step_site_done': 'Sitio «{name}» creado.',
  'overview.step_snippet': 'Pega el fragmento en el <head> de cada página',
  'overview.step_snippet_done': 'El fragmento se ha visto en tu sitio.',
  'overview.step_snippet_todo': 'Aún no se ha visto en tu sitio.',
  'overview.step_domain': 'Verifica tu dominio',
  'overview.step_domain_done': '{host} está verificado.',
  'overview.step_domain_todo': 'Aún no hay ningún dominio verificado: el edge no sirve tu sitio hasta que lo haya.',
  'overview.step_experiment': 'Crea tu primer experimento',
  'overview.step_experiment_done': '{count} experimento(s).',
  'overview.go': 'Ir',
  'sites.title': 'Sitios',
  'sites.new': 'Nuevo sitio',
  'sites.name': 'Nombre',
  'sites.domains': 'Dominios',
  'sites.domains_hint': 'Un nombre de host por línea, p. ej. tienda.ejemplo.com (sin https://, sin ruta).',
  'sites.created_secret': 'Secreto del servidor: se muestra solo esta vez. Guárdalo ahora en los ajustes de tu plugin:',
  'sites.no_secret': 'Aún no hay secreto del servidor: este Samplit no tiene un edge que compruebe las llamadas firmadas. Rota el secreto cuando lo tenga.',
  'sites.key': 'Clave del sitio',
  'sites.snippet': 'Fragmento',
  'sites.snippet_hint': 'Pégalo como primer elemento del <head> de cada página.',
  'sites.domain_pending': 'Pendiente',
  'sites.domain_verified': 'Verificado',
  'sites.verify': 'Verificar',
  'sites.verify_dns': 'Verificar por DNS',
  'sites.verify_file': 'Verificar por archivo',
  'sites.verify_how': 'Crea un registro TXT {name} con el valor de abajo, o sírvelo como texto de {url}. Después pulsa Verificar.',
  'sites.rotate': 'Rotar el secreto del servidor',
  'sites.rotate_confirm': 'El secreto anterior deja de funcionar cuando se publique la siguiente instantánea. ¿Rotar?',
  'sites.publications': 'Publicaciones',
  'sites.version': 'Versión',
  'sites.status': 'Estado',
  'sites.when': 'Cuándo',
  'sites.snippet_seen': 'Fragmento visto por última vez {when}.',
  'sites.snippet_not_seen': 'Fragmento aún no visto.',
  'experiments.title': 'Experimentos',
  'experiments.site': 'Sitio',
  'experiments.status': 'Estado',
  'experiments.kind': 'Tipo',
  'experiments.updated': 'Actualizado',
  'experiments.results': 'Resultados',
  'experiments.empty': 'Ningún experimento coincide.',
  'experiments.page': 'Página {page} de {pages}',
  'experiments.prev': 'Anterior',
  'experiments.next': 'Siguiente',
  'status.draft': 'Borrador',
  'status.running': 'En marcha',
  'status.paused': 'En pausa',
  'status.completed': 'Terminado',
  'status.archived': 'Archivado',
  'results.title': 'Resultados',
  'results.goal': 'Objetivo',
  'results.arm': 'Brazo',
  'results.visitors': 'Visitantes',
  'results.conversions': 'Conversiones',
  'results.rate': 'Tasa (intervalo del 95 %)',
  'results.lift': 'Mejora frente al control (intervalo del 95 %)',
  'results.best': 'Probabilidad de ser el mejor',
  'results.loss': 'Pérdida esperada',
  'results.p': 'p siempre válido (Holm)',
  'results.rpv': 'Ingresos por visitante',
  'results.control': 'control',
  'results.srm': 'Desajuste en el reparto de muestras (p = {p}): el tráfico no coincide con la asignación. No te fíes de estas cifras hasta encontrar la causa.',
  'results.rec_deploy': 'Despliega «{arm}»: es el ganador.',
  'results.rec_none': 'No hay una diferencia que merezca la pena: detén el experimento y quédate con el control.',
  'results.rec_wait_minimum_sample': 'Sigue recogiendo datos: algún brazo no llega a la muestra mínima.',
  'results.rec_wait_sample_ratio_mismatch': 'Sigue recogiendo datos: el reparto del tráfico no coincide con la asignación.',
  'results.rec_wait_not_conclusive': 'Sigue recogiendo datos: aún no hay evidencia suficiente en ningún sentido.',
  'results.cumulative': 'Tasa de conversión acumulada por brazo',
  'results.export': 'Exportar',
  'results.no_data': 'Aún no hay visitantes.',
  'error.title': 'Algo ha fallado',
  'error.not_found': 'Esta página no existe.',
};

export type Lang = 'en' | 'es';
const catalogues: Record<Lang, Record<Key, string>> = { en, es };

function initial(): Lang {
  const saved = localStorage.getItem('samplit.lang');
  if (saved === 'en' || saved === 'es') return saved;
  for (const l of navigator.languages ?? [navigator.language]) {
    if (l.toLowerCase().startsWith('es')) return 'es';
    if (l.toLowerCase().startsWith('en')) return 'en';
  }
  return 'en';
}

const lang = { value: initial() };
const subscribers = new Set<() => void>();

export function currentLang(): Lang {
  return lang.value;
}

export function setLang(l: Lang): void {
  localStorage.setItem('samplit.lang', l);
  document.documentElement.lang = l;
  lang.value = l;
  subscribers.forEach((s) => s());
}

/// Re-renders the calling component when the language changes.
export function useLang(): Lang {
  const [, setTick] = useState(0);
  useEffect(() => {
    const s = () => setTick((n) => n + 1);
    subscribers.add(s);
    return () => {
      subscribers.delete(s);
    };
  }, []);
  return lang.value;
}

/// The string `key` in the current language, with `{name}` placeholders filled.
export function t(key: Key, vars: Record<string, string | number> = {}): string {
  return catalogues[lang.value][key].replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? `{${k}}`));
}

export function formatPercent(x: number, digits = 1): string {
  return new Intl.NumberFormat(lang.value, { style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
}

export function formatNumber(x: number, digits = 0): string {
  return new Intl.NumberFormat(lang.value, { maximumFractionDigits: digits }).format(x);
}

export function formatDate(iso: string): string {
  return new Intl.DateTimeFormat(lang.value, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
}
