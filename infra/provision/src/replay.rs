//! `anpr-stack replay-plate-reads`: moves the messages of the plate-reads dead-letter queue
//! back to the plate-reads queue, where plate-ingest consumes them again.
//!
//! Each message is sent to the queue first and deleted from the dead-letter queue only once
//! the send succeeded, so an interrupted run loses nothing: at worst a message is in both
//! queues, and is sent again by the next run. Sending a message twice is harmless: a plate
//! read's item key comes from the read itself (camera, time, id), so storing it again
//! overwrites the same item. The body is moved unchanged (the rule's event: the camera comes
//! from its topic, never from the payload).

use crate::stack::StackError;

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages sent to the queue and deleted from the dead-letter queue.
    pub moved: usize,
    /// Messages sent but whose deletion from the dead-letter queue failed: they are in both
    /// queues (harmless; the next run sends them again).
    pub left_in_dead_letter_queue: usize,
}

fn aws<E: std::error::Error + Send + Sync + 'static>(
    step: &str,
    report: &ReplayReport,
) -> impl FnOnce(E) -> StackError {
    let step = step.to_owned();
    let done = if report.moved > 0 {
        vec![format!("{} messages moved", report.moved)]
    } else {
        Vec::new()
    };
    move |e| StackError::Aws {
        step,
        done,
        source: Box::new(e),
    }
}

/// Moves every message of `dead_letter_queue_url` to `queue_url` (at most `max` when given),
/// ten at a time, until a receive with a 1 s wait finds none.
pub async fn replay_plate_reads(
    sqs: &aws_sdk_sqs::Client,
    dead_letter_queue_url: &str,
    queue_url: &str,
    max: Option<usize>,
) -> Result<ReplayReport, StackError> {
    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
    let mut report = ReplayReport::default();
    loop {
        let want = match max {
            Some(m) if report.moved + report.left_in_dead_letter_queue >= m => return Ok(report),
            Some(m) => (m - report.moved - report.left_in_dead_letter_queue).min(10),
            None => 10,
        };
        let received = sqs
            .receive_message()
            .queue_url(dead_letter_queue_url)
            .max_number_of_messages(i32::try_from(want).unwrap_or(10))
            .wait_time_seconds(1)
            // Long enough to send and delete the ten; a message not deleted comes back after.
            .visibility_timeout(120)
            .send()
            .await
            .map_err(aws("ReceiveMessage (dead-letter queue)", &report))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(report);
        }
        let mut sends = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(m.body.clone().unwrap_or_default())
                .build()
                .map_err(aws("SendMessageBatch (building)", &report))?;
            sends.push(entry);
        }
        let sent = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(sends))
            .send()
            .await
            .map_err(aws("SendMessageBatch (queue)", &report))?;
        // Only what was sent is deleted; a failed send stays in the dead-letter queue.
        let mut deletes = Vec::new();
        for ok in &sent.successful {
            let Some(m) = ok.id.parse::<usize>().ok().and_then(|i| messages.get(i)) else {
                continue;
            };
            if let Some(handle) = &m.receipt_handle {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(ok.id.clone())
                        .receipt_handle(handle)
                        .build()
                        .map_err(aws("DeleteMessageBatch (building)", &report))?,
                );
            }
        }
        if !sent.failed.is_empty() {
            return Err(StackError::Aws {
                step: "SendMessageBatch (queue)".into(),
                done: vec![format!("{} messages moved", report.moved)],
                source: format!(
                    "{} of {} messages refused: {:?}",
                    sent.failed.len(),
                    messages.len(),
                    sent.failed.iter().map(|f| &f.message).collect::<Vec<_>>()
                )
                .into(),
            });
        }
        if deletes.is_empty() {
            continue;
        }
        let n = deletes.len();
        let deleted = sqs
            .delete_message_batch()
            .queue_url(dead_letter_queue_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .map_err(aws("DeleteMessageBatch (dead-letter queue)", &report))?;
        report.left_in_dead_letter_queue += deleted.failed.len();
        report.moved += n - deleted.failed.len();
    }
}
