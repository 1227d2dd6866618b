//! # proxy-renewd
//!
//! Keeps a provider's prepaid proxy subscriptions from lapsing.
//!
//! # Layout
//!
//! Data flows one way, in this order:
//!
//! - [`config`]: figment layers (defaults, TOML file, `PROXY_RENEWD_` env) checked into a
//!   [`config::Config`] of small types that cannot be wrong; secrets stay in `SecretString`.
//! - [`api`]: the provider client, one method per op, with errors that keep "refused, nothing
//!   happened" apart from "outcome unknown".
//! - [`rule`]: renewal rules (`[defaults]` and the rules table) and plan choices.
//! - [`ledger`]: the ledger's states and entries, the record of every renewal attempt.
//! - [`store`]: all SQL: SQLite with embedded migrations; rules, ledger, outbox, snapshot.
//! - [`policy`]: the pure decision for one subscription: ok, skip, renew (with which plan at
//!   what price), or blocked, with the reason.
//! - [`sim`]: a stateful simulator of the provider API with fault injection and an admin
//!   surface, used by `proxy-renewd sim`, the tests and `demo`.
//! - [`output`]: tables and JSON for the command line, with secrets redacted unless asked.
//! - [`cli`]: the command line (clap) and the commands behind it.

pub mod alert;
pub mod alerts;
pub mod api;
pub mod app;
pub mod attempt;
pub mod cli;
pub mod config;
pub mod cycle;
pub mod daemon;
pub mod lock;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod reconcile;
pub mod renewer;
pub mod report;
pub mod rule;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod values;
