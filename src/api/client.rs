//! The provider client: one async method per op, over reqwest with rustls.
//!
//! Reads retry with exponential backoff and jitter on transport errors, 5xx and 429 (honouring
//! `Retry-After` up to a cap). Writes are sent exactly once: the client never retries a
//! `POST`, because the API has no idempotency key and a lost answer may hide a charge.
//! Bodies are read in chunks and refused past [`ClientConfig::max_response_bytes`].

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::error::{ApiError, Failure, Op, PostError, Refusal};
use super::excerpt::{excerpt, provider_message};
use super::parse::Body;
use super::types::{
    Network, NewCredentials, Plan, Purchase, PurchaseRequest, RawPurchase, RenewRequest, RenewalPlan, Renewed,
    Subscription, SubscriptionEnvelope, SubscriptionList,
};
use crate::values::{NetworkId, SubscriptionId};

/// Default cap on one response body: 512 MiB. A `subscriptions` entry of the reference's
/// shape is about 600 bytes, so 250,000 subscriptions (150 MB) fit with room for long notes
/// (about 850,000 at that size); the cap only stops a runaway answer.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

/// How reads are retried. Writes are never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled each time, with jitter.
    pub base_delay: Duration,
    /// Backoff never exceeds this.
    pub max_delay: Duration,
    /// A 429 whose `Retry-After` is longer than this is returned as a refusal, not waited on.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Everything a [`Client`] needs. Build it from `[api]` config or by hand in tests.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The provider's base URL, e.g. `https://your-domain.com`; `/api/proxy` is appended.
    pub base_url: Url,
    /// The API key, sent as `x-api-key`.
    pub key: SecretString,
    /// Whole-request timeout, body included (`[api].timeout`).
    pub timeout: Duration,
    /// TCP + TLS connect timeout (`[api].connect_timeout`).
    pub connect_timeout: Duration,
    /// How reads are retried.
    pub retry: RetryPolicy,
    /// Bodies larger than this many bytes are refused without being buffered whole.
    pub max_response_bytes: u64,
}

