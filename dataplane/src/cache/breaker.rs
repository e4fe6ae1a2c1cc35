//! A circuit breaker per remote tier.
//!
//! When Memcached or Redis stops answering, every request would otherwise pay
//! the full tier timeout before falling through. The breaker opens after a run
//! of consecutive failures, skips the tier for a cool-down, then lets exactly
//! one request through as a probe (half-open): its success closes the breaker,
//! its failure re-opens it. (The `failsafe` crate was considered; its half-open
//! state admits every caller, so a slow tier would get a burst of probes.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the breaker currently does with calls; exported as a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: the value of the breaker-state gauge.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `probing` is true while the single probe is in flight.
    HalfOpen {
        probing: bool,
    },
}

/// Consecutive-failure breaker with a single half-open probe.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// Permission to make one call; report how it went with [`Breaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Call,
    Probe,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    /// `None` means: skip the tier, it is open (or another probe is out).
    pub fn try_acquire(&self) -> Option<Permit> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Option<Permit> {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Some(Permit::Call),
            Inner::Open { until } if now >= until => {
                *inner = Inner::HalfOpen { probing: true };
                Some(Permit::Probe)
            }
            Inner::HalfOpen { probing: false } => {
                *inner = Inner::HalfOpen { probing: true };
                Some(Permit::Probe)
            }
            Inner::Open { .. } | Inner::HalfOpen { probing: true } => None,
        }
    }

    /// Records the outcome of a permitted call.
    pub fn record(&self, permit: Permit, ok: bool) {
        self.record_at(permit, ok, Instant::now());
    }

    fn record_at(&self, permit: Permit, ok: bool, now: Instant) {
        let mut inner = self.lock();
        let open = Inner::Open {
            until: now + self.cooldown,
        };
        *inner = match (&*inner, permit, ok) {
            (_, Permit::Probe, true) => Inner::Closed { failures: 0 },
            (_, Permit::Probe, false) => open,
            (Inner::Closed { .. }, Permit::Call, true) => Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, Permit::Call, false) if failures + 1 >= self.threshold => {
                open
            }
            (Inner::Closed { failures }, Permit::Call, false) => Inner::Closed {
                failures: failures + 1,
            },
            // A plain call finishing after the breaker opened changes nothing.
            (Inner::Open { until }, Permit::Call, _) => Inner::Open { until: *until },
            (Inner::HalfOpen { probing }, Permit::Call, _) => Inner::HalfOpen { probing: *probing },
        };
    }

    /// Ends an open breaker's cooldown: the next call is its probe. For when
    /// the reason it opened is gone, such as a new Redis primary named by
    /// Sentinel: waiting out the cooldown would only lengthen the failover.
    pub fn allow_probe(&self) {
        let mut inner = self.lock();
        if let Inner::Open { .. } = *inner {
            *inner = Inner::HalfOpen { probing: false };
        }
    }

    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it inconsistent: every
        // transition is a single assignment.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let breaker = Breaker::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        for _ in 0..2 {
            let permit = breaker.try_acquire_at(t0).unwrap();
            breaker.record_at(permit, false, t0);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        let permit = breaker.try_acquire_at(t0).unwrap();
        breaker.record_at(permit, false, t0);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            breaker.try_acquire_at(t0 + Duration::from_millis(500)),
            None
        );

        let later = t0 + Duration::from_secs(2);
        assert_eq!(breaker.try_acquire_at(later), Some(Permit::Probe));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // Only one probe at a time.
        assert_eq!(breaker.try_acquire_at(later), None);
        breaker.record_at(Permit::Probe, true, later);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.try_acquire_at(later), Some(Permit::Call));
    }

    #[test]
    fn allowing_a_probe_ends_the_cooldown_but_keeps_the_single_probe() {
        let breaker = Breaker::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        breaker.record_at(Permit::Call, false, t0);
        assert_eq!(breaker.try_acquire_at(t0), None, "open for a minute");
        breaker.allow_probe();
        assert_eq!(breaker.try_acquire_at(t0), Some(Permit::Probe));
        assert_eq!(breaker.try_acquire_at(t0), None, "one probe at a time");
        breaker.allow_probe();
        assert_eq!(breaker.try_acquire_at(t0), None, "a probe out is not open");
        breaker.record_at(Permit::Probe, true, t0);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn failed_probe_reopens_and_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        breaker.record_at(Permit::Call, false, t0);
        breaker.record_at(Permit::Call, true, t0);
        breaker.record_at(Permit::Call, false, t0);
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "success resets the run"
        );
        breaker.record_at(Permit::Call, false, t0);
        assert_eq!(breaker.state(), BreakerState::Open);
        let t1 = t0 + Duration::from_secs(1);
        let probe = breaker.try_acquire_at(t1).unwrap();
        breaker.record_at(probe, false, t1);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.try_acquire_at(t1 + Duration::from_millis(10)), None);
    }
}
