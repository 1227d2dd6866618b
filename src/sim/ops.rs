//! The eight operations of the simulated gateway over a [`SimState`]: validation in the
//! reference's order, the error table's statuses and messages, and the state changes.
//!
//! Pure functions of (state, now, request); the HTTP surface and faults are in `server.rs`.

use serde_json::{Map, Value, json};

use super::state::{SimNetwork, SimPlan, SimState, SimSubscription};

/// A gateway error: HTTP status and the message put in `{"ok": false, "error": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    /// HTTP status.
    pub status: u16,
    /// The reference's wording, e.g. `Insufficient balance`.
    pub message: &'static str,
}

const fn err(status: u16, message: &'static str) -> SimError {
    SimError { status, message }
}

pub(crate) const BAD_JSON: SimError = err(400, "Invalid JSON body");
pub(crate) const NOT_OBJECT: SimError = err(400, "Body must be an object");
pub(crate) const BAD_OP: SimError = err(400, "Missing or unknown op");
const BAD_PLAN: SimError = err(400, "Missing or invalid planId");
const BAD_SUB: SimError = err(400, "Missing or invalid subscriptionId");
const BAD_NET: SimError = err(400, "Missing or invalid targetNetwork");
const BAD_COUNT: SimError = err(400, "Invalid repeatCount or quantity");
const BAD_COUPON: SimError = err(400, "Invalid couponCode");
pub(crate) const UNAUTHORIZED: SimError = err(401, "Unauthorized");
const NO_BALANCE: SimError = err(402, "Insufficient balance");
const FORBIDDEN: SimError = err(403, "Forbidden");
const NOT_FOUND: SimError = err(404, "Subscription not found");
const SOLD_OUT: SimError = err(409, "Sold out");
const INACTIVE_PLAN: SimError = err(409, "Inactive plan");
const INACTIVE_NET: SimError = err(409, "Inactive network");
const BAD_STATE: SimError = err(409, "Invalid subscription state");

/// The most subscriptions one purchase may create.
const MAX_QUANTITY: u64 = 100;

/// Is `op` a GET op (true), a POST op (false), or unknown (`None`)?
#[must_use]
pub fn op_method(op: &str) -> Option<bool> {
    crate::api::Op::from_name(op).map(crate::api::Op::is_read)
}

/// Runs one op. `req` is the query string (GET) or the JSON body (POST), `is_get` the method.
///
/// # Errors
/// The gateway error the reference prescribes; the state is unchanged then.
pub fn apply(
    state: &mut SimState,
    now: i64,
    is_get: bool,
    op: &str,
    req: &Map<String, Value>,
) -> Result<Value, SimError> {
    if op_method(op) != Some(is_get) {
        return Err(BAD_OP);
    }
    let body = match op {
        "plans" => {
            json!({ "plans": state.plans.iter().filter(|p| p.active).map(|p| plan_json(state, p)).collect::<Vec<_>>() })
        }
        "subscriptions" => json!({ "subscriptions": listed(state) }),
        "renewal-plans" => renewal_plans(state, req)?,
        "available-networks" => available_networks(state, req)?,
        "purchase" => purchase(state, now, req)?,
        "renew" => renew(state, now, req)?,
        "change-credentials" => change_credentials(state, req)?,
        "switch-network" => switch_network(state, req)?,
        _ => return Err(BAD_OP),
    };
    let mut out = Map::new();
    out.insert("ok".into(), Value::Bool(true));
    if let Value::Object(m) = body {
        out.extend(m);
    }
    Ok(Value::Object(out))
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn id_field<'a>(req: &'a Map<String, Value>, name: &str, bad: SimError) -> Result<&'a str, SimError> {
    match req.get(name).and_then(Value::as_str) {
        Some(s) if is_id(s) => Ok(s),
        _ => Err(bad),
    }
}

/// A positive integer field, 1 when absent; also accepts a numeric string (query strings).
fn count_field(req: &Map<String, Value>, name: &str) -> Result<u64, SimError> {
    match req.get(name) {
        None => Ok(1),
        Some(Value::Number(n)) => n.as_u64().filter(|&n| (1..=u64::from(u32::MAX)).contains(&n)).ok_or(BAD_COUNT),
        Some(_) => Err(BAD_COUNT),
    }
}

/// Looks up the caller's own subscription: 400 bad id, 404 unknown, 403 someone else's.
fn own_sub_index(state: &SimState, req: &Map<String, Value>) -> Result<usize, SimError> {
    let id = id_field(req, "subscriptionId", BAD_SUB)?;
    let i = state.subscriptions.iter().position(|s| s.id == id).ok_or(NOT_FOUND)?;
    if state.subscriptions[i].foreign {
        return Err(FORBIDDEN);
    }
    Ok(i)
}

