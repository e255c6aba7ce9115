//! The time the workspace stamps: when a record changed, a decision was taken, a job ran, a
//! matcher run started. Every stamp a [`super::Store`] writes reads its [`Clock`]: the system
//! clock, or one a test hands it with [`super::Store::with_clock`] (a [`Clock::stepped`] one
//! moves on at every reading, so two stamps taken one after the other always differ, without
//! sleeping past the stamps' millisecond resolution). The store thread holds its store's clock,
//! so [`now_ts`] called by a store function reads it; code off that thread asks the store
//! ([`super::Store::now_ts`]). The format is [`crate::domain::model::format_ts`]'s, whichever clock.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

/// A source of the current time, cheap to clone (clones read the same source).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The wall clock (`Utc::now`).
    pub fn system() -> Clock {
        Clock(Arc::new(Utc::now))
    }

    /// `start` at the first reading, then one `step` later at each reading after it.
    pub fn stepped(start: DateTime<Utc>, step: chrono::Duration) -> Clock {
        let readings = AtomicU64::new(0);
        Clock(Arc::new(move || {
            let n = readings.fetch_add(1, Ordering::Relaxed);
            start + step * i32::try_from(n).unwrap_or(i32::MAX)
        }))
    }

    /// A time from any function of nothing (a test that sets the time by hand).
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }

    /// The current time as the workspace stores it.
    pub fn now_ts(&self) -> String {
        crate::domain::model::format_ts(&self.now())
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

thread_local! {
    /// The clock of the store whose thread this is; `None` on every other thread.
    static STORE_CLOCK: RefCell<Option<Clock>> = const { RefCell::new(None) };
}

/// Make `clock` the one [`now_ts`] reads on this thread (the store thread, when its store is
/// handed a clock).
pub(super) fn install(clock: Clock) {
    STORE_CLOCK.with(|c| *c.borrow_mut() = Some(clock));
}

/// The current time: on the store thread, its store's clock; on any other thread, the wall
/// clock.
pub fn now() -> DateTime<Utc> {
    STORE_CLOCK
        .with(|c| c.borrow().as_ref().map(Clock::now))
        .unwrap_or_else(Utc::now)
}

/// [`now`] as the workspace stores it.
pub fn now_ts() -> String {
    crate::domain::model::format_ts(&now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stepped_clock_moves_on_at_every_reading_and_keeps_the_format() {
        let start = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::stepped(start, chrono::Duration::milliseconds(1));
        let copy = clock.clone();
        assert_eq!(clock.now_ts(), "2026-03-01T12:00:00.000Z");
        assert_eq!(copy.now_ts(), "2026-03-01T12:00:00.001Z");
        assert_eq!(clock.now_ts(), "2026-03-01T12:00:00.002Z");
        // Off a store thread, now_ts reads the wall clock; once a clock is installed, that one.
        let wall = crate::domain::model::parse_ts(&now_ts()).unwrap();
        assert!((Utc::now() - wall).num_seconds().abs() < 60, "{wall}");
        std::thread::spawn(move || {
            install(clock);
            assert_eq!(now_ts(), "2026-03-01T12:00:00.003Z");
        })
        .join()
        .unwrap();
    }
}
