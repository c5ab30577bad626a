//! `MemoryQueue`: records what was sent with its delay, lets tests pop jobs, and fails on request.
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use shared::ids::AthleteUuid;
use shared::queue::{JobKind, JobQueue, Outgoing, QueueError, SyncJob};
use shared::testing::MemoryQueue;

fn outgoing(athlete: &str, delay_seconds: u32) -> Outgoing {
    Outgoing {
        job: SyncJob::new(
            AthleteUuid::parse(athlete).unwrap(),
            JobKind::Manual,
            vec![],
            Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap(),
        ),
        delay_seconds,
    }
}

#[tokio::test]
async fn jobs_are_recorded_with_their_delays_and_popped_in_order() {
    let queue = MemoryQueue::new();
    let batch = vec![outgoing("a", 0), outgoing("b", 120), outgoing("c", 5000)];
    assert!(queue.send_batch(&batch).await.unwrap().is_empty());
    assert_eq!(queue.len(), 3);
    assert_eq!(queue.pop(), Some(batch[0].clone()));
    assert_eq!(queue.pop(), Some(batch[1].clone()));
    let last = queue.pop().unwrap();
    assert_eq!(
        last.delay_seconds, 900,
        "capped at SQS's 15 minutes, as SqsQueue does"
    );
    assert_eq!(queue.pop(), None);
    assert!(queue.is_empty());
    assert_eq!(queue.sent().len(), 3, "popping keeps the record");
}

#[tokio::test]
async fn more_than_ten_are_refused_like_sqs() {
    let queue = MemoryQueue::new();
    let batch: Vec<Outgoing> = (0..11).map(|i| outgoing(&format!("a{i}"), 0)).collect();
    assert!(matches!(
        queue.send_batch(&batch).await,
        Err(QueueError::Unavailable { .. })
    ));
    assert!(queue.sent().is_empty());
    assert!(queue.send_batch(&batch[..10]).await.unwrap().is_empty());
    assert_eq!(queue.drain().len(), 10);
}

#[tokio::test]
async fn failures_can_be_injected() {
    let queue = MemoryQueue::new();
    queue.fail_next_batch([1]);
    let batch = vec![outgoing("a", 0), outgoing("b", 0), outgoing("c", 0)];
    assert_eq!(queue.send_batch(&batch).await.unwrap(), vec![1]);
    assert_eq!(
        queue
            .drain()
            .into_iter()
            .map(|o| o.job.athlete.to_string())
            .collect::<Vec<_>>(),
        ["a", "c"]
    );
    // Only the next batch fails.
    assert!(queue.send_batch(&batch).await.unwrap().is_empty());

    queue.set_unavailable(true);
    assert!(queue.send_batch(&batch).await.is_err());
    queue.set_unavailable(false);
    assert!(queue.send_batch(&batch).await.is_ok());
}
