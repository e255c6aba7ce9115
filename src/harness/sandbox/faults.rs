//! Fault injection for the sandbox CRM: which share of responses go wrong, and how, drawn from a
//! seeded generator so that a test sees the same faults for the same sequence of requests.
//! This module decides faults; it must not know about HTTP or the store.
//!
//! The spec is a comma-separated list of `key=value` pairs (`dupdesk sandbox --faults SPEC`):
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `500=P` | share of requests answered 500 with HubSpot's error body, before doing anything | 0 |
//! | `timeout=P` | share of requests that wait `timeout_ms` before being handled (a client with a shorter timeout gives up, and then the request is not applied) | 0 |
//! | `timeout_ms=MS` | the delay of a timeout fault | 30000 |
//! | `drop_after_merge=P` | share of merge calls that are applied and logged but never answered | 0 |
//! | `burst429=P` | share of requests that start a burst of 429 TEN_SECONDLY_ROLLING answers | 0 |
//! | `burst_len=N` | how many requests a 429 burst covers, the first one included | 5 |
//! | `retry_after=S` | send `Retry-After: S` (seconds) on every 429, burst or real | not sent |
//! | `search_lag_ms=MS` | search sees a record's write only MS after it (HubSpot's index lags writes by seconds); reads see it at once | 0 |
//! | `seed=N` | the seed of the fault generator | 0 |
//!
//! Example: `500=0.05,timeout=0.02,timeout_ms=3000,drop_after_merge=0.1,burst429=0.02,seed=7`.
//! The shares `500`, `timeout` and `burst429` are exclusive outcomes of one draw per request,
//! so together they must not exceed 1.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What may go wrong, and how often. See the module doc for the text syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub error_500: f64,
    pub timeout: f64,
    pub timeout_ms: u64,
    pub drop_after_merge: f64,
    pub burst429: f64,
    pub burst_len: u32,
    pub retry_after_secs: Option<u64>,
    pub search_lag_ms: u64,
    pub seed: u64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            error_500: 0.0,
            timeout: 0.0,
            timeout_ms: 30_000,
            drop_after_merge: 0.0,
            burst429: 0.0,
            burst_len: 5,
            retry_after_secs: None,
            search_lag_ms: 0,
            seed: 0,
        }
    }
}

/// A `--faults` spec that could not be read; the message names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault spec: {0}")]
pub struct FaultSpecError(String);

const KEYS: &str = "500, timeout, timeout_ms, drop_after_merge, burst429, burst_len, retry_after, search_lag_ms, seed";

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                FaultSpecError(format!("{part:?} is not key=value (keys: {KEYS})"))
            })?;
            let (key, value) = (key.trim(), value.trim());
            let share = || -> Result<f64, FaultSpecError> {
                match value.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(FaultSpecError(format!(
                        "{key}={value}: expected a share between 0 and 1"
                    ))),
                }
            };
            let whole = || -> Result<u64, FaultSpecError> {
                value
                    .parse::<u64>()
                    .map_err(|_| FaultSpecError(format!("{key}={value}: expected a whole number")))
            };
            match key {
                "500" => spec.error_500 = share()?,
                "timeout" => spec.timeout = share()?,
                "timeout_ms" => spec.timeout_ms = whole()?,
                "drop_after_merge" => spec.drop_after_merge = share()?,
                "burst429" => spec.burst429 = share()?,
                "burst_len" => {
                    spec.burst_len =
                        u32::try_from(whole()?)
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| {
                                FaultSpecError(format!("{key}={value}: expected 1 or more"))
                            })?
                }
                "retry_after" => spec.retry_after_secs = Some(whole()?),
                "search_lag_ms" => spec.search_lag_ms = whole()?,
                "seed" => spec.seed = whole()?,
                other => {
                    return Err(FaultSpecError(format!(
                        "unknown key {other:?} (keys: {KEYS})"
                    )));
                }
            }
        }
        let total = spec.error_500 + spec.timeout + spec.burst429;
        if total > 1.0 {
            return Err(FaultSpecError(format!(
                "500 + timeout + burst429 add up to {total}, more than 1"
            )));
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "500={},timeout={},timeout_ms={},drop_after_merge={},burst429={},burst_len={}",
            self.error_500,
            self.timeout,
            self.timeout_ms,
            self.drop_after_merge,
            self.burst429,
            self.burst_len
        )?;
        if let Some(s) = self.retry_after_secs {
            write!(f, ",retry_after={s}")?;
        }
        if self.search_lag_ms > 0 {
            write!(f, ",search_lag_ms={}", self.search_lag_ms)?;
        }
        write!(f, ",seed={}", self.seed)
    }
}

