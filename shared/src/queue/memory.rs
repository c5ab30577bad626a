//! `MemoryQueue`: records the jobs sent, with their delays, for tests to inspect and pop.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::sqs::MAX_BATCH;
use super::{JobQueue, Outgoing, QueueError};

#[derive(Default)]
struct State {
    pending: VecDeque<Outgoing>,
    sent: Vec<Outgoing>,
    fail_next: Option<BTreeSet<usize>>,
    unavailable: bool,
}

/// The in-memory queue for handler tests. It enforces SQS's batch limit, as `SqsQueue` does.
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<State>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every job ever accepted, in sending order (popping does not remove them from here).
    pub fn sent(&self) -> Vec<Outgoing> {
        self.lock_state().sent.clone()
    }

    /// The oldest job not popped yet, as a worker would receive it (delays are recorded, not waited for).
    pub fn pop(&self) -> Option<Outgoing> {
        self.lock_state().pending.pop_front()
    }

    /// Every job not popped yet, oldest first.
    pub fn drain(&self) -> Vec<Outgoing> {
        self.lock_state().pending.drain(..).collect()
    }

    /// How many jobs wait to be popped.
    pub fn len(&self) -> usize {
        self.lock_state().pending.len()
    }

    /// Whether no job waits to be popped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next `send_batch` reports the entries at `indices` as failed and does not accept them.
    pub fn fail_next_batch(&self, indices: impl IntoIterator<Item = usize>) {
        self.lock_state().fail_next = Some(indices.into_iter().collect());
    }

    /// While `true`, every `send_batch` fails as an unreachable queue would.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock_state().unavailable = unavailable;
    }
}

impl JobQueue for MemoryQueue {
    async fn send_batch(&self, jobs: &[Outgoing]) -> Result<Vec<usize>, QueueError> {
        let mut state = self.lock_state();
        if state.unavailable {
            return Err(QueueError::unavailable("memory queue set unavailable"));
        }
        if jobs.len() > MAX_BATCH {
            return Err(QueueError::unavailable(format!(
                "a batch holds at most {MAX_BATCH} jobs, {} given",
                jobs.len()
            )));
        }
        let failing = state.fail_next.take().unwrap_or_default();
        let mut failed = Vec::new();
        for (index, outgoing) in jobs.iter().enumerate() {
            if failing.contains(&index) {
                failed.push(index);
                continue;
            }
            let accepted = Outgoing {
                job: outgoing.job.clone(),
                delay_seconds: outgoing.delay_seconds.min(Self::MAX_DELAY_SECONDS),
            };
            state.pending.push_back(accepted.clone());
            state.sent.push(accepted);
        }
        Ok(failed)
    }
}
