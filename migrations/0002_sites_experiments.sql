-- Sites (the original's "installations"), experiments and their parts.

CREATE TABLE sites (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Allowed domains (lower-case host names); CORS and the editor proxy use them.
    domains            text[] NOT NULL DEFAULT '{}',
    -- Public key used by the snippet and the edge (not a secret).
    site_key           text NOT NULL UNIQUE,
    -- Secret for server-side plugins: only its SHA-256 is kept (shown once at creation).
    server_secret_hash bytea NOT NULL,
    -- Exclusion rules (engine `targeting::ExclusionRule`, validated by the API).
    exclusions         jsonb NOT NULL DEFAULT '[]',
    snippet_seen_at    timestamptz,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sites_org_idx ON sites (org_id);

CREATE TABLE experiments (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    site_id       uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '',
    kind          text NOT NULL CHECK (kind IN ('single', 'independent', 'factorial')),
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'running', 'paused', 'completed', 'archived')),
    -- Engine `allocator::Allocator` parameters (fixed split or Thompson sampling).
    allocator     jsonb NOT NULL,
    -- Share of eligible visitors that enter the experiment, [0, 1].
    coverage      double precision NOT NULL DEFAULT 1 CHECK (coverage >= 0 AND coverage <= 1),
    -- Engine URL rules; empty = every page of the site.
    url_rules     jsonb NOT NULL DEFAULT '[]',
    -- Bucketing seed (GrowthBook-compatible hashing) and hash version.
    seed          text NOT NULL,
    hash_version  smallint NOT NULL DEFAULT 2 CHECK (hash_version IN (1, 2)),
    version       integer NOT NULL DEFAULT 1,
    started_at    timestamptz,
    ended_at      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX experiments_org_idx ON experiments (org_id);
CREATE INDEX experiments_site_status_idx ON experiments (site_id, status);

-- An element of the page the experiment changes (one for single-element experiments).
CREATE TABLE elements (
    id            uuid PRIMARY KEY,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    position      integer NOT NULL,
    name          text NOT NULL,
    selector      text NOT NULL,
    UNIQUE (experiment_id, position)
);

CREATE TABLE variants (
    id            uuid PRIMARY KEY,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    element_id    uuid NOT NULL REFERENCES elements (id) ON DELETE CASCADE,
    position      integer NOT NULL,
    name          text NOT NULL,
    is_control    boolean NOT NULL DEFAULT false,
    -- Fixed-split weight within its element (normalised by the engine).
    weight        double precision NOT NULL DEFAULT 1 CHECK (weight >= 0),
    -- Engine `changes::Change` list (HTML sanitised by the API).
    changes       jsonb NOT NULL DEFAULT '[]',
    UNIQUE (element_id, position)
);
CREATE INDEX variants_experiment_idx ON variants (experiment_id);

-- What the allocator chooses between, and what results are reported for.
-- single: one arm per variant; independent: one arm per variant, grouped by element
-- (`element_id` set: each element is its own allocation unit); factorial: one arm per
-- combination of variants (at most 500), `element_id` null.
CREATE TABLE arms (
    id            uuid PRIMARY KEY,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    element_id    uuid REFERENCES elements (id) ON DELETE CASCADE,
    position      integer NOT NULL,
    name          text NOT NULL,
    -- The variant chosen for each element, in element order.
    variant_ids   uuid[] NOT NULL,
    is_control    boolean NOT NULL DEFAULT false
);
CREATE INDEX arms_experiment_idx ON arms (experiment_id);

CREATE TABLE goals (
    id            uuid PRIMARY KEY,
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- custom: an event name sent by samplit.track / plugins; url: a page visited
    -- (engine URL rule); click: a click on a CSS selector.
    trigger       text NOT NULL CHECK (trigger IN ('custom', 'url', 'click')),
    -- The event name (custom), URL rule JSON text (url) or selector (click).
    target        text NOT NULL,
    metric        text NOT NULL CHECK (metric IN ('conversion', 'revenue')),
    is_primary    boolean NOT NULL DEFAULT false,
    UNIQUE (experiment_id, name)
);
CREATE UNIQUE INDEX goals_one_primary ON goals (experiment_id) WHERE is_primary;
