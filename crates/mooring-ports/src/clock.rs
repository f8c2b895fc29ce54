//! The clock port: the time as the use cases see it, so tests can fix or
//! step it.

use chrono::{DateTime, Utc};

/// The time, as the use cases see it. Tests pass a fixed or stepping clock.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
