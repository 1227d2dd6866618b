//! The provider API client (`../shared/spec/gateway-api.md`): typed requests and answers
//! ([`types`]), errors that keep "refused" apart from "outcome unknown" ([`error`]), the HTTP
//! client itself ([`client`]), reading the `{"ok": true, …}` envelope and `subscriptions[]`
//! entry by entry (`parse.rs`), and secret-free body excerpts ([`excerpt`]). Built on
//! [`crate::values`] only; nothing here knows the store, the policy or the cycle.

pub mod client;
pub mod error;
pub mod excerpt;
mod parse;
mod split;
pub mod types;

pub use client::{Client, ClientConfig, RetryPolicy};
pub use error::{ApiError, Failure, Op, PostError, Refusal, refusal_summary};
pub use types::*;
