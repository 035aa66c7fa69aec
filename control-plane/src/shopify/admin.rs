//! Calls to a shop: the OAuth token endpoint (authorization-code grant and token
//! exchange) and the Admin GraphQL API, version [`API_VERSION`]. Only ever to a shop host
//! that passed [`super::protocol::valid_shop`] (the app secret goes in these bodies).
//! Tokens are never logged: errors carry the status and Shopify's error text only.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::ShopifyConfig;

/// The Admin API version the app is written against (as in `shopify.app.toml`).
pub const API_VERSION: &str = "2025-10";

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("shop host refused: {0}")]
    BadShop(String),
    #[error("shopify refused the request ({status}): {detail}")]
    Refused { status: u16, detail: String },
    #[error("shopify could not be reached: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("shopify answered GraphQL errors: {0}")]
    GraphQl(String),
}

/// An access token Shopify granted.
#[derive(Deserialize)]
pub struct Grant {
    pub access_token: String,
    #[serde(default)]
    pub scope: String,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Grant {{ access_token: ***, scope: {:?} }}", self.scope)
    }
}

/// What install reads about the shop.
#[derive(Debug, Clone)]
pub struct ShopInfo {
    pub name: String,
    pub myshopify_domain: String,
    pub primary_host: String,
    pub currency: String,
    pub email: Option<String>,
    /// `currentAppInstallation.id`: owner of the app-data metafields.
    pub installation_id: String,
}

#[derive(Clone)]
pub struct Admin {
    http: reqwest::Client,
    config: ShopifyConfig,
}

