//! The Shopify tables (`migrations/0018_shopify_and_currency.sql`): installed shops with
//! their sealed tokens, one-time OAuth states, processed webhook deliveries, orders and
//! data requests.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::shopify::tokens::Sealed;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShopRow {
    pub shop: String,
    pub org_id: Uuid,
    pub site_id: Option<Uuid>,
    pub created_org: bool,
    pub token_key_id: Option<String>,
    pub token_nonce: Option<Vec<u8>>,
    pub token_ciphertext: Option<Vec<u8>>,
    pub scope: String,
    pub uninstalled_at: Option<OffsetDateTime>,
}

impl ShopRow {
    /// The sealed token, while installed.
    #[must_use]
    pub fn sealed(&self) -> Option<Sealed> {
        Some(Sealed {
            key_id: self.token_key_id.clone()?,
            nonce: self.token_nonce.clone()?,
            ciphertext: self.token_ciphertext.clone()?,
        })
    }
}

const COLUMNS: &str = "shop, org_id, site_id, created_org, token_key_id, token_nonce, token_ciphertext, scope, uninstalled_at";

pub async fn get(conn: &mut PgConnection, shop: &str) -> sqlx::Result<Option<ShopRow>> {
    sqlx::query_as::<_, ShopRow>(&format!(
        "SELECT {COLUMNS} FROM shopify_shops WHERE shop = $1"
    ))
    .bind(shop)
    .fetch_optional(conn)
    .await
}

pub async fn get_for_update(conn: &mut PgConnection, shop: &str) -> sqlx::Result<Option<ShopRow>> {
    sqlx::query_as::<_, ShopRow>(&format!(
        "SELECT {COLUMNS} FROM shopify_shops WHERE shop = $1 FOR UPDATE"
    ))
    .bind(shop)
    .fetch_optional(conn)
    .await
}

/// Serialises installs of one shop (two concurrent callbacks create one organisation).
pub async fn lock_shop(conn: &mut PgConnection, shop: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('shopify:' || $1, 0))")
        .bind(shop)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the installation (insert or reinstall) with its sealed token.
pub async fn upsert_installed(
    conn: &mut PgConnection,
    shop: &str,
    org_id: Uuid,
    site_id: Uuid,
    created_org: bool,
    sealed: &Sealed,
    scope: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO shopify_shops (shop, org_id, site_id, created_org, token_key_id, token_nonce,
                                    token_ciphertext, scope)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (shop) DO UPDATE
            SET org_id = EXCLUDED.org_id, site_id = EXCLUDED.site_id,
                created_org = EXCLUDED.created_org, token_key_id = EXCLUDED.token_key_id,
                token_nonce = EXCLUDED.token_nonce, token_ciphertext = EXCLUDED.token_ciphertext,
                scope = EXCLUDED.scope, installed_at = now(), uninstalled_at = NULL",
    )
    .bind(shop)
    .bind(org_id)
    .bind(site_id)
    .bind(created_org)
    .bind(&sealed.key_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .bind(scope)
    .execute(conn)
    .await?;
    Ok(())
}