impl ClientConfig {
    /// A config with default timeouts (30 s total, 10 s connect), retries and size cap.
    #[must_use]
    pub fn new(base_url: Url, key: SecretString) -> Self {
        Self {
            base_url,
            key,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// Why a [`Client`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL cannot carry API requests.
    #[error("invalid [api].base_url: {0}")]
    BaseUrl(String),
    /// The key has characters an HTTP header cannot carry.
    #[error("invalid [api].key: it must be printable ASCII with no spaces (the key is not shown)")]
    Key,
    /// reqwest could not set up TLS or its connection pool.
    #[error("could not set up the HTTP client: {0}")]
    Http(String),
}

/// Told about every request the client makes (for metrics).
pub trait Observer: Send + Sync {
    /// One request of `op` ended after `elapsed`, with an HTTP `status`, or `None` when no
    /// answer came (connection failure, timeout, dropped connection).
    fn request(&self, op: Op, status: Option<u16>, elapsed: Duration);
}

/// A typed client for `{base_url}/api/proxy`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Url,
    key_header: HeaderValue,
    key: SecretString,
    timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: u64,
    observer: Option<std::sync::Arc<dyn Observer>>,
    /// Proxy logins and passwords seen in `subscriptions` answers: removed from every error
    /// text, as the key is, should the provider ever quote them.
    learned: std::sync::Arc<std::sync::RwLock<std::collections::BTreeSet<String>>>,
}

impl std::fmt::Debug for Client {
    /// The key is a `SecretString` and the header is marked sensitive: neither shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

/// A complete answer: status, `Retry-After`, and the body bytes.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// What one request came to, before the read/write distinction is applied.
enum Outcome {
    Refused(Refusal),
    Failed(Failure),
}

impl Client {
    /// Builds a client. No request is made.
    ///
    /// # Errors
    /// [`BuildError`] for a base URL that is not http(s), carries a login, query or fragment;
    /// a key with characters a header cannot carry; or a TLS set-up failure.
    pub fn new(cfg: ClientConfig) -> Result<Self, BuildError> {
        let endpoint = endpoint_of(&cfg.base_url)?;
        let key = cfg.key.expose_secret();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BuildError::Key);
        }
        let mut key_header = HeaderValue::from_str(key).map_err(|_| BuildError::Key)?;
        key_header.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(concat!("proxy-renewd/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            // A redirect would carry x-api-key to wherever it points (reqwest strips only the
            // standard credential headers) and could re-send a POST: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError::Http(e.without_url().to_string()))?;
        Ok(Self {
            http,
            endpoint,
            key_header,
            key: cfg.key,
            timeout: cfg.timeout,
            retry: cfg.retry,
            max_response_bytes: cfg.max_response_bytes,
            observer: None,
            learned: std::sync::Arc::default(),
        })
    }

    /// Reports every request to `observer` (metrics).
    #[must_use]
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The URL every request goes to: `{base_url}/api/proxy`.
    #[must_use]
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `GET op=plans`: the active plans the key's owner can buy.
    ///
    /// # Errors
    /// [`ApiError`]: refused (401 for a bad key), or no usable answer after the retries.
    pub async fn plans(&self) -> Result<Vec<Plan>, ApiError> {
        self.get(Op::Plans, None, |b| b.envelope()?.field("plans")).await
    }

    /// `GET op=subscriptions`: every subscription of the key's owner, parsed entry by entry
    /// (an entry that does not parse lands in [`SubscriptionList::malformed`]).
    ///
    /// # Errors
    /// [`ApiError`]: refused (401), or no usable answer (including a body with no
    /// `subscriptions` array) after the retries.
    pub async fn subscriptions(&self) -> Result<SubscriptionList, ApiError> {
        let list = self.get(Op::Subscriptions, None, |b| b.subscription_list()).await?;
        self.learn(&list);
        Ok(list)
    }

    /// Remembers the proxy credentials and rotation paths of `list` as secrets to keep out of
    /// error texts.
    fn learn(&self, list: &SubscriptionList) {
        self.learn_all(&list.subscriptions);
    }

    /// [`Client::learn`] for any subscriptions (a purchase's, a switched one).
    fn learn_all(&self, subscriptions: &[Subscription]) {
        let logins = subscriptions
            .iter()
            .flat_map(|s| s.credentials.iter().flat_map(|c| [c.username.expose_secret(), c.password.expose_secret()]));
        let paths = subscriptions
            .iter()
            .flat_map(|s| s.rotate.iter().filter_map(|r| r.rotate_path.as_ref()).map(ExposeSecret::expose_secret));
        // The VPN id (vless) and the shadowsocks key are the userinfo of their URLs: the
        // login and password are learned above, these are not otherwise listed.
        let vpn = subscriptions.iter().flat_map(|s| {
            s.protocols.iter().flat_map(|p| [p.vless.as_ref(), p.shadowsocks.as_ref()]).flatten().flat_map(|url| {
                url_userinfo(url.expose_secret()).into_iter().flat_map(|u| std::iter::once(u).chain(u.split(':')))
            })
        });
        self.learn_secrets(logins.chain(paths).chain(vpn));
    }

    /// Remembers `secrets` (those of at least 4 characters) to keep out of error texts.
    /// Adds one entry per distinct secret: about three per subscription of a fleet.
    fn learn_secrets<'s>(&self, secrets: impl IntoIterator<Item = &'s str>) {
        let mut learned = self.learned.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for secret in secrets {
            if secret.len() >= 4 {
                learned.insert(secret.to_owned());
            }
        }
    }

    /// `GET op=renewal-plans&subscriptionId=…`: the plans that can renew `id`.
    ///
    /// # Errors
    /// [`ApiError`]: 403/404 for a subscription that is not the owner's or does not exist,
    /// 401, or no usable answer after the retries.
    pub async fn renewal_plans(&self, id: &SubscriptionId) -> Result<Vec<RenewalPlan>, ApiError> {
        self.get(Op::RenewalPlans, Some(id), |b| b.envelope()?.field("renewalPlans")).await
    }

    /// `GET op=available-networks&subscriptionId=…`: networks `id` can switch to.
    ///
    /// # Errors
    /// As [`Client::renewal_plans`].
    pub async fn available_networks(&self, id: &SubscriptionId) -> Result<Vec<Network>, ApiError> {
        self.get(Op::AvailableNetworks, Some(id), |b| b.envelope()?.field("networks")).await
    }

