//! Domain-ownership proofs, the I/O part: DNS lookups with `hickory-resolver` and the
//! well-known file / home page fetch under SSRF rules. What counts as a proof, which
//! names and addresses are refused, is decided in [`crate::domain::verification`].
//!
//! - **Resolver**: `SAMPLIT_DNS_RESOLVER=ip:port` (UDP) or, by default, the system's
//!   configuration (`/etc/resolv.conf`). The same resolver answers TXT lookups and the
//!   address lookups of the file method, so tests point both at a local DNS server.
//! - **Which names**: development names and names whose addresses are all internal are
//!   refused before any proof is looked at, unless `SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS`.
//! - **File method**: `https://<host>/.well-known/samplit-verification.txt`, then the
//!   home page's `<meta name="samplit-verification">`. The host is resolved once; every
//!   address is checked ([`verification::may_connect`]: no private, link-local, metadata
//!   or reserved address; loopback only with the development switch) and the request is
//!   pinned to the checked address (`reqwest`'s `resolve`), so a second lookup cannot
//!   swap in another address (DNS rebinding). Redirects are not followed; bodies are
//!   capped at [`MAX_BODY_BYTES`], each request at [`FETCH_TIMEOUT`], standard port only.
//!   With the development switch, `SAMPLIT_DEV_VERIFY_PORT` makes it plain `http` on that
//!   port (a local test origin).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;

use crate::config::Config;
use crate::domain::verification::{self, Method};

/// Largest body read from a site.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time allowed for one fetch (connect, headers, body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one DNS lookup.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// A failed proof: what was looked for and what was found (safe to show the caller: it
/// is about their own domain and never includes our internal errors' text verbatim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `dns_txt`, `http_file` or `domain`.
    pub field: &'static str,
    pub message: String,
}

impl Failure {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// The settings a proof runs under.
#[derive(Debug, Clone)]
pub struct Verifier {
    resolver: TokioResolver,
    dev_allow_local: bool,
    dev_http_port: Option<u16>,
}

impl Verifier {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut opts = ResolverOpts::default();
        opts.timeout = DNS_TIMEOUT;
        opts.attempts = 1;
        opts.cache_size = 0;
        let resolver = match config.dns_resolver {
            Some(addr) => {
                let mut rc = ResolverConfig::new();
                rc.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                TokioResolver::builder_with_config(rc, TokioConnectionProvider::default())
                    .with_options(opts)
                    .build()
            }
            None => TokioResolver::builder_tokio()?.with_options(opts).build(),
        };
        Ok(Self {
            resolver,
            dev_allow_local: config.dev_allow_local_domains,
            dev_http_port: config
                .dev_verify_port
                .filter(|_| config.dev_allow_local_domains),
        })
    }

    /// Proves `host` with `method` against `token` (never [`Method::ShopifyInstall`]: only
    /// an install proves that way).
    pub async fn prove(&self, host: &str, token: &str, method: Method) -> Result<(), Failure> {
        if !self.dev_allow_local && verification::is_development_name(host) {
            return Err(Failure::new(
                "domain",
                format!(
                    "{host} is a development name (localhost, .test, .example, .invalid, .local): \
                     it cannot be verified unless SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS is on"
                ),
            ));
        }
        if method == Method::ShopifyInstall {
            return Err(install_only());
        }
        let addresses = self.addresses(host).await?;
        match method {
            Method::DnsTxt => self.prove_txt(host, token).await,
            Method::HttpFile => self.prove_file(host, token, &addresses).await,
            Method::ShopifyInstall => Err(install_only()),
        }
    }