/// app/uninstalled: the token is deleted, the row kept (orders, compliance requests).
pub async fn mark_uninstalled(conn: &mut PgConnection, shop: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE shopify_shops SET token_key_id = NULL, token_nonce = NULL, token_ciphertext = NULL,
                uninstalled_at = now() WHERE shop = $1",
    )
    .bind(shop)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn insert_state(
    conn: &mut PgConnection,
    state_hash: &[u8],
    shop: &str,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM shopify_oauth_states WHERE expires_at < now()")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO shopify_oauth_states (state_hash, shop, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(state_hash)
    .bind(shop)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Consumes a state: true when it existed for `shop` and had not expired. Used or not, it
/// is gone afterwards.
pub async fn take_state(
    conn: &mut PgConnection,
    state_hash: &[u8],
    shop: &str,
) -> sqlx::Result<bool> {
    let row: Option<(String, OffsetDateTime)> = sqlx::query_as(
        "DELETE FROM shopify_oauth_states WHERE state_hash = $1 RETURNING shop, expires_at",
    )
    .bind(state_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some_and(|(s, exp)| s == shop && exp > OffsetDateTime::now_utc()))
}

/// Records a delivery; false when this webhook id was processed before.
pub async fn record_delivery(
    conn: &mut PgConnection,
    webhook_id: &str,
    shop: &str,
    topic: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO shopify_webhook_deliveries (webhook_id, shop, topic) VALUES ($1, $2, $3)
         ON CONFLICT (webhook_id) DO NOTHING",
    )
    .bind(webhook_id)
    .bind(shop)
    .bind(topic)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records an order; false when the order was recorded before (another delivery).
pub async fn insert_order(
    conn: &mut PgConnection,
    shop: &str,
    order_id: i64,
    visitor_id: Option<&str>,
    total: f64,
    currency: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO shopify_orders (shop, order_id, visitor_id, total, currency)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (shop, order_id) DO NOTHING",
    )
    .bind(shop)
    .bind(order_id)
    .bind(visitor_id)
    .bind(total)
    .bind(currency)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OrderRow {
    pub order_id: i64,
    pub visitor_id: Option<String>,
    pub total: f64,
    pub currency: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

pub async fn orders(
    conn: &mut PgConnection,
    shop: &str,
    ids: &[i64],
) -> sqlx::Result<Vec<OrderRow>> {
    sqlx::query_as::<_, OrderRow>(
        "SELECT order_id, visitor_id, total, currency, created_at FROM shopify_orders
          WHERE shop = $1 AND order_id = ANY($2) ORDER BY order_id",
    )
    .bind(shop)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// customers/redact: unlinks the orders from their visitors; answers the visitor ids.
pub async fn unlink_orders(
    conn: &mut PgConnection,
    shop: &str,
    ids: &[i64],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "WITH old AS (SELECT order_id, visitor_id FROM shopify_orders
                       WHERE shop = $1 AND order_id = ANY($2) AND visitor_id IS NOT NULL FOR UPDATE)
         UPDATE shopify_orders o SET visitor_id = NULL FROM old
          WHERE o.shop = $1 AND o.order_id = old.order_id RETURNING old.visitor_id",
    )
    .bind(shop)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// Replaces a visitor id by a random pseudonym in everything a site holds about it
/// (assignments, conversions, parked conversions): the counts stay, the link to the
/// person goes.
pub async fn pseudonymise_visitor(
    conn: &mut PgConnection,
    site_id: Uuid,
    visitor_id: &str,
    pseudonym: &str,
) -> sqlx::Result<()> {
    for sql in [
        "UPDATE assignments a SET visitor_id = $3 FROM experiments e
          WHERE e.id = a.experiment_id AND e.site_id = $1 AND a.visitor_id = $2",
        "UPDATE goal_conversions c SET visitor_id = $3 FROM experiments e
          WHERE e.id = c.experiment_id AND e.site_id = $1 AND c.visitor_id = $2",
        "UPDATE pending_conversions p SET visitor_id = $3 FROM experiments e
          WHERE e.id = p.experiment_id AND e.site_id = $1 AND p.visitor_id = $2",
    ] {
        sqlx::query(sql)
            .bind(site_id)
            .bind(visitor_id)
            .bind(pseudonym)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn insert_data_request(
    conn: &mut PgConnection,
    shop: &str,
    org_id: Uuid,
    data_request_id: Option<i64>,
    customer_id: Option<i64>,
    data: &serde_json::Value,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO shopify_data_requests (id, shop, org_id, data_request_id, customer_id, data)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(shop)
    .bind(org_id)
    .bind(data_request_id)
    .bind(customer_id)
    .bind(data)
    .execute(conn)
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DataRequestRow {
    pub id: Uuid,
    pub shop: String,
    pub data_request_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub data: serde_json::Value,
    pub created_at: OffsetDateTime,
}

pub async fn data_requests(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> sqlx::Result<Vec<DataRequestRow>> {
    sqlx::query_as::<_, DataRequestRow>(
        "SELECT id, shop, data_request_id, customer_id, data, created_at FROM shopify_data_requests
          WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT 500",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// shop/redact: everything kept about the shop except the row itself goes.
pub async fn erase_shop_data(conn: &mut PgConnection, shop: &str) -> sqlx::Result<()> {
    for sql in [
        "DELETE FROM shopify_orders WHERE shop = $1",
        "DELETE FROM shopify_data_requests WHERE shop = $1",
        "DELETE FROM shopify_oauth_states WHERE shop = $1",
        "DELETE FROM shopify_shops WHERE shop = $1",
    ] {
        sqlx::query(sql).bind(shop).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Members of an organisation (none: nobody has linked a Samplit account yet).
pub async fn member_count(conn: &mut PgConnection, org_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM memberships WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(conn)
        .await
}

/// Sets the site's currency when it has none; answers the currency it has afterwards.
pub async fn fix_currency(
    conn: &mut PgConnection,
    site_id: Uuid,
    currency: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE sites SET currency = COALESCE(currency, $2) WHERE id = $1 RETURNING currency",
    )
    .bind(site_id)
    .bind(currency)
    .fetch_optional(conn)
    .await
    .map(Option::flatten)
}

/// Running experiments of a site (id, version), locked, for pausing.
pub async fn running_experiments(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> sqlx::Result<Vec<(Uuid, i32)>> {
    sqlx::query_as(
        "SELECT id, version FROM experiments WHERE site_id = $1 AND status = 'running'
          ORDER BY id FOR UPDATE",
    )
    .bind(site_id)
    .fetch_all(conn)
    .await
}

/// A new site key (and the server secret derived from it): a site the edge was told to
/// forget (a tombstone, at uninstall) comes back under a key the edge has never seen.
pub async fn rekey_site(
    conn: &mut PgConnection,
    site_id: Uuid,
    site_key: &str,
    secret_hash: &[u8],
    salt: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sites SET site_key = $2, server_secret_hash = $3, server_secret_salt = $4,
                version = version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(site_id)
    .bind(site_key)
    .bind(secret_hash)
    .bind(salt)
    .execute(conn)
    .await?;
    Ok(())
}

/// The site key and salt an order is forwarded under.
pub async fn site_key_and_salt(
    conn: &mut PgConnection,
    site_id: Uuid,
) -> sqlx::Result<Option<(String, Option<String>)>> {
    sqlx::query_as("SELECT site_key, server_secret_salt FROM sites WHERE id = $1")
        .bind(site_id)
        .fetch_optional(conn)
        .await
}

/// Deletes an organisation nobody joined (its sites and experiments cascade).
pub async fn delete_org(conn: &mut PgConnection, org_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(org_id)
        .execute(conn)
        .await?;
    Ok(())
}