    /// `POST op=purchase`: buys `quantity` subscriptions of a plan. Sent once, never retried.
    ///
    /// # Errors
    /// [`PostError`]: refused (402 balance, 409 sold out/inactive, 400 invalid) with no
    /// effect, or outcome unknown.
    pub async fn purchase(&self, req: &PurchaseRequest) -> Result<Purchase, PostError> {
        let raw: RawPurchase = self.post(Op::Purchase, req, |b| b.envelope()?.whole()).await?;
        let purchase = raw.normalise();
        self.learn_all(&purchase.subscriptions);
        Ok(purchase)
    }

    /// `POST op=renew`: extends a subscription; sent once, never retried.
    ///
    /// # Errors
    /// [`PostError`]: refused (402 balance, 409 sold out/invalid state, 404, 403, 400) with
    /// no effect, or outcome unknown (timeout, dropped connection, 5xx, unparseable 200).
    pub async fn renew(&self, req: &RenewRequest) -> Result<Renewed, PostError> {
        self.post(Op::Renew, req, |b| b.envelope()?.whole()).await
    }

    /// [`Client::renew`], ended by `deadline` at the latest (its timeout is cut to what
    /// remains until then, when that is less than `[api] timeout`): a node on PostgreSQL sends
    /// only inside the lease its `sending` row was committed under.
    ///
    /// # Errors
    /// As [`Client::renew`]; [`PostError::NotSent`] when less than a second remains.
    pub async fn renew_by(
        &self,
        req: &RenewRequest,
        deadline: Option<std::time::Instant>,
    ) -> Result<Renewed, PostError> {
        self.post_by(Op::Renew, req, |b| b.envelope()?.whole(), deadline).await
    }

    /// `POST op=change-credentials`: regenerates the proxy password; sent once.
    ///
    /// # Errors
    /// As [`Client::renew`].
    pub async fn change_credentials(&self, id: &SubscriptionId) -> Result<NewCredentials, PostError> {
        let body = serde_json::json!({ "subscriptionId": id });
        let new: NewCredentials = self.post(Op::ChangeCredentials, &body, |b| b.envelope()?.whole()).await?;
        // Redacted from every later error text at once, as the old ones are.
        self.learn_secrets([new.password.expose_secret(), new.vpn.expose_secret()]);
        Ok(new)
    }

    /// `POST op=switch-network`: moves `id` to `target`; sent once.
    ///
    /// # Errors
    /// As [`Client::renew`]; 409 for an inactive network.
    pub async fn switch_network(&self, id: &SubscriptionId, target: &NetworkId) -> Result<Subscription, PostError> {
        let body = serde_json::json!({ "subscriptionId": id, "targetNetwork": target });
        let env: SubscriptionEnvelope = self.post(Op::SwitchNetwork, &body, |b| b.envelope()?.whole()).await?;
        self.learn_all(std::slice::from_ref(&env.subscription));
        Ok(env.subscription)
    }

