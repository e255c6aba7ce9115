//! The sandbox's server-side rate limit, as HubSpot enforces it: a rolling window of `max`
//! requests per `interval` and a daily budget that resets at midnight UTC. Requests refused
//! with 429 do not use up the budget. Only counting lives here; the answer is built by the
//! HTTP layer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};

/// HubSpot's per-app limits. The default is the Free/Starter tier: 100 requests per 10 s and
/// 250,000 a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub interval: Duration,
    pub daily: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max: 100,
            interval: Duration::from_secs(10),
            daily: 250_000,
        }
    }
}

/// What the limiter said about one request, with the numbers for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `None`: allowed. Otherwise HubSpot's `policyName`.
    pub refused: Option<&'static str>,
    pub remaining: u32,
    pub daily_remaining: u32,
}

#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    window: VecDeque<Instant>,
    day: NaiveDate,
    used_today: u32,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        Limiter {
            window: VecDeque::with_capacity(limit.max as usize),
            limit,
            day: Utc::now().date_naive(),
            used_today: 0,
        }
    }

    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    fn expire(&mut self, now: Instant) {
        while let Some(first) = self.window.front() {
            if now.duration_since(*first) >= self.limit.interval {
                self.window.pop_front();
            } else {
                break;
            }
        }
        let today = Utc::now().date_naive();
        if today != self.day {
            self.day = today;
            self.used_today = 0;
        }
    }

    fn verdict(&self, refused: Option<&'static str>) -> Verdict {
        Verdict {
            refused,
            remaining: self.limit.max.saturating_sub(self.window.len() as u32),
            daily_remaining: self.limit.daily.saturating_sub(self.used_today),
        }
    }

    /// Count a request if the limits allow it.
    pub fn admit(&mut self) -> Verdict {
        let now = Instant::now();
        self.expire(now);
        if self.used_today >= self.limit.daily {
            return self.verdict(Some("DAILY"));
        }
        if self.window.len() >= self.limit.max as usize {
            return self.verdict(Some("TEN_SECONDLY_ROLLING"));
        }
        self.window.push_back(now);
        self.used_today += 1;
        self.verdict(None)
    }

    /// The numbers as they stand, without counting a request (for answers that do not count,
    /// such as 401s).
    pub fn peek(&mut self) -> Verdict {
        self.expire(Instant::now());
        self.verdict(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_do_not_use_the_budget() {
        let mut l = Limiter::new(RateLimit {
            max: 2,
            interval: Duration::from_secs(60),
            daily: 3,
        });
        assert_eq!(l.admit().refused, None);
        let v = l.admit();
        assert_eq!((v.refused, v.remaining), (None, 0));
        assert_eq!(l.admit().refused, Some("TEN_SECONDLY_ROLLING"));
        assert_eq!(l.admit().refused, Some("TEN_SECONDLY_ROLLING"));
        assert_eq!(l.peek().daily_remaining, 1);
    }

    #[test]
    fn the_window_rolls() {
        let mut l = Limiter::new(RateLimit {
            max: 1,
            interval: Duration::from_millis(30),
            daily: 10,
        });
        assert_eq!(l.admit().refused, None);
        assert!(l.admit().refused.is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(l.admit().refused, None);
    }

    #[test]
    fn daily_budget() {
        let mut l = Limiter::new(RateLimit {
            max: 10,
            interval: Duration::from_secs(10),
            daily: 1,
        });
        assert_eq!(l.admit().refused, None);
        assert_eq!(l.admit().refused, Some("DAILY"));
    }
}