impl FaultSpec {
    pub fn is_none(&self) -> bool {
        self.error_500 == 0.0
            && self.timeout == 0.0
            && self.drop_after_merge == 0.0
            && self.burst429 == 0.0
            && self.search_lag_ms == 0
    }
}

/// What happens to one request before it is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    ServerError,
    Timeout,
    TooManyRequests,
}

/// The seeded generator and the state of a running 429 burst. Every request draws the same
/// number of values, whatever its kind, so the faults depend only on the order of requests.
#[derive(Debug)]
pub struct FaultDice {
    spec: FaultSpec,
    rng: ChaCha8Rng,
    burst_left: u32,
}

/// The faults chosen for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roll {
    pub fault: Fault,
    /// If this request is a merge that gets applied, leave it unanswered.
    pub drop_after_merge: bool,
}

impl FaultDice {
    pub fn new(spec: FaultSpec) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(spec.seed);
        FaultDice {
            spec,
            rng,
            burst_left: 0,
        }
    }

    pub fn spec(&self) -> &FaultSpec {
        &self.spec
    }

    pub fn roll(&mut self) -> Roll {
        let u: f64 = self.rng.random();
        let d: f64 = self.rng.random();
        let drop_after_merge = d < self.spec.drop_after_merge;
        let fault = if self.burst_left > 0 {
            self.burst_left -= 1;
            Fault::TooManyRequests
        } else if u < self.spec.error_500 {
            Fault::ServerError
        } else if u < self.spec.error_500 + self.spec.timeout {
            Fault::Timeout
        } else if u < self.spec.error_500 + self.spec.timeout + self.spec.burst429 {
            self.burst_left = self.spec.burst_len.saturating_sub(1);
            Fault::TooManyRequests
        } else {
            Fault::None
        };
        Roll {
            fault,
            drop_after_merge,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let spec: FaultSpec =
            "500=0.05,timeout=0.02,timeout_ms=3000,drop_after_merge=0.1,burst429=0.02,seed=7"
                .parse()
                .unwrap();
        let lagging: FaultSpec = "search_lag_ms=1500".parse().unwrap();
        assert_eq!(lagging.search_lag_ms, 1500);
        assert_eq!(lagging.to_string().parse::<FaultSpec>().unwrap(), lagging);
        assert_eq!(spec.error_500, 0.05);
        assert_eq!(spec.timeout, 0.02);
        assert_eq!(spec.timeout_ms, 3000);
        assert_eq!(spec.drop_after_merge, 0.1);
        assert_eq!(spec.burst429, 0.02);
        assert_eq!(spec.seed, 7);
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert_eq!("".parse::<FaultSpec>().unwrap(), FaultSpec::default());
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str| s.parse::<FaultSpec>().unwrap_err().to_string();
        assert!(e("500=2").contains("500=2"));
        assert!(e("timeout=abc").contains("timeout=abc"));
        assert!(e("boom=0.1").contains("\"boom\""));
        assert!(e("500").contains("\"500\""));
        assert!(e("timeout_ms=-1").contains("timeout_ms=-1"));
        assert!(e("500=0.6,timeout=0.6").contains("more than 1"));
    }

    #[test]
    fn same_seed_same_faults() {
        let spec: FaultSpec = "500=0.3,timeout=0.1,burst429=0.1,burst_len=3,seed=9"
            .parse()
            .unwrap();
        let rolls = |spec: &FaultSpec| {
            let mut dice = FaultDice::new(spec.clone());
            (0..200).map(|_| dice.roll()).collect::<Vec<_>>()
        };
        let a = rolls(&spec);
        assert_eq!(a, rolls(&spec));
        let errors = a.iter().filter(|r| r.fault == Fault::ServerError).count();
        assert!((30..90).contains(&errors), "{errors} of 200");
        // A burst covers burst_len requests in a row.
        let first = a
            .iter()
            .position(|r| r.fault == Fault::TooManyRequests)
            .unwrap();
        assert!(
            a[first..first + 3]
                .iter()
                .all(|r| r.fault == Fault::TooManyRequests)
        );
    }
}
