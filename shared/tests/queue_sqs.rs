//! `SqsQueue` against moto: batches of up to ten, more refused before sending, per-entry delays.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{TimeZone, Utc};
use shared::ids::AthleteUuid;
use shared::queue::{JobKind, JobQueue, Outgoing, QueueError, SqsQueue, SyncJob};

fn job(athlete: &str) -> SyncJob {
    SyncJob::new(
        AthleteUuid::parse(athlete).unwrap(),
        JobKind::Scheduled,
        vec![],
        Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap(),
    )
}

fn outgoing(count: usize, delay_seconds: u32) -> Vec<Outgoing> {
    (0..count)
        .map(|i| Outgoing {
            job: job(&format!("athlete-{i}")),
            delay_seconds,
        })
        .collect()
}

async fn fresh_queue() -> (Client, String, SqsQueue) {
    let moto = testkit::moto::shared().await;
    let (url, _dlq) = moto
        .create_queues(&testkit::moto::unique_name("jobs"))
        .await
        .unwrap();
    let client = Client::new(&moto.sdk_config().await);
    (client.clone(), url.clone(), SqsQueue::new(client, url))
}

async fn receive_all(client: &Client, url: &str) -> Vec<SyncJob> {
    let mut jobs = Vec::new();
    for _ in 0..5 {
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap();
        let messages = out.messages();
        if messages.is_empty() {
            break;
        }
        jobs.extend(
            messages
                .iter()
                .map(|m| SyncJob::from_body(m.body().unwrap()).unwrap()),
        );
    }
    jobs
}

async fn queue_attribute(client: &Client, url: &str, name: QueueAttributeName) -> String {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn ten_jobs_go_out_in_one_batch_and_arrive_intact() {
    let (client, url, queue) = fresh_queue().await;
    let jobs = outgoing(10, 0);
    assert_eq!(queue.send_batch(&jobs).await.unwrap(), Vec::<usize>::new());
    let mut received = receive_all(&client, &url).await;
    received.sort_by(|a, b| a.athlete.cmp(&b.athlete));
    let mut sent: Vec<SyncJob> = jobs.into_iter().map(|o| o.job).collect();
    sent.sort_by(|a, b| a.athlete.cmp(&b.athlete));
    assert_eq!(received, sent);
}

#[tokio::test]
async fn eleven_jobs_are_refused_and_nothing_is_sent() {
    let (client, url, queue) = fresh_queue().await;
    match queue.send_batch(&outgoing(11, 0)).await {
        Err(QueueError::Unavailable {
            message: reason, ..
        }) => assert!(reason.contains("at most 10"), "{reason}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        queue_attribute(
            &client,
            &url,
            QueueAttributeName::ApproximateNumberOfMessages
        )
        .await,
        "0"
    );
    assert!(receive_all(&client, &url).await.is_empty());
    assert_eq!(queue.send_batch(&[]).await.unwrap(), Vec::<usize>::new());
}

#[tokio::test]
async fn each_job_keeps_its_own_delay() {
    let (client, url, queue) = fresh_queue().await;
    let mut jobs = outgoing(2, 0);
    jobs[1].delay_seconds = 2;
    queue.send_batch(&jobs).await.unwrap();

    let now = receive_all(&client, &url).await;
    assert_eq!(
        now,
        vec![jobs[0].job.clone()],
        "only the undelayed job is visible at once"
    );
    assert_eq!(
        queue_attribute(
            &client,
            &url,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed
        )
        .await,
        "1"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receive_all(&client, &url).await, vec![jobs[1].job.clone()]);
}

#[tokio::test]
async fn an_unreachable_queue_is_unavailable_with_the_code() {
    let moto = testkit::moto::shared().await;
    let missing = SqsQueue::from_config(
        &moto.sdk_config().await,
        format!(
            "{}/123456789012/{}",
            moto.endpoint(),
            testkit::moto::unique_name("gone")
        ),
    );
    match missing.send_batch(&outgoing(1, 0)).await {
        Err(QueueError::Unavailable {
            message: reason,
            source,
        }) => {
            assert!(reason.starts_with("SendMessageBatch: "), "{reason}");
            assert!(
                reason.contains("NonExistentQueue") || reason.contains("QueueDoesNotExist"),
                "{reason}"
            );
            // The modelled service error is kept as the source; the raw response is not.
            let source = source.expect("the service error is kept");
            assert!(
                source
                    .downcast_ref::<aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError>()
                    .is_some(),
                "{source:?}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