impl Admin {
    pub fn new(config: ShopifyConfig) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, config })
    }

    /// `https://<shop><path>`, or the development origin with `Host: <shop>`.
    fn request(&self, shop: &str, path: &str) -> Result<reqwest::RequestBuilder, AdminError> {
        if !super::protocol::valid_shop(shop) {
            return Err(AdminError::BadShop(shop.to_owned()));
        }
        Ok(match &self.config.dev_admin_origin {
            Some(origin) => self
                .http
                .post(format!("{origin}{path}"))
                .header(reqwest::header::HOST, shop),
            None => self.http.post(format!("https://{shop}{path}")),
        })
    }

    async fn grant(&self, shop: &str, body: Value) -> Result<Grant, AdminError> {
        let response = self
            .request(shop, "/admin/oauth/access_token")?
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await?;
        let response = refused_unless_success(response).await?;
        Ok(response.json().await?)
    }

    /// Authorization-code grant: the code from the callback for an offline token.
    pub async fn exchange_code(&self, shop: &str, code: &str) -> Result<Grant, AdminError> {
        self.grant(
            shop,
            json!({
                "client_id": self.config.api_key,
                "client_secret": String::from_utf8_lossy(self.config.api_secret.expose()),
                "code": code,
            }),
        )
        .await
    }

    /// Token exchange: a session token for an offline access token.
    pub async fn token_exchange(
        &self,
        shop: &str,
        session_token: &str,
    ) -> Result<Grant, AdminError> {
        self.grant(
            shop,
            json!({
                "client_id": self.config.api_key,
                "client_secret": String::from_utf8_lossy(self.config.api_secret.expose()),
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": session_token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
            }),
        )
        .await
    }

    /// One GraphQL operation; answers `data`, or the errors as [`AdminError::GraphQl`].
    pub async fn graphql(
        &self,
        shop: &str,
        token: &str,
        query: &str,
        variables: Value,
    ) -> Result<Value, AdminError> {
        let response = self
            .request(shop, &format!("/admin/api/{API_VERSION}/graphql.json"))?
            .header("X-Shopify-Access-Token", token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        let response = refused_unless_success(response).await?;
        let mut body: Value = response.json().await?;
        if let Some(errors) = body.get("errors").filter(|e| !e.is_null()) {
            return Err(AdminError::GraphQl(
                errors.to_string().chars().take(500).collect(),
            ));
        }
        Ok(body.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }

    /// The shop's name, domains, currency and the app's installation id.
    pub async fn shop_info(&self, shop: &str, token: &str) -> Result<ShopInfo, AdminError> {
        let data = self
            .graphql(
                shop,
                token,
                "query SamplitShop { shop { name email myshopifyDomain currencyCode primaryDomain { host } } currentAppInstallation { id } }",
                json!({}),
            )
            .await?;
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let s = &data["shop"];
        let missing = |what: &str| AdminError::GraphQl(format!("the answer has no {what}"));
        Ok(ShopInfo {
            name: text(&s["name"]).ok_or_else(|| missing("shop.name"))?,
            myshopify_domain: text(&s["myshopifyDomain"])
                .ok_or_else(|| missing("shop.myshopifyDomain"))?,
            primary_host: text(&s["primaryDomain"]["host"])
                .ok_or_else(|| missing("shop.primaryDomain.host"))?,
            currency: text(&s["currencyCode"]).ok_or_else(|| missing("shop.currencyCode"))?,
            email: text(&s["email"]),
            installation_id: text(&data["currentAppInstallation"]["id"])
                .ok_or_else(|| missing("currentAppInstallation.id"))?,
        })
    }

    /// The app-data metafields the theme app embed reads (`app.metafields.samplit.*`).
    pub async fn set_app_metafields(
        &self,
        shop: &str,
        token: &str,
        installation_id: &str,
        site_key: &str,
        edge_url: &str,
    ) -> Result<(), AdminError> {
        let field = |key: &str, value: &str| {
            json!({ "ownerId": installation_id, "namespace": "samplit", "key": key,
                    "type": "single_line_text_field", "value": value })
        };
        let data = self
            .graphql(
                shop,
                token,
                "mutation SamplitMetafields($m: [MetafieldsSetInput!]!) { metafieldsSet(metafields: $m) { metafields { key } userErrors { field message code } } }",
                json!({ "m": [field("site_key", site_key), field("edge_url", edge_url)] }),
            )
            .await?;
        user_errors(&data["metafieldsSet"]["userErrors"])
    }

    /// Creates the web pixel with its settings, or updates it when the app has one.
    pub async fn upsert_web_pixel(
        &self,
        shop: &str,
        token: &str,
        site_key: &str,
        edge_url: &str,
    ) -> Result<(), AdminError> {
        let settings = json!({ "siteKey": site_key, "edgeUrl": edge_url }).to_string();
        let data = self
            .graphql(
                shop,
                token,
                "mutation SamplitPixel($s: JSON!) { webPixelCreate(webPixel: { settings: $s }) { webPixel { id } userErrors { code field message } } }",
                json!({ "s": settings }),
            )
            .await?;
        let errors = &data["webPixelCreate"]["userErrors"];
        let taken = errors
            .as_array()
            .is_some_and(|es| es.iter().any(|e| e["code"] == "TAKEN"));
        if !taken {
            return user_errors(errors);
        }
        let existing = self
            .graphql(
                shop,
                token,
                "query SamplitPixelId { webPixel { id } }",
                json!({}),
            )
            .await?;
        let id = existing["webPixel"]["id"]
            .as_str()
            .ok_or_else(|| AdminError::GraphQl("webPixel TAKEN but not readable".to_owned()))?;
        let data = self
            .graphql(
                shop,
                token,
                "mutation SamplitPixelUpdate($id: ID!, $s: JSON!) { webPixelUpdate(id: $id, webPixel: { settings: $s }) { webPixel { id } userErrors { code field message } } }",
                json!({ "id": id, "s": settings }),
            )
            .await?;
        user_errors(&data["webPixelUpdate"]["userErrors"])
    }
}

/// The response if it succeeded; otherwise its status and the start of its body.
async fn refused_unless_success(
    response: reqwest::Response,
) -> Result<reqwest::Response, AdminError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    Err(AdminError::Refused {
        status: status.as_u16(),
        detail: body_excerpt(response).await,
    })
}

/// The first 300 characters of a response's body (for logs; never a token: Shopify's
/// error bodies carry none, and the edge's neither).
pub(crate) async fn body_excerpt(response: reqwest::Response) -> String {
    response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

fn user_errors(errors: &Value) -> Result<(), AdminError> {
    match errors.as_array() {
        Some(es) if !es.is_empty() => Err(AdminError::GraphQl(
            Value::Array(es.clone())
                .to_string()
                .chars()
                .take(500)
                .collect(),
        )),
        _ => Ok(()),
    }
}