    /// The host's addresses; refused when it has none or only internal ones.
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        let fqdn = format!("{host}.");
        let found: Vec<IpAddr> = match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(lookup) => lookup.iter().collect(),
            Err(e) => {
                tracing::debug!(host, error = %e, "address lookup failed");
                Vec::new()
            }
        };
        if found.is_empty() {
            return Err(Failure::new(
                "domain",
                format!("{host} has no A or AAAA record: a site's pages must be reachable at it"),
            ));
        }
        let public: Vec<IpAddr> = found
            .iter()
            .copied()
            .filter(|ip| verification::may_connect(*ip, self.dev_allow_local).is_ok())
            .collect();
        if public.is_empty() {
            let why: Vec<String> = found
                .iter()
                .map(|ip| {
                    format!(
                        "{ip} ({})",
                        verification::internal_address(*ip).unwrap_or("internal")
                    )
                })
                .collect();
            return Err(Failure::new(
                "domain",
                format!(
                    "{host} resolves only to internal addresses: {}",
                    why.join(", ")
                ),
            ));
        }
        Ok(public)
    }

    async fn prove_txt(&self, host: &str, token: &str) -> Result<(), Failure> {
        let name = verification::txt_name(host);
        let want = verification::proof_value(token);
        let records: Vec<String> = match self.resolver.txt_lookup(format!("{name}.")).await {
            Ok(lookup) => lookup
                .iter()
                .map(|txt| {
                    txt.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>()
                })
                .collect(),
            Err(e) => {
                tracing::debug!(%name, error = %e, "TXT lookup failed");
                Vec::new()
            }
        };
        if verification::txt_proves(&records, token) {
            return Ok(());
        }
        let found = if records.is_empty() {
            "no TXT record".to_owned()
        } else {
            let shown: Vec<String> = records
                .iter()
                .take(5)
                .map(|r| format!("{:?}", r.chars().take(100).collect::<String>()))
                .collect();
            format!("TXT {}", shown.join(", "))
        };
        Err(Failure::new(
            "dns_txt",
            format!("looked for a TXT record {name} = {want:?}; found {found}"),
        ))
    }

    async fn prove_file(
        &self,
        host: &str,
        token: &str,
        addresses: &[IpAddr],
    ) -> Result<(), Failure> {
        let (scheme, port) = match self.dev_http_port {
            Some(p) => ("http", p),
            None => ("https", 443),
        };
        let base = if self.dev_http_port.is_some() {
            format!("{scheme}://{host}:{port}")
        } else {
            format!("{scheme}://{host}")
        };
        let pinned: Vec<SocketAddr> = addresses
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .no_proxy()
            .resolve_to_addrs(host, &pinned)
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build the verification client");
                Failure::new("http_file", "the verification client could not be built")
            })?;
        let file_url = format!("{base}{}", verification::WELL_KNOWN_PATH);
        let file = fetch(&client, &file_url).await;
        if let Ok(body) = &file
            && verification::file_proves(body, token)
        {
            return Ok(());
        }
        let home_url = format!("{base}/");
        let home = fetch(&client, &home_url).await;
        if let Ok(body) = &home
            && verification::meta_proves(body, token)
        {
            return Ok(());
        }
        let describe = |r: &Result<String, String>| match r {
            Ok(body) => format!(
                "a body starting {:?}",
                body.trim().chars().take(80).collect::<String>()
            ),
            Err(e) => e.clone(),
        };
        Err(Failure::new(
            "http_file",
            format!(
                "looked for {:?} at {file_url} (found {}) or <meta name=\"{}\" content=\"{token}\"> at {home_url} (found {})",
                verification::proof_value(token),
                describe(&file),
                verification::META_NAME,
                describe(&home),
            ),
        ))
    }
}

/// GETs `url` without following redirects, reading at most [`MAX_BODY_BYTES`].
async fn fetch(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let mut response = client.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            "a timeout".to_owned()
        } else {
            "no connection".to_owned()
        }
    })?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!("a redirect ({status}); redirects are not followed"));
    }
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(format!("a body larger than {MAX_BODY_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err("a broken body".to_owned()),
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The refusal of [`Method::ShopifyInstall`] through the API.
fn install_only() -> Failure {
    Failure::new(
        "method",
        "shopify_install is proven by installing the Shopify app, not through this call",
    )
}
