-- Domain ownership, signed host routing and unpublish (docs/security.md, "Domains:
-- ownership, routing, unpublish").

-- One row per host a site lists (`sites.domains` stays the list as entered). A host is
-- pending until the site proves it controls it (DNS TXT `_samplit.<host>` or a file on
-- the host); only verified hosts reach the edge.
CREATE TABLE site_domains (
    site_id      uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    host         text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'verified')),
    -- What the site must publish: `samplit-verification=<token>` (not a secret: it is
    -- published in DNS or on the site; it only ties the proof to this site).
    token        text NOT NULL,
    method       text CHECK (method IN ('dns_txt', 'http_file')),
    verified_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, host),
    CHECK ((status = 'verified') = (verified_at IS NOT NULL AND method IS NOT NULL))
);
-- A host is verified by at most one site across all organisations.
CREATE UNIQUE INDEX site_domains_one_verified_owner ON site_domains (host)
    WHERE status = 'verified';

-- Existing sites' domains start pending: nothing listed before this migration was proven.
INSERT INTO site_domains (site_id, host, token)
SELECT s.id, d.host, replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')
  FROM sites s, unnest(s.domains) AS d(host);

-- Versions of signed host routes: one sequence, so they grow across replicas.
CREATE SEQUENCE domain_route_version_seq;

-- The signed host → site routes the publisher pushes to the edge. `site_key` NULL is a
-- tombstone (the host belongs to no site any more). `pushed_version` is the version the
-- edge accepted; the publisher pushes every row whose `version` is newer.
CREATE TABLE domain_routes (
    host            text PRIMARY KEY,
    site_key        text,
    version         bigint NOT NULL,
    pushed_version  bigint,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX domain_routes_unpushed_idx ON domain_routes (host)
    WHERE pushed_version IS DISTINCT FROM version;

-- Deleted sites the edge must stop serving. `version` is above any snapshot version the
-- site published (and one above a push that may be in flight while it was deleted).
-- No foreign key: the site row is gone.
CREATE TABLE site_tombstones (
    site_key    text PRIMARY KEY,
    org_id      uuid NOT NULL,
    version     bigint NOT NULL CHECK (version >= 1),
    pushed_at   timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
