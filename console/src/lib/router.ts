// Client-side navigation under /app with the History API: links with data-nav (and
// ordinary same-origin /app links) change the view without a page load.
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/app';

const listeners = new Set<() => void>();

export function navigate(path: string): void {
  window.history.pushState(null, '', BASE + path);
  listeners.forEach((l) => l());
}

/// The path below /app ('/' for the overview).
export function currentPath(): string {
  const p = window.location.pathname;
  const rest = p.startsWith(BASE) ? p.slice(BASE.length) : p;
  return rest === '' ? '/' : rest;
}

export function usePath(): string {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const update = () => setPath(currentPath());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return path;
}

/// Intercepts clicks on same-origin links under /app.
export function installLinkHandler(): void {
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.origin !== window.location.origin || !a.pathname.startsWith(BASE)) return;
    e.preventDefault();
    navigate(a.pathname.slice(BASE.length) + a.search);
  });
}

/// Matches `path` against a pattern like '/sites/:id'; the parameters, or null.
export function match(pattern: string, path: string): Record<string, string> | null {
  const ps = pattern.split('/');
  const xs = path.split('?')[0]!.split('/');
  if (ps.length !== xs.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    const x = xs[i]!;
    if (p.startsWith(':')) {
      if (!x) return null;
      out[p.slice(1)] = decodeURIComponent(x);
    } else if (p !== x) {
      return null;
    }
  }
  return out;
}
