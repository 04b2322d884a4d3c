//! Fault injection: what can go wrong on purpose, and the seeded dice that
//! decide when.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Faults to inject. All zero (no faults) by default. Changed at runtime
/// with [`Emulator::set_faults`](crate::Emulator::set_faults) or
/// `PUT /_emulator/faults` with this struct as JSON (missing members take
/// their defaults), e.g. `{"record_failure_probability": 0.1, "seed": 7}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability that a record of PutRecords / PutRecordBatch fails with
    /// `InternalFailure` (inside a 200 answer).
    pub record_failure_probability: f64,
    /// Probability that a request is answered 500 `InternalFailure`.
    pub internal_error_probability: f64,
    /// Probability that a request is answered 503 `ServiceUnavailable`
    /// (`ServiceUnavailableException` for Firehose).
    pub service_unavailable_probability: f64,
    /// Latency added before every answer.
    pub latency_ms: u64,
    /// Extra random latency, uniform in `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Probability that the connection is closed without an answer.
    pub drop_connection_probability: f64,
    /// Stop answering: requests wait (connections stay open) until the stall
    /// ends. It starts when these faults are set.
    pub stall: Option<Stall>,
    /// Requests signed with one of these access key ids are refused with
    /// 400 `ExpiredTokenException`.
    pub expired_access_key_ids: Vec<String>,
    /// Seed of the dice; the same seed and the same request sequence give
    /// the same faults. `None` seeds from the OS.
    pub seed: Option<u64>,
}

/// How long a stall lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stall {
    /// Until faults without a stall are set.
    UntilCleared,
    /// For this many milliseconds.
    ForMillis(u64),
}

/// What happens to one request before it reaches its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFate {
    Proceed,
    DropConnection,
    InternalError,
    Unavailable,
}

#[derive(Debug)]
struct FaultState {
    faults: Faults,
    rng: StdRng,
    /// `Some(None)`: stalled until cleared; `Some(Some(t))`: until `t`.
    stalled: Option<Option<Instant>>,
}

/// The live fault settings, shared by every connection.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    state: Mutex<FaultState>,
    /// Bumped on every change so stalled requests re-check at once.
    changed: watch::Sender<u64>,
    /// Requests past the last fault check and not yet answered: they act
    /// whatever faults are set from now on. Counted up under `state`'s
    /// lock, so once `set` returns, every request the old faults let
    /// through is counted here.
    admitted: AtomicUsize,
}

/// What the fault checks made just before a request acts decided.
pub(crate) enum Admission<'a> {
    /// Let through; counted as admitted until this is dropped.
    Admitted(AdmittedRequest<'a>),
    /// Signed with a key set to be refused as expired.
    Expired,
    /// The server stalled meanwhile: wait, then ask again.
    Stalled,
}

/// A request let through by [`FaultInjector::admit`].
pub(crate) struct AdmittedRequest<'a>(&'a AtomicUsize);

impl Drop for AdmittedRequest<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FaultState {
    fn is_stalled(&self) -> bool {
        match self.stalled {
            None => false,
            Some(None) => true,
            Some(Some(until)) => until > Instant::now(),
        }
    }
}

fn rng_for(seed: Option<u64>) -> StdRng {
    match seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    }
}

fn stall_deadline(stall: Option<Stall>) -> Option<Option<Instant>> {
    stall.map(|s| match s {
        Stall::UntilCleared => None,
        Stall::ForMillis(ms) => Some(Instant::now() + Duration::from_millis(ms)),
    })
}

impl FaultInjector {
    pub(crate) fn new(faults: Faults) -> Self {
        FaultInjector {
            state: Mutex::new(FaultState {
                rng: rng_for(faults.seed),
                stalled: stall_deadline(faults.stall),
                faults,
            }),
            changed: watch::channel(0).0,
            admitted: AtomicUsize::new(0),
        }
    }

    pub(crate) fn get(&self) -> Faults {
        self.state.lock().faults.clone()
    }

