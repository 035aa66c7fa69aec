-- Shopify (integrations/shopify/README.md) and the currency of revenue.

-- The currency a site's revenue is counted in (ISO 4217). Set by a Shopify install to the
-- shop's currency; otherwise fixed by the first event that names one. Ingestion refuses
-- revenue in any other currency, so results never add two currencies.
ALTER TABLE sites ADD COLUMN currency text NULL CHECK (currency ~ '^[A-Z]{3}$');

-- A platform install proves the hosts the platform says the shop owns.
ALTER TABLE site_domains DROP CONSTRAINT site_domains_method_check;
ALTER TABLE site_domains ADD CONSTRAINT site_domains_method_check
    CHECK (method IN ('dns_txt', 'http_file', 'shopify_install'));

-- One row per shop that installed the app (a reinstall reuses it). The offline access
-- token is encrypted with AES-256-GCM under `SAMPLIT_SHOPIFY_TOKEN_KEYS` (key id kept to
-- decrypt after a rotation; the shop domain is the associated data); NULL once the app
-- is uninstalled.
CREATE TABLE shopify_shops (
    shop             text PRIMARY KEY CHECK (shop ~ '^[a-z0-9][a-z0-9-]*\.myshopify\.com$'),
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    site_id          uuid NULL REFERENCES sites (id) ON DELETE SET NULL,
    -- The install created the organisation (shop/redact may delete it).
    created_org      boolean NOT NULL,
    token_key_id     text NULL,
    token_nonce      bytea NULL,
    token_ciphertext bytea NULL,
    scope            text NOT NULL DEFAULT '',
    installed_at     timestamptz NOT NULL DEFAULT now(),
    uninstalled_at   timestamptz NULL,
    CHECK ((token_ciphertext IS NULL) = (token_nonce IS NULL)
       AND (token_ciphertext IS NULL) = (token_key_id IS NULL))
);
CREATE INDEX shopify_shops_org_idx ON shopify_shops (org_id);

-- One-time OAuth `state` values (SHA-256 of the value), bound to the shop they were
-- issued for, valid ten minutes.
CREATE TABLE shopify_oauth_states (
    state_hash bytea PRIMARY KEY,
    shop       text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Webhook deliveries processed (X-Shopify-Webhook-Id): a retried delivery is answered
-- 200 and not processed again.
CREATE TABLE shopify_webhook_deliveries (
    webhook_id  text PRIMARY KEY,
    shop        text NOT NULL,
    topic       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shopify_webhook_deliveries_shop_idx ON shopify_webhook_deliveries (shop);

-- Orders the orders/create webhook reported, once per (shop, order): the link between
-- an order and a visitor id that the compliance webhooks answer for and erase.
CREATE TABLE shopify_orders (
    shop        text NOT NULL,
    order_id    bigint NOT NULL,
    visitor_id  text NULL,
    total       double precision NOT NULL,
    currency    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop, order_id)
);
CREATE INDEX shopify_orders_visitor_idx ON shopify_orders (shop, visitor_id);

-- customers/data_request: what Samplit holds about the customer's orders, for the shop's
-- owners to read (GET /api/v1/shopify/data-requests).
CREATE TABLE shopify_data_requests (
    id              uuid PRIMARY KEY,
    shop            text NOT NULL,
    org_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    data_request_id bigint NULL,
    customer_id     bigint NULL,
    data            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shopify_data_requests_org_idx ON shopify_data_requests (org_id, created_at);