fn usable_plan<'a>(state: &'a SimState, id: &str) -> Result<&'a SimPlan, SimError> {
    let plan = state.plans.iter().find(|p| p.id == id).ok_or(BAD_PLAN)?;
    if !plan.active {
        return Err(INACTIVE_PLAN);
    }
    if plan.sold_out {
        return Err(SOLD_OUT);
    }
    Ok(plan)
}

/// `price × repeat` less the coupon's percentage (rounded half up), in cents; saturating.
fn price_after_coupon(state: &SimState, req: &Map<String, Value>, unit: i64, repeat: u64) -> Result<i64, SimError> {
    let gross = i128::from(unit) * i128::from(repeat);
    let net = match req.get("couponCode") {
        None => gross,
        Some(code) => {
            let code = code.as_str().ok_or(BAD_COUPON)?;
            let coupon = state.coupons.iter().find(|c| c.code == code && c.active).ok_or(BAD_COUPON)?;
            (gross * i128::from(100 - coupon.percent_off.min(100)) + 50) / 100
        }
    };
    Ok(i64::try_from(net).unwrap_or(i64::MAX))
}

fn network<'a>(state: &'a SimState, id: &str) -> Option<&'a SimNetwork> {
    state.networks.iter().find(|n| n.id == id)
}

fn renewal_plans(state: &SimState, req: &Map<String, Value>) -> Result<Value, SimError> {
    let sub = &state.subscriptions[own_sub_index(state, req)?];
    let plans: Vec<Value> = sub
        .renewal_plan_ids
        .iter()
        .filter_map(|id| state.plans.iter().find(|p| &p.id == id && p.active))
        .map(|p| json!({ "id": p.id, "connectionType": p.connection_type, "durationMs": p.duration_ms, "priceAmountCents": p.price_cents }))
        .collect();
    Ok(json!({ "renewalPlans": plans }))
}

fn available_networks(state: &SimState, req: &Map<String, Value>) -> Result<Value, SimError> {
    let sub = &state.subscriptions[own_sub_index(state, req)?];
    let nets: Vec<Value> = state
        .networks
        .iter()
        .filter(|n| n.active && n.id != sub.network_id)
        .map(|n| json!({ "id": n.id, "networkLabel": format!("{} {}", n.name, n.city), "country": n.country }))
        .collect();
    Ok(json!({ "networks": nets }))
}

fn renew(state: &mut SimState, now: i64, req: &Map<String, Value>) -> Result<Value, SimError> {
    let i = own_sub_index(state, req)?;
    let plan_id = id_field(req, "planId", BAD_PLAN)?;
    let repeat = count_field(req, "repeatCount")?;
    let sub = &state.subscriptions[i];
    if sub.status != "active" {
        return Err(BAD_STATE);
    }
    if !sub.renewal_plan_ids.iter().any(|p| p == plan_id) {
        return Err(BAD_PLAN);
    }
    let plan = usable_plan(state, plan_id)?;
    let price = price_after_coupon(state, req, plan.price_cents, repeat)?;
    if price > state.balance_cents {
        return Err(NO_BALANCE);
    }
    let added = plan.duration_ms.saturating_mul(i64::try_from(repeat).unwrap_or(i64::MAX));
    let from = if state.settings.renew_from_expiry { sub.active_until_ms } else { sub.active_until_ms.max(now) };
    state.balance_cents = state.balance_cents.saturating_sub(price);
    let sub = &mut state.subscriptions[i];
    sub.active_until_ms = from.saturating_add(added);
    Ok(json!({ "subscriptionId": sub.id, "endAt": sub.active_until_ms }))
}

fn purchase(state: &mut SimState, now: i64, req: &Map<String, Value>) -> Result<Value, SimError> {
    let plan_id = id_field(req, "planId", BAD_PLAN)?;
    let repeat = count_field(req, "repeatCount")?;
    let quantity = count_field(req, "quantity")?;
    if quantity > MAX_QUANTITY {
        return Err(BAD_COUNT);
    }
    let plan = usable_plan(state, plan_id)?.clone();
    if network(state, &plan.network_id).is_none_or(|n| !n.active) {
        return Err(INACTIVE_NET);
    }
    let each = price_after_coupon(state, req, plan.price_cents, repeat)?;
    let total = each.saturating_mul(i64::try_from(quantity).unwrap_or(i64::MAX));
    if total > state.balance_cents {
        return Err(NO_BALANCE);
    }
    state.balance_cents = state.balance_cents.saturating_sub(total);
    let next_port = state.subscriptions.iter().map(|s| s.port).max().unwrap_or(12000).saturating_add(1);
    let until = now.saturating_add(plan.duration_ms.saturating_mul(i64::try_from(repeat).unwrap_or(i64::MAX)));
    let mut created = Vec::new();
    for k in 0..quantity {
        let sub = SimSubscription {
            id: random_token(24),
            status: "active".into(),
            active_until_ms: until,
            user_note: None,
            rotation_policy: None,
            port: next_port.saturating_add(u16::try_from(k).unwrap_or(0)),
            connection_type: plan.connection_type.clone(),
            network_id: plan.network_id.clone(),
            renewal_plan_ids: vec![plan.id.clone()],
            username: format!("u_{}", random_token(6)),
            password: format!("p_{}", random_token(8)),
            vpn: random_uuid(),
            foreign: false,
        };
        created.push(sub_json(state, &sub));
        state.subscriptions.push(sub);
    }
    let ids: Vec<Value> = created.iter().map(|s| s["subscriptionId"].clone()).collect();
    let mut body = json!({ "subscriptionId": ids[0], "subscriptionIds": ids });
    if created.len() == 1 && state.settings.single_purchase_shape {
        body["subscription"] = created.remove(0);
    } else {
        body["subscriptions"] = Value::Array(created);
    }
    Ok(body)
}

