//! When a failed CRM call may be sent again, and how long to wait first. Shared by every
//! connector; it decides, it does not send or sleep.
//!
//! The rules:
//!
//! - A 429 is answered by waiting: `Retry-After` when the server sent it, else by the policy in
//!   the body (a rolling ten-second window: the window's length; a per-second limit: 1 s). A
//!   DAILY limit is not retried; it lasts until tomorrow.
//! - 5xx responses, timeouts and broken connections are retried with exponential back-off and
//!   full jitter (a random wait between zero and `base * 2^n`, capped), at most `max_retries`
//!   times.
//! - Other 4xx are the caller's problem and never retried.
//! - A call that is not idempotent (a merge, a create) is retried only where the request
//!   provably was not applied: a 429 (refused before it was processed) or a connection that
//!   could not be opened (nothing was sent). After a timeout, a dropped connection or a 5xx
//!   response it may have been applied, and sending it again could merge twice; the error is
//!   returned and the caller re-reads the ids to learn what happened.

use std::time::Duration;

use rand::Rng;

/// Whether sending a request twice has the same effect as sending it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, searches, PATCH of properties.
    Idempotent,
    /// Merges and creates: a second send can do the work a second time.
    NotIdempotent,
}

/// How a call failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 429 with a policy other than DAILY: the server refused the request unprocessed.
    RateLimited,
    /// A 5xx response: the server may or may not have done the work.
    ServerError,
    /// The connection could not be opened: the request never left.
    NotSent,
    /// A timeout or a connection dropped mid-request: the outcome is unknown.
    Unknown,
}

impl Idempotency {
    pub fn may_retry(self, failure: Failure) -> bool {
        match self {
            Idempotency::Idempotent => true,
            Idempotency::NotIdempotent => {
                matches!(failure, Failure::RateLimited | Failure::NotSent)
            }
        }
    }
}

/// Back-off for transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (separately for transient failures and for 429s).
    pub max_retries: u32,
    /// The ceiling of the first back-off; doubled for each further retry.
    pub base: Duration,
    /// No back-off is longer than this.
    pub cap: Duration,
}

impl RetryPolicy {
    pub fn new(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }

    /// The ceiling of the wait before retry number `retry` (0-based): `min(cap, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Full jitter: uniform between zero and the ceiling, so that many clients failing together
    /// do not retry together.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.random_range(0..=micros))
    }
}

/// How long to wait after a 429, or `None` when it is not worth retrying (DAILY).
/// `window` is the server's `X-HubSpot-RateLimit-Interval-Milliseconds` if it sent one.
pub fn rate_limit_wait(
    policy: &str,
    retry_after: Option<Duration>,
    window: Option<Duration>,
) -> Option<Duration> {
    if policy.eq_ignore_ascii_case("DAILY") {
        return None;
    }
    if let Some(wait) = retry_after {
        return Some(wait);
    }
    Some(if policy.eq_ignore_ascii_case("SECONDLY") {
        Duration::from_secs(1)
    } else {
        // TEN_SECONDLY_ROLLING or unknown: a whole window surely has room again.
        window.unwrap_or(Duration::from_secs(10))
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn backoff_stays_within_its_exponential_capped_ceiling() {
        let policy = RetryPolicy::new(6);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for retry in 0..12 {
            let ceiling = policy.ceiling(retry);
            assert!(ceiling <= policy.cap);
            let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(retry, &mut rng)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling));
            // Full jitter: spread over the range, not bunched at the ceiling.
            assert!(waits.iter().any(|w| *w < ceiling / 2));
            assert!(waits.iter().any(|w| *w > ceiling / 2));
        }
        assert_eq!(policy.ceiling(0), Duration::from_millis(500));
        assert_eq!(policy.ceiling(3), Duration::from_secs(4));
        assert_eq!(policy.ceiling(10), Duration::from_secs(30));
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn merges_are_retried_only_when_provably_not_applied() {
        use Failure::*;
        let merge = Idempotency::NotIdempotent;
        assert!(merge.may_retry(RateLimited));
        assert!(merge.may_retry(NotSent));
        assert!(!merge.may_retry(ServerError));
        assert!(!merge.may_retry(Unknown));
        for f in [RateLimited, ServerError, NotSent, Unknown] {
            assert!(Idempotency::Idempotent.may_retry(f));
        }
    }

    #[test]
    fn rate_limit_waits_follow_the_policy() {
        let s = Duration::from_secs;
        assert_eq!(rate_limit_wait("DAILY", Some(s(3)), None), None);
        assert_eq!(
            rate_limit_wait("TEN_SECONDLY_ROLLING", Some(s(3)), None),
            Some(s(3))
        );
        assert_eq!(
            rate_limit_wait("TEN_SECONDLY_ROLLING", None, None),
            Some(s(10))
        );
        assert_eq!(
            rate_limit_wait("TEN_SECONDLY_ROLLING", None, Some(s(2))),
            Some(s(2))
        );
        assert_eq!(rate_limit_wait("SECONDLY", None, Some(s(10))), Some(s(1)));
    }
}