    /// Replaces the faults; a seed (re)starts the dice, a stall starts now.
    pub(crate) fn set(&self, faults: Faults) {
        {
            let mut state = self.state.lock();
            if faults.seed.is_some() {
                state.rng = rng_for(faults.seed);
            }
            state.stalled = stall_deadline(faults.stall);
            state.faults = faults;
        }
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Whether requests are being held back right now.
    pub(crate) fn is_stalled(&self) -> bool {
        self.state.lock().is_stalled()
    }

    /// Waits while the server is stalled. Returns whether it had to wait.
    pub(crate) async fn wait_while_stalled(&self) -> bool {
        let mut changes = self.changed.subscribe();
        let mut waited = false;
        loop {
            let deadline = match self.state.lock().stalled {
                None => return waited,
                Some(Some(until)) if until <= Instant::now() => return waited,
                Some(deadline) => deadline,
            };
            waited = true;
            match deadline {
                Some(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until.into()) => {}
                        _ = changes.changed() => {}
                    }
                }
                None => {
                    if changes.changed().await.is_err() {
                        return waited;
                    }
                }
            }
        }
    }

    /// The last check before a request acts: not stalled, and not signed
    /// with a refused key. Decided under the lock `set` takes, so a change
    /// of faults either stops a request here or finds it counted.
    pub(crate) fn admit(&self, access_key_id: Option<&str>) -> Admission<'_> {
        let state = self.state.lock();
        if state.is_stalled() {
            return Admission::Stalled;
        }
        if access_key_id
            .is_some_and(|key| state.faults.expired_access_key_ids.iter().any(|k| k == key))
        {
            return Admission::Expired;
        }
        self.admitted.fetch_add(1, Ordering::AcqRel);
        Admission::Admitted(AdmittedRequest(&self.admitted))
    }

    /// How many admitted requests have not been answered yet.
    pub(crate) fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Rolls the dice for one request: its added latency and its fate.
    pub(crate) fn roll_request(&self) -> (Duration, RequestFate) {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let f = &state.faults;
        let mut delay = Duration::from_millis(f.latency_ms);
        if f.jitter_ms > 0 {
            delay += Duration::from_millis(state.rng.random_range(0..=f.jitter_ms));
        }
        let fate = if hit(&mut state.rng, f.drop_connection_probability) {
            RequestFate::DropConnection
        } else if hit(&mut state.rng, f.internal_error_probability) {
            RequestFate::InternalError
        } else if hit(&mut state.rng, f.service_unavailable_probability) {
            RequestFate::Unavailable
        } else {
            RequestFate::Proceed
        };
        (delay, fate)
    }

    /// Which of `n` records fail with `InternalFailure`; `None` when none
    /// can (the common case costs one lock and no allocation).
    pub(crate) fn roll_records(&self, n: usize) -> Option<Vec<bool>> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let p = state.faults.record_failure_probability;
        if p <= 0.0 {
            return None;
        }
        Some((0..n).map(|_| hit(&mut state.rng, p)).collect())
    }
}

fn hit(rng: &mut StdRng, probability: f64) -> bool {
    probability > 0.0 && rng.random::<f64>() < probability
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_faults() {
        let faults = Faults {
            record_failure_probability: 0.3,
            seed: Some(42),
            ..Faults::default()
        };
        let a = FaultInjector::new(faults.clone()).roll_records(100);
        let b = FaultInjector::new(faults).roll_records(100);
        assert_eq!(a, b);
        let failed = a.unwrap().iter().filter(|f| **f).count();
        assert!((15..=45).contains(&failed), "{failed}");
    }

    #[test]
    fn no_faults_by_default() {
        let injector = FaultInjector::new(Faults::default());
        assert_eq!(injector.roll_records(10), None);
        assert_eq!(
            injector.roll_request(),
            (Duration::ZERO, RequestFate::Proceed)
        );
        assert!(matches!(
            injector.admit(Some("test")),
            Admission::Admitted(_)
        ));
    }

    #[test]
    fn admitted_requests_are_counted_until_answered() {
        let injector = FaultInjector::new(Faults::default());
        let first = injector.admit(Some("AKID"));
        let second = injector.admit(None);
        assert_eq!(injector.admitted(), 2);
        injector.set(Faults {
            expired_access_key_ids: vec!["AKID".into()],
            ..Faults::default()
        });
        assert!(matches!(injector.admit(Some("AKID")), Admission::Expired));
        assert!(matches!(injector.admit(None), Admission::Admitted(_)));
        drop(first);
        assert_eq!(injector.admitted(), 1);
        injector.set(Faults {
            stall: Some(Stall::UntilCleared),
            ..Faults::default()
        });
        assert!(matches!(injector.admit(None), Admission::Stalled));
        drop(second);
        assert_eq!(injector.admitted(), 0);
    }

    #[test]
    fn stall_parses_from_json() {
        let f: Faults = serde_json::from_str(r#"{"stall": {"for_millis": 5}}"#).unwrap();
        assert_eq!(f.stall, Some(Stall::ForMillis(5)));
        let f: Faults = serde_json::from_str(r#"{"stall": "until_cleared"}"#).unwrap();
        assert_eq!(f.stall, Some(Stall::UntilCleared));
    }
}
