//! Raising and sending alerts: which [`crate::alert::Alert`]s a renewal's outcome ([`for_outcome`]) and a
//! cycle's report ([`for_cycle`]) call for, the digest email ([`email`]) and its delivery
//! from the outbox ([`deliver`]); without `[alerts.email]` they are logged at `warn`. The
//! outbox itself (written with the event that caused an alert, deduplicated by
//! `(kind, subscription, period)` within `alerts.repeat_interval`) is `store/outbox.rs`.
//!
//! What an alert is lives one floor down, in [`crate::alert`]; this module reads the cycle's
//! [`crate::report::CycleReport`] and never the cycle itself.

pub mod deliver;
pub mod email;
pub mod forecast;
pub mod outage;
pub mod raise;

pub use forecast::forecast_alert;
pub use raise::{auth, for_cycle, for_outcome};