fn change_credentials(state: &mut SimState, req: &Map<String, Value>) -> Result<Value, SimError> {
    let i = own_sub_index(state, req)?;
    let sub = &mut state.subscriptions[i];
    if sub.status != "active" {
        return Err(BAD_STATE);
    }
    sub.password = random_token(8);
    sub.vpn = random_uuid();
    Ok(json!({ "password": sub.password, "vpn": sub.vpn }))
}

fn switch_network(state: &mut SimState, req: &Map<String, Value>) -> Result<Value, SimError> {
    let i = own_sub_index(state, req)?;
    let target = id_field(req, "targetNetwork", BAD_NET)?;
    if state.subscriptions[i].status != "active" {
        return Err(BAD_STATE);
    }
    let net = network(state, target).ok_or(BAD_NET)?;
    if !net.active || net.id == state.subscriptions[i].network_id {
        return Err(INACTIVE_NET);
    }
    state.subscriptions[i].network_id = target.to_owned();
    Ok(json!({ "subscription": sub_json(state, &state.subscriptions[i]) }))
}

fn plan_json(state: &SimState, p: &SimPlan) -> Value {
    let mut v = json!({ "id": p.id, "connectionType": p.connection_type, "durationMs": p.duration_ms, "priceAmountCents": p.price_cents, "popular": p.popular });
    if let Some(n) = network(state, &p.network_id) {
        v["network"] = json!({ "name": n.name, "city": n.city, "country": n.country, "networkType": n.network_type });
    }
    v
}

/// The subscriptions `op=subscriptions` lists: the key owner's (not the foreign ones).
fn listed(state: &SimState) -> Vec<Value> {
    state.subscriptions.iter().filter(|s| !s.foreign).map(|s| sub_json(state, s)).collect()
}

/// The whole `op=subscriptions` success body, serialized: what the server caches.
pub(super) fn subscriptions_body(state: &SimState) -> axum::body::Bytes {
    let body = json!({ "ok": true, "subscriptions": listed(state) });
    // A `Value` of strings and integers always serializes.
    axum::body::Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// A subscription in the reference's shape, credentials and protocol URLs included.
fn sub_json(state: &SimState, s: &SimSubscription) -> Value {
    let (country, net_label) = network(state, &s.network_id)
        .map_or(("??".into(), "unknown".into()), |n| (n.country.clone(), format!("{} {}", n.name, n.city)));
    let kind = capitalise(&s.connection_type);
    let host = "proxy.example.com";
    let mut v = json!({
        "subscriptionId": s.id,
        "status": s.status,
        "activeUntil": s.active_until_ms,
        "label": format!("{} - {country} - {kind}", s.port),
        "networkLabel": net_label,
        "credentials": { "username": s.username, "password": s.password },
        "protocols": {
            "http": format!("http://{}:{}@{host}:{}", s.username, s.password, s.port),
            "socks5": format!("socks5://{}:{}@{host}:{}", s.username, s.password, s.port),
            "vless": format!("vless://{}@{host}:{}?type=tcp", s.vpn, s.port),
            "shadowsocks": format!("ss://{}:{}@{host}:{}", s.username, s.password, s.port),
        },
        "rotate": { "rotatePath": format!("/r/{}", s.vpn.chars().take(8).collect::<String>()), "available": true },
    });
    if let Some(note) = &s.user_note {
        v["userNote"] = json!(note);
    }
    if let Some(r) = s.rotation_policy {
        v["rotationPolicy"] = json!(r);
    }
    v
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// `n` random characters of `[a-z0-9]`.
#[must_use]
pub fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

fn random_uuid() -> String {
    let hex: String = (0..32).map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0')).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}
