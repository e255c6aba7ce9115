//! The client-side rate limiter every connector sends its requests through, so that dupdesk
//! stays inside the CRM's request budget instead of learning about it from 429s. It paces
//! requests only; it must not retry, sleep after errors on its own, or know about HTTP.
//!
//! # Why a sliding-window log, not a token bucket
//!
//! HubSpot counts requests in a *rolling* 10-second window. A token bucket with capacity =
//! limit that refills at limit/interval lets a full bucket burst and then keep refilling inside
//! the same window: up to twice the limit in one rolling window, which draws 429s. A bucket
//! small enough to be safe (capacity 1, refill every interval/limit) never bursts but also
//! never reaches the limit once a request is delayed. The exact answer is a log of the instants
//! of the last `limit` grants: a request is granted when fewer than `limit` grants lie in the
//! window ending now. No rolling window then ever holds more than `limit` grants, and a
//! saturated caller gets exactly `limit` per window, so the sustained rate is the limit itself
//! (minus the margin below). The log holds at most a few times `limit` instants.
//!
//! The window is `interval` plus a small margin (1/50 of it by default: 200 ms of 10 s, so
//! the sustained rate is 98% of the limit). The margin absorbs the time between our grant and
//! the request's arrival at the server; without it, two requests granted `interval` apart on
//! our clock can land inside one server window and the second is refused.
//!
//! # The server's view
//!
//! Other apps may spend the same account's budget. After each successful response the
//! connector reports the server's `Remaining` and `Max` with [`RateLimiter::observe`]; when the
//! server has less room than our own log says we have, the difference is recorded as requests
//! we did not make, so callers slow down before the server refuses them. A server maximum below
//! the configured limit (a portal on a lower tier than configured) becomes the limit.
//! [`RateLimiter::pause_for`] holds every caller back after a 429.
//!
//! # Fairness and cancellation
//!
//! Waiters queue on a FIFO `tokio::sync::Mutex`, so concurrent tasks are served in arrival
//! order and none starves. A grant is recorded only at the instant it is handed out, so a
//! caller dropped while waiting (a timeout, a cancelled task) consumes nothing and lets the
//! next waiter in.
//!
//! # Taking a turn before the request is made
//!
//! A caller that groups many small requests into one call (the executor's batches) wants the
//! call's contents chosen as late as possible: whatever queued while the call waited for the
//! limiter should go with it. [`RateLimiter::turn`] waits in the same FIFO queue as
//! [`RateLimiter::acquire`] and hands out the grant as a [`Turn`]; the caller then chooses its
//! request and sends it inside [`Turn::spend`], where the first `acquire` of this limiter is
//! answered with the turn at once instead of queueing again. A turn that no request spent
//! (nothing was left to send, the future was dropped) is given back: it consumes nothing.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A sliding-window-log rate limiter; see the module documentation. Share it with `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    interval: Duration,
    window: Duration,
    /// The FIFO queue of waiters: only its holder may take the next grant.
    fifo: tokio::sync::Mutex<()>,
    /// Short critical sections only; never held across an await.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The limit in force: the configured one, or the server's if it reported a lower one.
    limit: usize,
    /// Grant instants, oldest first (including requests the server told us others made).
    log: VecDeque<Instant>,
    /// No grant before this instant (set after a 429).
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// `limit` requests per rolling `interval`, with the default margin of 1/50 of the interval.
    pub fn new(limit: u32, interval: Duration) -> RateLimiter {
        RateLimiter::with_margin(limit, interval, interval / 50)
    }

    /// As [`RateLimiter::new`] with an explicit margin added to the window.
    pub fn with_margin(limit: u32, interval: Duration, margin: Duration) -> RateLimiter {
        let limit = limit.max(1) as usize;
        RateLimiter {
            limit,
            interval,
            window: interval + margin,
            fifo: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                limit,
                ..State::default()
            }),
        }
    }

    /// The limit in force (lower than configured once the server reported a lower maximum).
    pub fn limit(&self) -> u32 {
        u32::try_from(self.state().limit).unwrap_or(u32::MAX)
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Wait for a turn to send one request; returns the instant of the grant, which the caller
    /// hands back to [`RateLimiter::observe`] with the server's answer. Cancel-safe. Inside
    /// [`Turn::spend`] the first call is answered with that turn's grant, without waiting.
    pub async fn acquire(&self) -> Instant {
        if let Some(granted) = self.spend_held_turn() {
            return granted;
        }
        self.grant().await
    }

    /// Wait for a turn as [`RateLimiter::acquire`] does, in the same queue, and hold it for a
    /// request not chosen yet (see [`Turn::spend`]). The grant counts from now. Cancel-safe.
    pub async fn turn(self: &Arc<Self>) -> Turn {
        let granted = self.grant().await;
        Turn {
            limiter: self.clone(),
            granted,
            spent: false,
        }
    }

    /// Whether a request could be granted now without waiting (nobody queued, room in the
    /// window, no pause). A hint: the answer may change at once.
    pub fn has_room(&self) -> bool {
        if self.fifo.try_lock().is_err() {
            return false;
        }
        let now = Instant::now();
        let mut state = self.state();
        self.prune(&mut state, now);
        self.next_free(&state, now).is_none()
    }

    /// The grant of the turn the current task holds for this limiter, once.
    fn spend_held_turn(&self) -> Option<Instant> {
        HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            let turn = held
                .as_mut()
                .filter(|t| !t.spent && std::ptr::eq(Arc::as_ptr(&t.limiter), self))?;
            turn.spent = true;
            Some(turn.granted)
        })
        .ok()
        .flatten()
    }

    /// Take the next grant in FIFO order.
    async fn grant(&self) -> Instant {
        let _fifo = self.fifo.lock().await;
        loop {
            let now = Instant::now();
            let wait_until = {
                let mut state = self.state();
                self.prune(&mut state, now);
                match self.next_free(&state, now) {
                    None => {
                        state.log.push_back(now);
                        return now;
                    }
                    Some(at) => at,
                }
            };
            // Whatever changes the state meanwhile only pushes the free instant later, so
            // sleeping until the computed instant and looking again is never too early.
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// The server said `remaining` requests are left in its window (of at most `server_max`,
    /// when it said), in answer to a request granted at `granted`. A server maximum below ours
    /// becomes our limit. If the server leaves less room than our log does, others are spending
    /// the budget: count the difference as used now, so that our callers slow down.
    pub fn observe(&self, granted: Instant, remaining: u32, server_max: Option<u32>) {
        let now = Instant::now();
        if now - granted > self.window {
            // An answer slower than a window says nothing about the window we are in now.
            return;
        }
        let mut state = self.state();
        if let Some(max) = server_max.map(|m| m.max(1) as usize)
            && max < state.limit
        {
            tracing::warn!(
                target: "dupdesk::crm",
                configured = self.limit,
                server_max = max,
                "the CRM allows fewer requests per window than configured; using its limit"
            );
            state.limit = max;
        }
        self.prune(&mut state, now);
        // The server's window ended somewhere between the grant and now, so every request of
        // ours that it can have counted was granted after `granted - interval - margin` (a
        // request reaches the server up to a margin after its grant). Counting all of those as
        // ours keeps a late arrival from looking like someone else's request.
        let since = granted.checked_sub(self.window);
        let ours = match since {
            Some(since) => state.log.iter().filter(|t| **t > since).count(),
            None => state.log.len(),
        };
        let room = state.limit.saturating_sub(ours);
        let foreign = room.saturating_sub(remaining as usize);
        for _ in 0..foreign {
            state.log.push_back(now);
        }
        if foreign > 0 {
            tracing::debug!(
                target: "dupdesk::crm",
                foreign,
                remaining,
                "the server reports less rate-limit room than we used; slowing down"
            );
        }
    }

    /// Grant nothing for `wait` from now (after a 429). Extends, never shortens, a pause.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.state();
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }

    /// Forget the grant made at `granted` (a turn nobody used), so it leaves room at once.
    fn give_back(&self, granted: Instant) {
        let mut state = self.state();
        if let Some(at) = state.log.iter().rposition(|t| *t == granted) {
            state.log.remove(at);
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent at every point a panic could occur, so a poisoned lock
        // is still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drop instants no decision needs any more: older than two windows (`observe` looks one
    /// interval back from a grant that may itself be up to a window old).
    fn prune(&self, state: &mut State, now: Instant) {
        if let Some(horizon) = now.checked_sub(self.window * 2) {
            while state.log.front().is_some_and(|t| *t <= horizon) {
                state.log.pop_front();
            }
        }
    }

    /// `None` when a request may go now, else the earliest instant it may.
    fn next_free(&self, state: &State, now: Instant) -> Option<Instant> {
        if let Some(p) = state.paused_until.filter(|p| *p > now) {
            return Some(p);
        }
        let in_window = match now.checked_sub(self.window) {
            Some(start) => state.log.len() - state.log.partition_point(|t| *t <= start),
            None => state.log.len(),
        };
        if in_window < state.limit {
            return None;
        }
        // The window has room again once the `limit`-th newest grant has left it.
        let pivot = state.log[state.log.len() - state.limit];
        Some(pivot + self.window)
    }
}

tokio::task_local! {
    /// The turn the requests of this task may spend (see [`Turn::spend`]).
    static HELD: RefCell<Option<Turn>>;
}

/// One grant of a [`RateLimiter`], taken before the request that uses it is chosen. Spend it
/// with [`Turn::spend`]; dropped unspent, it is given back to the limiter.
#[derive(Debug)]
pub struct Turn {
    limiter: Arc<RateLimiter>,
    granted: Instant,
    spent: bool,
}

impl Turn {
    /// Run `request`, whose first [`RateLimiter::acquire`] of this turn's limiter is answered
    /// with this turn at once (later ones, retries included, wait as usual). Other limiters,
    /// and tasks `request` spawns, do not see the turn.
    pub async fn spend<F: Future>(self, request: F) -> F::Output {
        HELD.scope(RefCell::new(Some(self)), request).await
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.spent {
            self.limiter.give_back(self.granted);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const TEN_S: Duration = Duration::from_secs(10);

    /// No window of the limiter's own length holds more than `limit` grants.
    fn assert_no_window_exceeds(grants: &[Instant], limit: usize, interval: Duration) {
        let mut sorted = grants.to_vec();
        sorted.sort();
        for w in sorted.windows(limit + 1) {
            assert!(
                w[limit] - w[0] >= interval,
                "{} grants within {:?}",
                limit + 1,
                w[limit] - w[0]
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_never_exceed_a_rolling_window_and_reach_the_limit() {
        let limiter = Arc::new(RateLimiter::new(10, TEN_S));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move { l.acquire().await }));
        }
        let mut grants = Vec::new();
        for t in tasks {
            grants.push(t.await.unwrap());
        }
        assert_no_window_exceeds(&grants, 10, TEN_S);
        // 50 grants: the first 10 at once, then 10 per 10.2 s window.
        let last = grants.iter().max().copied().unwrap();
        let span = last - start;
        let rate = 40.0 / span.as_secs_f64();
        assert!(rate >= 0.95 * 1.0, "sustained {rate:.3}/s of 1/s");
        assert!(rate <= 1.0, "sustained {rate:.3}/s above the limit");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_arrival_order() {
        let limiter = Arc::new(RateLimiter::new(1, Duration::from_secs(1)));
        limiter.acquire().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (l, o) = (limiter.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                l.acquire().await;
                o.lock().unwrap().push(i);
            }));
            // Let task i queue before task i+1 is spawned.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_consumes_nothing() {
        let limiter = RateLimiter::with_margin(2, TEN_S, Duration::ZERO);
        let t0 = limiter.acquire().await;
        limiter.acquire().await;
        // The third request must wait for the first grant to leave the window; give up early.
        let gave_up = tokio::time::timeout(Duration::from_secs(3), limiter.acquire()).await;
        assert!(gave_up.is_err());
        // Only two grants are in the log: the next one comes exactly when the first expires,
        // and the one after it when the second does, not later.
        let third = limiter.acquire().await;
        assert_eq!(third - t0, TEN_S);
        assert_eq!(limiter.state().log.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_is_spent_by_the_first_request_inside_it() {
        let limiter = Arc::new(RateLimiter::with_margin(2, TEN_S, Duration::ZERO));
        let t0 = Instant::now();
        let turn = limiter.turn().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (first, second) = turn
            .spend(async {
                let first = limiter.acquire().await;
                (first, limiter.acquire().await)
            })
            .await;
        assert_eq!(
            first, t0,
            "the request inside the turn got the turn's grant"
        );
        assert_eq!(
            second - t0,
            Duration::from_secs(1),
            "the second one took a grant"
        );
        assert_eq!(limiter.state().log.len(), 2, "two grants, not three");
        // The budget of 2 is spent: the next one waits for the turn's grant to leave.
        assert_eq!(limiter.acquire().await - t0, TEN_S);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unspent_turn_is_given_back() {
        let limiter = Arc::new(RateLimiter::with_margin(1, TEN_S, Duration::ZERO));
        let t0 = Instant::now();
        drop(limiter.turn().await);
        // Spent on another limiter's requests, it is not spent at all.
        let other = RateLimiter::new(5, TEN_S);
        limiter.turn().await.spend(other.acquire()).await;
        assert_eq!(limiter.acquire().await, t0, "both turns were given back");
        assert_eq!(limiter.state().log.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn room_is_reported_until_the_window_is_full() {
        let limiter = Arc::new(RateLimiter::with_margin(2, TEN_S, Duration::ZERO));
        assert!(limiter.has_room());
        limiter.acquire().await;
        assert!(limiter.has_room());
        let turn = limiter.turn().await;
        assert!(!limiter.has_room(), "a held turn counts");
        drop(turn);
        assert!(limiter.has_room(), "a turn given back leaves room");
        limiter.acquire().await;
        assert!(!limiter.has_room());
        tokio::time::sleep(TEN_S).await;
        assert!(limiter.has_room());
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_waits_in_the_same_queue_as_requests() {
        let limiter = Arc::new(RateLimiter::with_margin(
            1,
            Duration::from_secs(1),
            Duration::ZERO,
        ));
        let t0 = limiter.acquire().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (l, o) = (limiter.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                if i == 1 {
                    let turn = l.turn().await;
                    o.lock().unwrap().push(i);
                    turn.spend(l.acquire()).await;
                } else {
                    l.acquire().await;
                    o.lock().unwrap().push(i);
                }
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
        // Five grants in all, 1 s apart: the turn's request took none of its own.
        assert_eq!(Instant::now() - t0, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller_back() {
        let limiter = RateLimiter::new(100, TEN_S);
        let t0 = limiter.acquire().await;
        limiter.pause_for(Duration::from_secs(4));
        limiter.pause_for(Duration::from_secs(1)); // never shortens
        let t1 = limiter.acquire().await;
        assert_eq!(t1 - t0, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn the_servers_remaining_count_slows_us_down() {
        let limiter = RateLimiter::with_margin(10, TEN_S, Duration::ZERO);
        let granted = limiter.acquire().await;
        // We used 1 of 10, but the server says only 2 are left: someone else used 7.
        limiter.observe(granted, 2, Some(10));
        let t0 = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(Instant::now(), t0, "the two the server allows go at once");
        limiter.acquire().await;
        assert!(Instant::now() - t0 >= Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_with_more_room_changes_nothing() {
        let limiter = RateLimiter::with_margin(3, TEN_S, Duration::ZERO);
        let g = limiter.acquire().await;
        limiter.observe(g, 50, None);
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(limiter.state().log.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lower_server_maximum_becomes_the_limit() {
        let limiter = RateLimiter::with_margin(1_000, TEN_S, Duration::ZERO);
        let g = limiter.acquire().await;
        limiter.observe(g, 4, Some(5));
        assert_eq!(limiter.limit(), 5);
        let t0 = Instant::now();
        for _ in 0..4 {
            limiter.acquire().await;
        }
        assert_eq!(Instant::now(), t0);
        limiter.acquire().await;
        assert_eq!(Instant::now() - t0, TEN_S);
        // A higher maximum never raises it again.
        limiter.observe(g, 100, Some(100));
        assert_eq!(limiter.limit(), 5);
    }
}
