// The console's only way to the control plane: same-origin calls to /api/v1 with the
// session cookie (HttpOnly: this script never sees it) and, on every state change, the
// session's CSRF token in X-CSRF-Token. Problem bodies (RFC 9457) become ApiError.

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: FieldError[];

  constructor(status: number, code: string, detail: string, errors: FieldError[] = []) {
    super(detail);
    this.status = status;
    this.code = code;
    this.errors = errors;
  }
}

let csrfToken = '';

export function setCsrf(token: string): void {
  csrfToken = token;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/// One call: the parsed body and the response's headers (problem bodies throw ApiError).
async function send<T>(
  method: Method,
  path: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<{ body: T; headers: Headers }> {
  const init: RequestInit = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', ...headers },
  };
  const h = init.headers as Record<string, string>;
  if (method !== 'GET') h['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp: Response;
  try {
    resp = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached. Check your connection and retry.');
  }
  if (resp.status === 204) return { body: undefined as T, headers: resp.headers };
  const text = await resp.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!resp.ok) {
    const p = (json ?? {}) as { code?: string; detail?: string; title?: string; errors?: FieldError[] };
    throw new ApiError(resp.status, p.code ?? 'error', p.detail ?? p.title ?? resp.statusText, p.errors ?? []);
  }
  return { body: json as T, headers: resp.headers };
}

export async function api<T>(
  method: Method,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  return (await send<T>(method, path, body, headers)).body;
}

/// A GET whose answer says more in its headers (e.g. `X-Total-Count` of a page).
export const getWithHeaders = <T>(path: string) => send<T>('GET', path, undefined, {});

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});

// The shapes the console reads (a subset of the OpenAPI document's schemas).
export type Role = 'viewer' | 'editor' | 'admin' | 'owner';
export const ROLE_RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2, owner: 3 };

export interface ConsoleSession {
  user_id: string;
  organization_id: string;
  csrf_token: string;
  expires_at: string;
}

export interface OrgSummary {
  id: string;
  name: string;
  role: Role;
}

export interface Me {
  user: { id: string; email: string; name: string; email_verified: boolean; language: 'en' | 'es' } | null;
  organization: OrgSummary;
  role: Role;
  organizations: OrgSummary[];
  /// Whether the server sends mail (else addresses cannot be verified, invitations answer their token).
  mail_delivery: boolean;
}

export interface DomainView {
  host: string;
  status: 'pending' | 'verified';
  method: 'dns_txt' | 'http_file' | 'shopify_install' | null;
  verified_at: string | null;
  txt_name: string;
  txt_value: string;
  file_url: string;
}

export interface SiteView {
  id: string;
  name: string;
  domains: string[];
  site_key: string;
  domain_verification: DomainView[];
  snippet_seen_at?: string | null;
  exclusions?: unknown[];
  version: number;
  created_at: string;
  updated_at: string;
}

export interface SiteWithSecret extends SiteView {
  /// null when the control plane has no edge to verify signed calls (no snapshot secret).
  server_secret: string | null;
}

export type Status = 'draft' | 'running' | 'paused' | 'completed' | 'archived';

export interface ExperimentSummary {
  id: string;
  site_id: string;
  name: string;
  kind: string;
  status: Status;
  coverage: number;
  version: number;
  updated_at: string;
}

/// One live experiment's line in the list (`GET /experiments/headlines`): the first
/// analysis of its results on the primary goal.
export interface Headline {
  experiment_id: string;
  goal_id: string;
  visitors: number;
  leader: { arm_id: string; name: string; chance_to_be_best: number } | null;
  srm_mismatch: boolean;
  recommendation: Recommendation | null;
  recommended_arm: { arm_id: string; name: string } | null;
  error: string | null;
}

export interface Interval {
  lower: number;
  upper: number;
}

export interface ArmResult {
  arm_id: string;
  visitors: number;
  conversions: number;
  rate: number;
  rate_interval: Interval;
  chance_to_be_best: number;
  expected_loss: number;
  revenue: { mean: number; interval: Interval } | null;
  comparison: {
    lift: { relative: number; absolute: number; interval: Interval | null } | null;
    sequential_p_value: number;
    p_value_holm: number;
    significant: boolean;
  } | null;
}

export type Recommendation =
  | { action: 'keep_collecting'; reason: 'minimum_sample' | 'sample_ratio_mismatch' | 'not_conclusive' }
  | { action: 'deploy_winner'; arm: number }
  | { action: 'no_difference' }
  | { action: 'guardrail_harmed'; arm: number; guardrail: number };

/// One arm's verdict on one guardrail goal (results' `subjects[].guardrails`).
export interface ArmGuardrail {
  goal_id: string;
  name: string;
  metric: 'conversion' | 'revenue';
  status: 'harmed' | 'not_inferior' | 'inconclusive';
  margin: number;
  direction: 'higher_is_better' | 'lower_is_better';
  relative_difference: number | null;
  interval: Interval | null;
  p_value: number;
  arm_value: number;
  control_value: number;
}

export interface AnalysisView {
  scope: 'arms' | 'element' | 'main_effect';
  element_name?: string | null;
  error?: string | null;
  subjects: { id: string; name: string; is_control: boolean; expected_share: number; revenue_sum: number; custom_code: boolean; guardrails?: ArmGuardrail[] }[];
  recommendation_reason?: string | null;
  result: {
    arms: ArmResult[];
    control: number;
    srm: { p_value: number; mismatch: boolean };
    recommendation: Recommendation;
  } | null;
}

export interface ResultsView {
  experiment_id: string;
  name: string;
  kind: string;
  status: Status;
  goal: { id: string; name: string; metric: 'conversion' | 'revenue' };
  analyses: AnalysisView[];
}

export interface TimeseriesView {
  days: string[];
  arms: { arm_id: string; name: string; points: { day: string; cumulative_rate: number; cumulative_rate_interval: Interval | null; cumulative_visitors: number; cumulative_chance_to_be_best: number | null }[] }[];
}
