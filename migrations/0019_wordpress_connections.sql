-- The WordPress plugin's connect flow (integrations/wordpress/README.md).

-- One-time codes the console hands to a WordPress admin's browser (SHA-256 of the code),
-- bound to the site, the WordPress origin and the return URL; single use, five minutes.
CREATE TABLE wordpress_connect_codes (
    code_hash   bytea PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    site_url    text NOT NULL,
    host        text NOT NULL,
    created_by  uuid NULL,
    expires_at  timestamptz NOT NULL
);

-- A connected WordPress: the plugin's bearer token (SHA-256 of it) for verify, status
-- and disconnect. Revoked on disconnect (or when the site goes: cascade).
CREATE TABLE wordpress_connections (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    site_id     uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    host        text NOT NULL,
    site_url    text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz NULL
);
CREATE INDEX wordpress_connections_site_idx ON wordpress_connections (site_id);
