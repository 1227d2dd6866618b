//! The clock: where the cycle and the renewer read "now" (delivery and the store are handed
//! the cycle's). The program runs on [`SystemClock`]; tests hand in a [`ManualClock`] and move
//! it forward instead of ageing database rows or sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::EpochMs;

/// A source of the current time, in integer ms UTC.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> EpochMs;
}

/// The wall clock ([`EpochMs::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> EpochMs {
        EpochMs::now()
    }
}

/// A clock that runs with the wall clock plus an offset that tests move forward
/// ([`ManualClock::advance`]): time passes for the code under test without anyone waiting.
/// Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    offset_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// The wall clock, not moved yet.
    #[must_use]
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock `ms` forward (negative: back).
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// How far the clock has been moved from the wall clock, in ms.
    #[must_use]
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> EpochMs {
        EpochMs(EpochMs::now().0.saturating_add(self.offset_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new();
        let shared = clock.clone();
        let before = SystemClock.now();
        clock.advance(3_600_000);
        let after = shared.now();
        assert!(after.since(before) >= 3_600_000, "{after} vs {before}");
        assert!(after.since(before) < 3_660_000, "{after} vs {before}");
    }
}
