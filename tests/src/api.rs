//! A client for the control plane's REST API: the calls an admin makes (register, log
//! in, create a site and an experiment, start it, read results and publications).
//! Responses are typed where the tests read fields; anything else stays JSON. A
//! non-2xx answer is an error carrying the status and the problem body.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::{AUTHORIZATION, ETAG, IF_MATCH};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// `POST /auth/register` and `/auth/login` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub organization_id: Uuid,
}

/// A site (`POST /sites`; `server_secret` only in that answer).
#[derive(Debug, Clone, Deserialize)]
pub struct Site {
    pub id: Uuid,
    pub name: String,
    pub domains: Vec<String>,
    pub site_key: String,
    #[serde(default)]
    pub server_secret: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Variant {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Element {
    pub id: Uuid,
    pub name: String,
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Arm {
    pub id: Uuid,
    pub name: String,
    pub variant_ids: Vec<Uuid>,
    pub is_control: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Goal {
    pub id: Uuid,
    pub name: String,
    pub primary: bool,
}

/// An experiment (`GET /experiments/{id}`), with the ETag it came with.
#[derive(Debug, Clone, Deserialize)]
pub struct Experiment {
    pub id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub elements: Vec<Element>,
    pub arms: Vec<Arm>,
    pub goals: Vec<Goal>,
    pub version: i32,
    #[serde(skip)]
    pub etag: String,
}

/// One arm's line of the `arms` analysis in `GET /experiments/{id}/results`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmResult {
    pub arm_id: Uuid,
    pub name: String,
    pub visitors: u64,
    pub conversions: u64,
    pub rate: f64,
    pub chance_to_be_best: f64,
}

/// A snapshot publication (`GET /sites/{id}/publications`, newest first).
#[derive(Debug, Clone, Deserialize)]
pub struct Publication {
    pub version: i64,
    pub status: String,
    /// `[{experiment_id, units: [{unit_id, allocator, arms: [{arm_id, exposures,
    /// conversions, propensity}]}]}]`
    pub weights: Value,
}

impl Publication {
    /// Each arm's published propensity in `experiment_id` (all units).
    pub fn propensities(&self, experiment_id: Uuid) -> Vec<(Uuid, f64)> {
        let mut out = Vec::new();
        let experiments = self.weights.as_array().map(Vec::as_slice).unwrap_or(&[]);
        for e in experiments {
            if e["experiment_id"].as_str() != Some(experiment_id.to_string().as_str()) {
                continue;
            }
            for unit in e["units"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                for arm in unit["arms"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    if let (Some(id), Some(p)) = (
                        arm["arm_id"].as_str().and_then(|s| s.parse().ok()),
                        arm["propensity"].as_f64(),
                    ) {
                        out.push((id, p));
                    }
                }
            }
        }
        out
    }
}

/// The API under `{base}/api/v1`, with an optional bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// `base` is the control plane's origin, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => r.header(AUTHORIZATION, format!("Bearer {t}")),
            None => r,
        }
    }

