//! Group commit for the WAL: one thread fsyncs on behalf of every writer waiting.
//!
//! A writer logs its record, asks for its sequence number to be made durable
//! ([`GroupSync::request`], which returns at once), goes on applying its samples to the head,
//! and only then waits ([`GroupSync::wait`]). The fsync therefore runs while the writer still
//! has work to do, and one fsync covers every record written before it started, whoever
//! asked. Without the thread, the first waiter did the fsync itself and the others queued on
//! a lock behind it, each starting its own only after the one before had finished.
//!
//! A failed fsync fails the writers whose records it was to cover; the next request tries
//! again.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use anyhow::anyhow;

/// Makes everything written so far durable and returns the sequence number it covered.
pub type SyncFn = Box<dyn FnMut() -> anyhow::Result<u64> + Send>;

pub struct GroupSync {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the sync thread: a request arrived or the log closed.
    wake: Condvar,
    /// Wakes writers: a sync round ended.
    done: Condvar,
}

#[derive(Default)]
struct State {
    /// Highest sequence number anyone asked to be durable.
    requested: u64,
    /// Highest sequence number known to be durable.
    synced: u64,
    /// Sync rounds finished, successful or not.
    rounds: u64,
    failure: Option<Failure>,
    closed: bool,
}

/// The last failed round: writers waiting for a sequence number up to `upto` when it
/// started get its error.
struct Failure {
    round: u64,
    upto: u64,
    message: String,
}

impl GroupSync {
    /// Starts the sync thread.
    pub fn spawn(mut sync: SyncFn) -> anyhow::Result<GroupSync> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("quiver-wal-sync".into())
            .spawn(move || worker.run(&mut sync))
            .map_err(|e| anyhow!("starting the WAL sync thread: {e}"))?;
        Ok(GroupSync { shared })
    }

    /// Asks for everything up to `seq` to be made durable; returns at once.
    pub fn request(&self, seq: u64) {
        let mut state = self.shared.lock();
        self.shared.ask(&mut state, seq);
    }

    /// Returns once everything up to `seq` is durable, or the error of the sync that was
    /// to make it so.
    pub fn wait(&self, seq: u64) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let since = state.rounds;
        self.shared.ask(&mut state, seq);
        loop {
            if state.synced >= seq {
                return Ok(());
            }
            if let Some(failure) = &state.failure
                && failure.round > since
                && seq <= failure.upto
            {
                return Err(anyhow!("{}", failure.message));
            }
            if state.closed {
                return Err(anyhow!("the WAL was closed before the sync"));
            }
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Records that everything up to `seq` was made durable by other means (a checkpoint).
    pub fn mark_synced(&self, seq: u64) {
        let mut state = self.shared.lock();
        state.synced = state.synced.max(seq);
        self.shared.done.notify_all();
    }
}

impl Drop for GroupSync {
    /// The thread finishes the requests already made, then exits.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ask(&self, state: &mut State, seq: u64) {
        if state.requested < seq && state.synced < seq {
            state.requested = seq;
            self.wake.notify_one();
        }
    }

    fn run(&self, sync: &mut SyncFn) {
        let mut state = self.lock();
        loop {
            while state.requested <= state.synced && !state.closed {
                state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.requested <= state.synced {
                return;
            }
            let wanted = state.requested;
            drop(state);
            let result = sync();
            state = self.lock();
            state.rounds += 1;
            match result {
                Ok(upto) => state.synced = state.synced.max(upto),
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "WAL fsync failed");
                    state.failure = Some(Failure {
                        round: state.rounds,
                        upto: wanted,
                        message: format!("{e:#}"),
                    });
                    // Its waiters fail; requests made meanwhile get a round of their own.
                    if state.requested <= wanted {
                        state.requested = state.synced;
                    }
                }
            }
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::Duration;

    /// A log whose "fsync" takes a while and covers whatever was written when it started.
    fn log(fail_rounds: &'static [usize]) -> (Arc<AtomicU64>, Arc<AtomicUsize>, GroupSync) {
        let written = Arc::new(AtomicU64::new(0));
        let rounds = Arc::new(AtomicUsize::new(0));
        let (w, r) = (written.clone(), rounds.clone());
        let sync = GroupSync::spawn(Box::new(move || {
            let upto = w.load(Ordering::SeqCst);
            let round = r.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            if fail_rounds.contains(&round) {
                anyhow::bail!("disk on fire");
            }
            Ok(upto)
        }))
        .unwrap();
        (written, rounds, sync)
    }

    #[test]
    fn writers_waiting_together_share_fsyncs() {
        let (written, rounds, sync) = log(&[]);
        let sync = Arc::new(sync);
        let writers: Vec<_> = (0..16)
            .map(|_| {
                let (written, sync) = (written.clone(), sync.clone());
                std::thread::spawn(move || {
                    let seq = written.fetch_add(1, Ordering::SeqCst) + 1;
                    sync.request(seq);
                    sync.wait(seq)
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap().unwrap();
        }
        let n = rounds.load(Ordering::SeqCst);
        assert!((1..16).contains(&n), "16 writers took {n} fsyncs");
        // Already durable: no new round.
        sync.wait(3).unwrap();
        assert_eq!(rounds.load(Ordering::SeqCst), n);
    }

    #[test]
    fn a_failed_fsync_fails_its_writers_and_the_next_request_retries() {
        let (written, rounds, sync) = log(&[0]);
        written.store(1, Ordering::SeqCst);
        let error = sync.wait(1).unwrap_err();
        assert!(error.to_string().contains("disk on fire"), "{error}");
        sync.wait(1).unwrap();
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_checkpoint_marks_sequence_numbers_durable() {
        let (_, rounds, sync) = log(&[]);
        sync.mark_synced(7);
        sync.wait(7).unwrap();
        assert_eq!(rounds.load(Ordering::SeqCst), 0);
    }
}
