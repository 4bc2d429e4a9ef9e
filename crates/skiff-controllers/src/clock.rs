//! The controllers' notion of now, injectable so that schedule-driven controllers can be tested
//! without waiting for wall-clock minutes.

use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// A source of the current time. An open trait rather than an enum: test clocks live with the
/// tests that need them.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// How long to wait in real time for `d` to pass on this clock.
    fn real(&self, d: Duration) -> Duration {
        d
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
