//! What both benches build their runs from: the simulated account, the key, the settings
//! read from the environment, and the warm-up read.

use proxy_renewd::sim::{SimState, Simulator};
use proxy_renewd::values::EpochMs;

/// One day, in ms.
pub const DAY: i64 = 86_400_000;
/// The simulator's default API key.
pub const KEY: &str = "rk_sim_key";

/// The number in the environment variable `name`, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `total` subscriptions of the reference's shape, each with its own login; the first `due`
/// expire within a day, the rest in 10 to 40 days (none due with `renew_before = 3d`); every
/// request delayed `latency_ms`.
pub fn world(total: usize, due: usize, latency_ms: u64) -> SimState {
    let now = EpochMs::now().0;
    let mut s = SimState::sample(now);
    let template = s.subscriptions[1].clone();
    s.subscriptions = (0..total)
        .map(|i| {
            let mut sub = template.clone();
            sub.id = format!("bench{i:06}");
            sub.active_until_ms =
                if i < due { now + DAY / 2 + i as i64 } else { now + 10 * DAY + (i as i64 % 30) * DAY };
            sub.port = 10_000 + (i % 50_000) as u16;
            sub.username = format!("u_b{i:06}");
            sub.password = format!("p_b{i:06}x7");
            sub.renewal_plan_ids = vec!["k17m3q5v7n9p1r2t4w6y8z0a".into(), "q2w4e6r8t0y2u4i6o8p0a2s4".into()];
            sub
        })
        .collect();
    s.balance_cents = i64::MAX / 4;
    s.settings.latency_ms = latency_ms;
    s
}

/// One `subscriptions` read, so that the simulator's cached list is built (a real gateway
/// serves it from memory), then a clean call log: not counted.
pub async fn warm(sim: &Simulator) {
    let url = format!("{}api/proxy?op=subscriptions", sim.base_url());
    let got = reqwest::Client::new().get(url).header("x-api-key", KEY).send().await;
    assert!(got.is_ok_and(|r| r.status().is_success()), "the simulator answers");
    sim.clear_calls();
}