    /// Sends, fails on non-2xx with the body, returns the ETag and the parsed body.
    async fn send<T: DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(Option<String>, T)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{what}: request failed"))?;
        let status = response.status();
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{what}: {status}: {text}");
        }
        let body = serde_json::from_str(&text)
            .with_context(|| format!("{what}: unexpected answer: {text}"))?;
        Ok((etag, body))
    }

    /// `POST /auth/register`: a new user owning a new organisation. Keeps the token.
    pub async fn register(
        &mut self,
        email: &str,
        password: &str,
        name: &str,
        organization_name: &str,
    ) -> anyhow::Result<Tokens> {
        let body = json!({"email": email, "password": password, "name": name,
                          "organization_name": organization_name});
        let (_, tokens): (_, Tokens) = self
            .send(
                "register",
                self.request(reqwest::Method::POST, "/auth/register")
                    .json(&body),
            )
            .await?;
        self.token = Some(tokens.access_token.clone());
        Ok(tokens)
    }

    /// `POST /auth/login`. Keeps the token.
    pub async fn login(&mut self, email: &str, password: &str) -> anyhow::Result<Tokens> {
        let body = json!({"email": email, "password": password});
        let (_, tokens): (_, Tokens) = self
            .send(
                "login",
                self.request(reqwest::Method::POST, "/auth/login")
                    .json(&body),
            )
            .await?;
        self.token = Some(tokens.access_token.clone());
        Ok(tokens)
    }

    /// `POST /sites`.
    pub async fn create_site(&self, name: &str, domains: &[&str]) -> anyhow::Result<Site> {
        let body = json!({"name": name, "domains": domains});
        Ok(self
            .send(
                "create site",
                self.request(reqwest::Method::POST, "/sites").json(&body),
            )
            .await?
            .1)
    }

    /// `POST /sites/{id}/experiments` with a full definition (see docs/experiments.md).
    pub async fn create_experiment(
        &self,
        site_id: Uuid,
        definition: &Value,
    ) -> anyhow::Result<Experiment> {
        let (etag, mut e): (_, Experiment) = self
            .send(
                "create experiment",
                self.request(
                    reqwest::Method::POST,
                    &format!("/sites/{site_id}/experiments"),
                )
                .json(definition),
            )
            .await?;
        e.etag = etag.context("create experiment: no ETag")?;
        Ok(e)
    }

    /// `GET /experiments/{id}`.
    pub async fn experiment(&self, id: Uuid) -> anyhow::Result<Experiment> {
        let (etag, mut e): (_, Experiment) = self
            .send(
                "get experiment",
                self.request(reqwest::Method::GET, &format!("/experiments/{id}")),
            )
            .await?;
        e.etag = etag.context("get experiment: no ETag")?;
        Ok(e)
    }

    /// `POST /experiments/{id}/{action}` (start, pause, resume, complete, archive) with
    /// `If-Match`.
    pub async fn transition(
        &self,
        experiment: &Experiment,
        action: &str,
    ) -> anyhow::Result<Experiment> {
        let (etag, mut e): (_, Experiment) = self
            .send(
                action,
                self.request(
                    reqwest::Method::POST,
                    &format!("/experiments/{}/{action}", experiment.id),
                )
                .header(IF_MATCH, &experiment.etag),
            )
            .await?;
        e.etag = etag.unwrap_or_default();
        Ok(e)
    }

    /// The proof `host` must publish (`samplit-verification=…`), from `GET /sites/{id}`.
    pub async fn domain_proof(&self, site_id: Uuid, host: &str) -> anyhow::Result<String> {
        let (_, site): (_, Value) = self
            .send(
                "site",
                self.request(reqwest::Method::GET, &format!("/sites/{site_id}")),
            )
            .await?;
        site["domain_verification"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["host"] == host)
            .and_then(|d| d["txt_value"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no verification for {host} in {site}"))
    }

    /// `POST /sites/{id}/domains/{host}/verify` with `method`; the domain's state.
    pub async fn verify_domain(
        &self,
        site_id: Uuid,
        host: &str,
        method: &str,
    ) -> anyhow::Result<Value> {
        Ok(self
            .send(
                "verify domain",
                self.request(
                    reqwest::Method::POST,
                    &format!("/sites/{site_id}/domains/{host}/verify"),
                )
                .json(&json!({ "method": method })),
            )
            .await?
            .1)
    }

    /// `GET /experiments/{id}/results` (the primary goal), as JSON.
    pub async fn results_json(&self, id: Uuid) -> anyhow::Result<Value> {
        Ok(self
            .send(
                "results",
                self.request(reqwest::Method::GET, &format!("/experiments/{id}/results")),
            )
            .await?
            .1)
    }

    /// The `arms` analysis of the results: one line per arm, in the API's order. An arm
    /// the analysis leaves out (no result yet) is absent.
    pub async fn arm_results(&self, id: Uuid) -> anyhow::Result<Vec<ArmResult>> {
        let results = self.results_json(id).await?;
        parse_arm_results(&results)
    }

    /// `GET /sites/{id}/publications`, newest first.
    pub async fn publications(&self, site_id: Uuid) -> anyhow::Result<Vec<Publication>> {
        Ok(self
            .send(
                "publications",
                self.request(
                    reqwest::Method::GET,
                    &format!("/sites/{site_id}/publications"),
                ),
            )
            .await?
            .1)
    }
}

/// Reads the `arms` analysis of a results document.
pub fn parse_arm_results(results: &Value) -> anyhow::Result<Vec<ArmResult>> {
    let analyses = results["analyses"]
        .as_array()
        .context("results: no `analyses`")?;
    let arms = analyses
        .iter()
        .find(|a| a["scope"] == "arms")
        .context("results: no analysis with scope `arms`")?;
    let Some(result) = arms.get("result").filter(|r| !r.is_null()) else {
        // No engine output (e.g. nothing measured yet): every arm at zero.
        return arms["subjects"]
            .as_array()
            .context("results: no subjects")?
            .iter()
            .map(|s| {
                Ok(ArmResult {
                    arm_id: s["id"].as_str().context("subject id")?.parse()?,
                    name: s["name"].as_str().unwrap_or_default().to_owned(),
                    visitors: 0,
                    conversions: 0,
                    rate: 0.0,
                    chance_to_be_best: 0.0,
                })
            })
            .collect();
    };
    let subjects = arms["subjects"]
        .as_array()
        .context("results: no subjects")?;
    let lines = result["arms"]
        .as_array()
        .context("results: no result.arms")?;
    lines
        .iter()
        .zip(subjects)
        .map(|(line, subject)| {
            Ok(ArmResult {
                arm_id: subject["id"].as_str().context("subject id")?.parse()?,
                name: subject["name"].as_str().unwrap_or_default().to_owned(),
                visitors: line["visitors"].as_u64().context("arm visitors")?,
                conversions: line["conversions"].as_u64().context("arm conversions")?,
                rate: line["rate"].as_f64().unwrap_or(0.0),
                chance_to_be_best: line["chance_to_be_best"].as_f64().unwrap_or(0.0),
            })
        })
        .collect()
}