    /// A read with retries; `read` takes what the op needs out of the success envelope.
    async fn get<T>(
        &self,
        op: Op,
        id: Option<&SubscriptionId>,
        read: impl Fn(&Body<'_>) -> Result<T, Failure>,
    ) -> Result<T, ApiError> {
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("op", op.as_str());
            if let Some(id) = id {
                q.append_pair("subscriptionId", id.as_str());
            }
        }
        let mut attempt = 1;
        loop {
            let req = self.http.get(url.clone()).header("x-api-key", self.key_header.clone());
            let outcome = match self.execute(op, req).await {
                Ok(answer) => self.classify(op, &answer, &read),
                Err(failure) => Err(Outcome::Failed(failure)),
            };
            let wait = match &outcome {
                Ok(_) => None,
                Err(o) => self.retry_delay(o, attempt),
            };
            match (outcome, wait) {
                (Ok(value), _) => return Ok(value),
                (Err(o), Some(delay)) => {
                    tracing::warn!(op = %op, attempt, delay_ms = delay.as_millis() as u64, error = %outcome_text(&o), "read failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                (Err(Outcome::Refused(r)), None) => return Err(ApiError::Refused(r)),
                (Err(Outcome::Failed(f)), None) => return Err(ApiError::Failed(f)),
            }
        }
    }

    /// How long to wait before retrying a read, or `None` to give up.
    fn retry_delay(&self, outcome: &Outcome, attempt: u32) -> Option<Duration> {
        if attempt >= self.retry.max_attempts {
            return None;
        }
        match outcome {
            Outcome::Refused(r) if r.is_rate_limited() => match r.retry_after {
                Some(d) if d > self.retry.max_retry_after => None,
                Some(d) => Some(d),
                None => Some(self.backoff(attempt)),
            },
            Outcome::Refused(_) => None,
            Outcome::Failed(f) => f.is_transient().then(|| self.backoff(attempt)),
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.retry.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let cap = exp.min(self.retry.max_delay);
        let half = u64::try_from(cap.as_millis() / 2).unwrap_or(u64::MAX);
        Duration::from_millis(half + rand::random_range(0..=half))
    }

    /// A write, sent exactly once; `read` takes what the op needs out of the success envelope.
    async fn post<B: serde::Serialize + ?Sized, T>(
        &self,
        op: Op,
        body: &B,
        read: impl Fn(&Body<'_>) -> Result<T, Failure>,
    ) -> Result<T, PostError> {
        self.post_by(op, body, read, None).await
    }

    /// [`Client::post`] that must end by `deadline`, if given.
    async fn post_by<B: serde::Serialize + ?Sized, T>(
        &self,
        op: Op,
        body: &B,
        read: impl Fn(&Body<'_>) -> Result<T, Failure>,
        deadline: Option<std::time::Instant>,
    ) -> Result<T, PostError> {
        let window = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if window.is_some_and(|w| w < std::time::Duration::from_secs(1)) {
            return Err(PostError::NotSent {
                op,
                reason: "the leader lease it was committed under ends too soon to send it; a later cycle tries again"
                    .into(),
            });
        }
        let mut json = serde_json::to_value(body)
            .map_err(|e| PostError::NotSent { op, reason: format!("could not encode the body: {e}") })?;
        if let Value::Object(m) = &mut json {
            m.insert("op".into(), Value::String(op.as_str().into()));
        }
        let mut req = self.http.post(self.endpoint.clone()).header("x-api-key", self.key_header.clone()).json(&json);
        if let Some(w) = window.filter(|w| *w < self.timeout) {
            req = req.timeout(w);
        }
        let answer = match self.execute(op, req).await {
            Ok(a) => a,
            Err(Failure::Connect { detail, .. }) => {
                return Err(PostError::NotSent {
                    op,
                    reason: format!(
                        "could not connect to the provider ({detail}): check [api].base_url and the network"
                    ),
                });
            }
            Err(f) => return Err(PostError::OutcomeUnknown(f)),
        };
        match self.classify(op, &answer, &read) {
            Ok(value) => Ok(value),
            Err(Outcome::Refused(r)) => Err(PostError::Refused(r)),
            Err(Outcome::Failed(f)) => Err(PostError::OutcomeUnknown(f)),
        }
    }

    /// Sends one request and reads the whole body, up to the cap.
    async fn execute(&self, op: Op, req: reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let started = std::time::Instant::now();
        let result = self.execute_inner(op, req, started).await;
        if let Some(o) = &self.observer {
            let status = match &result {
                Ok(a) => Some(a.status),
                Err(Failure::TooLarge { status, .. }) => Some(*status),
                Err(_) => None,
            };
            o.request(op, status, started.elapsed());
        }
        result
    }

    async fn execute_inner(
        &self,
        op: Op,
        req: reqwest::RequestBuilder,
        started: std::time::Instant,
    ) -> Result<Answer, Failure> {
        let mut resp = req.send().await.map_err(|e| self.transport_failure(op, &e))?;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get(RETRY_AFTER).and_then(parse_retry_after);
        let limit_bytes = self.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > limit_bytes) {
            return Err(Failure::TooLarge { op, status, limit_bytes });
        }
        // Sized once from Content-Length (at most the cap): a 60 MB list is not copied through
        // every doubling of a growing buffer.
        let expected = resp.content_length().unwrap_or(0).min(limit_bytes);
        let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport_failure(op, &e))? {
            if (body.len() + chunk.len()) as u64 > limit_bytes {
                return Err(Failure::TooLarge { op, status, limit_bytes });
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(op = %op, status, bytes = body.len(), elapsed_ms = started.elapsed().as_millis() as u64, "provider answered");
        Ok(Answer { status, retry_after, body })
    }

    fn transport_failure(&self, op: Op, e: &reqwest::Error) -> Failure {
        let detail = root_cause(e);
        if e.is_connect() {
            Failure::Connect { op, detail }
        } else if e.is_timeout() {
            Failure::Timeout { op, timeout: self.timeout }
        } else {
            Failure::Transport { op, detail }
        }
    }

    /// Sorts an answer into success (what `read` takes from the `ok: true` object), refusal
    /// or failure.
    fn classify<T>(&self, op: Op, a: &Answer, read: impl Fn(&Body<'_>) -> Result<T, Failure>) -> Result<T, Outcome> {
        let key = self.key.expose_secret();
        if (200..=299).contains(&a.status) && op != Op::Subscriptions {
            // The common case costs no list of every learned secret (one per proxy login, so
            // 200,000 at 100,000 subscriptions): an answer that reads needs none. Only the
            // `subscriptions` reader writes reasons into a success (its malformed entries),
            // and an error is read again below with every secret to remove.
            if let Ok(v) = read(&Body { op, status: a.status, bytes: &a.body, secrets: &[key] }) {
                return Ok(v);
            }
        }
        let learned = self.learned.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let secrets: Vec<&str> = std::iter::once(key).chain(learned.iter().map(String::as_str)).collect();
        match a.status {
            200..=299 => {
                read(&Body { op, status: a.status, bytes: &a.body, secrets: &secrets }).map_err(Outcome::Failed)
            }
            400 | 401 | 402 | 403 | 404 | 409 | 429 => Err(Outcome::Refused(Refusal {
                op,
                status: a.status,
                message: provider_message(&a.body, &secrets),
                retry_after: a.retry_after,
            })),
            status => Err(Outcome::Failed(Failure::Server { op, status, excerpt: excerpt(&a.body, &secrets) })),
        }
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Refused(r) => r.to_string(),
        Outcome::Failed(f) => f.to_string(),
    }
}

/// `{base_url}/api/proxy`, refusing URLs that are not plain http(s).
fn endpoint_of(base: &Url) -> Result<Url, BuildError> {
    if !matches!(base.scheme(), "http" | "https") {
        return Err(BuildError::BaseUrl(format!("scheme must be http or https, not {:?}", base.scheme())));
    }
    if !base.username().is_empty() || base.password().is_some() {
        return Err(BuildError::BaseUrl(
            "it must not contain a user name or password; put the key in [api].key".into(),
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(BuildError::BaseUrl("it must not have a query or fragment".into()));
    }
    let mut url = base.clone();
    let path = format!("{}/api/proxy", base.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// The innermost error message: the useful part ("Connection refused"), without URLs.
fn root_cause(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn parse_retry_after(v: &HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The userinfo of `scheme://userinfo@host…` (percent-encoding kept), if any.
fn url_userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_userinfo_of_a_protocol_url_is_found() {
        assert_eq!(super::url_userinfo("vless://0f1e-2d3c@gw.example:443?type=tcp"), Some("0f1e-2d3c"));
        assert_eq!(super::url_userinfo("ss://u:p@gw.example:1"), Some("u:p"));
        assert_eq!(super::url_userinfo("http://gw.example/a@b"), None, "an @ in the path is not userinfo");
        assert_eq!(super::url_userinfo("no scheme"), None);
    }

    use super::*;

    #[test]
    fn endpoint_appends_api_proxy_once() {
        let e = endpoint_of(&Url::parse("https://x.example/").unwrap()).unwrap();
        assert_eq!(e.as_str(), "https://x.example/api/proxy");
        let e = endpoint_of(&Url::parse("https://x.example/gw/").unwrap()).unwrap();
        assert_eq!(e.as_str(), "https://x.example/gw/api/proxy");
        assert!(endpoint_of(&Url::parse("https://u:p@x.example").unwrap()).is_err());
        assert!(endpoint_of(&Url::parse("ftp://x.example").unwrap()).is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(&HeaderValue::from_static("7")), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}
