//! # proxy-renewd
//!
//! Keeps a provider's prepaid proxy subscriptions from lapsing.
//!
//! # Layout
//!
//! Data flows one way, in this order; each module imports only modules above it in this list
//! (`scripts/check-modules` fails on a loop; `ARCHITECTURE.md` has the map and the rules).
//!
//! **Plain data**, no I/O:
//! - [`values`]: ids, [`values::EpochMs`] (ms UTC), [`values::Cents`], text cleaning, the
//!   clock. Imports nothing of ours.
//! - [`rule`]: renewal rules (`[defaults]` and the rules table) and plan choices.
//! - [`attempt`]: a renewal attempt as the ledger records it: its terms, states, settlement
//!   and outcome.
//! - [`alert`]: what an alert is: its kind and its secret-free fields.
//! - [`purchase`]: a purchase as the purchases ledger records it: terms, states, the rule for
//!   the new subscriptions, outcome.
//!
//! **Edges** (configuration, the provider, the database):
//! - [`api`]: the provider client, one method per op, with errors that keep "refused,
//!   nothing happened" apart from "outcome unknown".
//! - [`config`]: figment layers (defaults, TOML file, `PROXY_RENEWD_` env) checked into a
//!   [`config::Config`] of small types that cannot be wrong; secrets stay in `SecretString`.
//! - [`store`]: all SQL, on SQLite or PostgreSQL, each with its embedded migrations; rules,
//!   ledger, purchases, outbox, snapshot, holds, the leader lease; one writer at a time, the
//!   renewals' writes in group commits (fenced by the lease on PostgreSQL).
//!
//! **Deciding**, pure:
//! - [`policy`]: the decision for one subscription (ok, skip, renew with which plan at what
//!   price, or blocked, with the reason), and for a person's `renew`.
//! - [`forecast`]: the renewals the policy will make in the next days, their cost per day,
//!   fund-by amounts, budget stops and what will need a person.
//! - [`reconcile`]: settling attempts whose outcome is unknown from a fresh read.
//! - [`report`]: what a cycle saw and did ([`report::CycleReport`]), read by everything after.
//!
//! **Acting**:
//! - [`renewer`]: one renewal: the ledger row first, then `renew`, then the outcome.
//! - [`purchaser`]: one purchase: the row first, then `purchase` once, then the outcome; the
//!   evidence for settling one whose answer was lost.
//! - [`alerts`]: which alerts an outcome or a cycle calls for; the digest email; delivery
//!   from the outbox.
//! - [`metrics`]: Prometheus metrics and health, told by the cycle and the client.
//! - [`leader`]: one leader among several nodes on PostgreSQL: the lease taken, renewed,
//!   lost (renewals stop) and given up.
//! - [`cycle`]: one cycle: read → reconcile → decide → renew → alert.
//!
//! **Running**:
//! - [`lock`]: the single-node instance lock (`flock` on `DB.lock`).
//! - [`daemon`]: cycles on the cron schedule that never overlap, until cancelled.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`app`]: the composition root: config → client, store, mailer, clock → a cycle or the
//!   daemon. Commands, tests and benches build through it.
//! - [`shutdown`]: the one place that listens for SIGTERM and Ctrl-C.
//!
//! **Around it**:
//! - [`sim`]: a stateful simulator of the provider API with fault injection and an admin
//!   surface, used by `proxy-renewd sim`, the tests and `demo`.
//! - [`output`]: tables and JSON for the command line (the cycle report included), with
//!   secrets redacted unless asked.
//! - [`cli`]: the command line (clap) and the commands behind it: parse, build, run, print.

pub mod alert;
pub mod alerts;
pub mod api;
pub mod app;
pub mod attempt;
pub mod cli;
pub mod config;
pub mod cycle;
pub mod daemon;
pub mod forecast;
pub mod leader;
pub mod lock;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod purchase;
pub mod purchaser;
pub mod reconcile;
pub mod renewer;
pub mod report;
pub mod rule;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod values;
