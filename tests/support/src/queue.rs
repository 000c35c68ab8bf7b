//! The plate-reads queue as tests play it in moto's SQS: the queue and its dead-letter queue as
//! the template makes them, and a consumer that does what Lambda's event source mapping does
//! with `ReportBatchItemFailures` (batches of up to ten, the reported messages delivered again,
//! the others deleted).

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use std::future::Future;

/// The queue and its dead-letter queue in moto.
#[derive(Debug, Clone)]
pub struct PlateQueues {
    /// The client, pointed at moto.
    pub sqs: aws_sdk_sqs::Client,
    /// `PlateReadsQueue`.
    pub queue: String,
    /// `PlateReadsDeadLetterQueue`.
    pub dead_letters: String,
}

/// What a [`consume`] run saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumed {
    /// Batches handed to the handler.
    pub batches: usize,
    /// Messages handed to the handler, deliveries again included.
    pub deliveries: usize,
    /// Messages the handler reported as failed (delivered again).
    pub reported: usize,
    /// Messages deleted (handled).
    pub deleted: usize,
}

/// Fresh queues: a queue whose messages move to the dead-letter queue after
/// `max_receive_count` deliveries.
pub async fn fresh(max_receive_count: u32) -> PlateQueues {
    let sqs = aws_sdk_sqs::Client::new(&crate::moto::sdk_config());
    let name = crate::unique("plates");
    let dead_letters = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create dead-letter queue")
        .queue_url
        .expect("queue url");
    let dlq_arn = attribute(&sqs, &dead_letters, QueueAttributeName::QueueArn).await;
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#);
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    PlateQueues {
        sqs,
        queue,
        dead_letters,
    }
}

async fn attribute(sqs: &aws_sdk_sqs::Client, url: &str, name: QueueAttributeName) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&name))
        .expect("the attribute")
}

impl PlateQueues {
    /// Sends each body as one message (what the rule's SQS action does), ten per call.
    pub async fn send(&self, url: &str, bodies: &[String]) {
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(b)
                        .build()
                        .expect("entry")
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("send messages");
            assert!(out.failed.is_empty(), "{:?}", out.failed);
        }
    }

    /// Messages in a queue, visible and in flight.
    pub async fn depth(&self, url: &str) -> usize {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        out.values()
            .map(|v| v.parse::<usize>().expect("a count"))
            .sum()
    }

    /// Consumes the queue until it is empty, as the event source mapping would: batches of up
    /// to ten `(messageId, body)` to `handle`, which answers the ids that failed; those are made
    /// visible again at once (the test's stand-in for their visibility timeout running out:
    /// nothing waits) and the others deleted. Messages that reach `maxReceiveCount` are moved to
    /// the dead-letter queue by SQS (moto) itself.
    pub async fn consume<F, Fut>(&self, mut handle: F) -> Consumed
    where
        F: FnMut(Vec<(String, String)>) -> Fut,
        Fut: Future<Output = Vec<String>>,
    {
        let mut seen = Consumed::default();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                if self.depth(&self.queue).await == 0 {
                    return seen;
                }
                continue;
            }
            seen.batches += 1;
            seen.deliveries += messages.len();
            let batch = messages
                .iter()
                .map(|m| {
                    (
                        m.message_id.clone().expect("message id"),
                        m.body.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let failed = handle(batch).await;
            seen.reported += failed.len();
            let mut deletes = Vec::new();
            for m in &messages {
                let id = m.message_id.as_deref().unwrap_or_default();
                let receipt = m.receipt_handle.as_deref().expect("receipt handle");
                if failed.iter().any(|f| f == id) {
                    self.sqs
                        .change_message_visibility()
                        .queue_url(&self.queue)
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .expect("make visible again");
                } else {
                    deletes.push(
                        DeleteMessageBatchRequestEntry::builder()
                            .id(deletes.len().to_string())
                            .receipt_handle(receipt)
                            .build()
                            .expect("entry"),
                    );
                }
            }
            if !deletes.is_empty() {
                seen.deleted += deletes.len();
                let out = self
                    .sqs
                    .delete_message_batch()
                    .queue_url(&self.queue)
                    .set_entries(Some(deletes))
                    .send()
                    .await
                    .expect("delete");
                assert!(out.failed.is_empty(), "{:?}", out.failed);
            }
        }
    }
}
