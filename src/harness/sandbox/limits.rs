//! The sandbox's server-side rate limit, as HubSpot enforces it: a rolling window of `max`
//! requests per `interval`, a daily budget that resets at midnight UTC, and the search
//! endpoints' own rolling window (HubSpot: 5 per second, policy `SECONDLY`) that a search
//! spends on top of the other two. Requests refused with 429 use up no budget. Only counting
//! lives here; the answer is built by the HTTP layer.

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

/// The search endpoints' own limit: `max` searches per rolling `interval`, spent on top of the
/// general limit. HubSpot's search guide: five requests per second per account (it was four
/// per second per token until 2024).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRateLimit {
    pub max: u32,
    pub interval: Duration,
}

impl SearchRateLimit {
    /// HubSpot's: 5 searches per second.
    pub const HUBSPOT: SearchRateLimit = SearchRateLimit {
        max: 5,
        interval: Duration::from_secs(1),
    };

    /// The search limit of a sandbox given no search limit of its own: HubSpot's 5 per second
    /// beside HubSpot's 100 per 10 s, scaled up in proportion when `limit` is more generous
    /// (so that a test that raises the general limit searches as freely), never below
    /// HubSpot's.
    pub fn derived(limit: &RateLimit) -> SearchRateLimit {
        let interval_ms = u64::try_from(limit.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        // 100 per 10,000 ms -> 5 per 1,000 ms.
        let per_second = u64::from(limit.max).saturating_mul(1_000) / interval_ms / 2;
        SearchRateLimit {
            max: u32::try_from(per_second)
                .unwrap_or(u32::MAX)
                .max(SearchRateLimit::HUBSPOT.max),
            interval: SearchRateLimit::HUBSPOT.interval,
        }
    }
}

/// A rolling window of at most `max` instants within `interval`.
#[derive(Debug)]
struct Window {
    max: u32,
    interval: Duration,
    log: VecDeque<Instant>,
}

impl Window {
    fn new(max: u32, interval: Duration) -> Window {
        Window {
            max,
            interval,
            log: VecDeque::with_capacity(max.min(10_000) as usize),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(first) = self.log.front() {
            if now.duration_since(*first) >= self.interval {
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    fn full(&self) -> bool {
        self.log.len() >= self.max as usize
    }

    fn remaining(&self) -> u32 {
        self.max.saturating_sub(self.log.len() as u32)
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
    window: Window,
    search: Window,
    day: NaiveDate,
    used_today: u32,
}

impl Limiter {
    pub fn new(limit: RateLimit, search: SearchRateLimit) -> Self {
        Limiter {
            window: Window::new(limit.max, limit.interval),
            search: Window::new(search.max, search.interval),
            limit,
            day: Utc::now().date_naive(),
            used_today: 0,
        }
    }

    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    fn expire(&mut self, now: Instant) {
        self.window.expire(now);
        self.search.expire(now);
        let today = Utc::now().date_naive();
        if today != self.day {
            self.day = today;
            self.used_today = 0;
        }
    }

    fn verdict(&self, refused: Option<&'static str>) -> Verdict {
        Verdict {
            refused,
            remaining: self.window.remaining(),
            daily_remaining: self.limit.daily.saturating_sub(self.used_today),
        }
    }

    /// Count a request if the limits allow it.
    pub fn admit(&mut self) -> Verdict {
        self.admit_as(false)
    }

    /// Count a search request if the limits allow it: the general ones and the search one.
    /// A search refused by either counts against neither.
    pub fn admit_search(&mut self) -> Verdict {
        self.admit_as(true)
    }

    fn admit_as(&mut self, search: bool) -> Verdict {
        let now = Instant::now();
        self.expire(now);
        if self.used_today >= self.limit.daily {
            return self.verdict(Some("DAILY"));
        }
        if self.window.full() {
            return self.verdict(Some("TEN_SECONDLY_ROLLING"));
        }
        if search {
            if self.search.full() {
                return self.verdict(Some("SECONDLY"));
            }
            self.search.log.push_back(now);
        }
        self.window.log.push_back(now);
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
        let mut l = Limiter::new(
            RateLimit {
                max: 2,
                interval: Duration::from_secs(60),
                daily: 3,
            },
            SearchRateLimit::HUBSPOT,
        );
        assert_eq!(l.admit().refused, None);
        let v = l.admit();
        assert_eq!((v.refused, v.remaining), (None, 0));
        assert_eq!(l.admit().refused, Some("TEN_SECONDLY_ROLLING"));
        assert_eq!(l.admit().refused, Some("TEN_SECONDLY_ROLLING"));
        assert_eq!(l.peek().daily_remaining, 1);
    }

    #[test]
    fn the_window_rolls() {
        let mut l = Limiter::new(
            RateLimit {
                max: 1,
                interval: Duration::from_millis(30),
                daily: 10,
            },
            SearchRateLimit::HUBSPOT,
        );
        assert_eq!(l.admit().refused, None);
        assert!(l.admit().refused.is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(l.admit().refused, None);
    }

    #[test]
    fn daily_budget() {
        let mut l = Limiter::new(
            RateLimit {
                max: 10,
                interval: Duration::from_secs(10),
                daily: 1,
            },
            SearchRateLimit::HUBSPOT,
        );
        assert_eq!(l.admit().refused, None);
        assert_eq!(l.admit().refused, Some("DAILY"));
    }

    #[test]
    fn searches_have_their_own_window_on_top_of_the_general_one() {
        let mut l = Limiter::new(
            RateLimit {
                max: 10,
                interval: Duration::from_secs(60),
                daily: 100,
            },
            SearchRateLimit {
                max: 2,
                interval: Duration::from_secs(60),
            },
        );
        assert_eq!(l.admit_search().refused, None);
        assert_eq!(l.admit_search().refused, None);
        let refused = l.admit_search();
        assert_eq!(refused.refused, Some("SECONDLY"));
        // The refusal spent nothing; other requests still pass, and spend the general budget.
        assert_eq!(refused.remaining, 8);
        assert_eq!(l.admit().refused, None);
        assert_eq!(l.peek().remaining, 7);
        assert_eq!(l.peek().daily_remaining, 97);
    }

    #[test]
    fn the_search_limit_scales_with_a_generous_general_limit() {
        assert_eq!(
            SearchRateLimit::derived(&RateLimit::default()),
            SearchRateLimit::HUBSPOT
        );
        let generous = RateLimit {
            max: 100_000,
            interval: Duration::from_secs(10),
            daily: 1_000_000,
        };
        assert_eq!(SearchRateLimit::derived(&generous).max, 5_000);
        let stingy = RateLimit {
            max: 3,
            interval: Duration::from_secs(10),
            daily: 10,
        };
        assert_eq!(SearchRateLimit::derived(&stingy), SearchRateLimit::HUBSPOT);
    }
}
