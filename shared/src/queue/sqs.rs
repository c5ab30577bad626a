//! SQS queue (being written).
/// SQS queue.
pub struct SqsQueue;
