//! Matching PUBACKs to what was published: rumqttc assigns packet ids as it sends, in the order
//! of the publish requests, and reports each with `Outgoing::Publish(pkid)`. When every QoS 1
//! publish of a session goes through one loop, a FIFO of tags lines up with those events, and
//! a PUBACK's packet id names what it acknowledges. Pure state, no I/O: the agent's loop (and
//! the fleet simulator's cameras) feed it events.

use anpr_protocol::RequestId;
use std::collections::{HashMap, VecDeque};

/// What a QoS 1 publish was, to act on its PUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// A progress status, a report or a sync: nothing to do on PUBACK.
    Other,
    /// A request's final status: the journal records it answered.
    Final(RequestId),
    /// A plate-read batch (its outbox sequence number): acknowledge it in the outbox.
    Batch(u64),
}

/// The publishes requested but not yet sent, and those sent but not yet acknowledged.
#[derive(Debug, Default)]
pub struct Tracker {
    expect: VecDeque<Tag>,
    by_pkid: HashMap<u16, Tag>,
}

impl Tracker {
    /// A QoS 1 publish was handed to the client, tagged `tag`.
    pub fn expect(&mut self, tag: Tag) {
        self.expect.push_back(tag);
    }

    /// The client sent a publish with packet id `pkid` (0: QoS 0, not tracked).
    pub fn sent(&mut self, pkid: u16) {
        // A retransmission after a reconnect reuses its packet id: already known.
        if pkid != 0
            && !self.by_pkid.contains_key(&pkid)
            && let Some(tag) = self.expect.pop_front()
        {
            self.by_pkid.insert(pkid, tag);
        }
    }

    /// The broker acknowledged packet id `pkid`: what it was, once.
    pub fn acked(&mut self, pkid: u16) -> Option<Tag> {
        self.by_pkid.remove(&pkid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubacks_are_matched_to_batches_by_packet_id_and_retransmissions_do_not_shift_them() {
        let mut t = Tracker::default();
        for tag in [Tag::Other, Tag::Batch(7), Tag::Other] {
            t.expect(tag);
        }
        t.sent(1);
        t.sent(2);
        // A reconnect retransmits packet 2 before the next new publish goes out.
        t.sent(2);
        t.sent(3);
        t.sent(0); // QoS 0 publishes have no packet id.
        assert_eq!(t.acked(2), Some(Tag::Batch(7)));
        assert_eq!(t.acked(1), Some(Tag::Other));
        assert_eq!(t.acked(3), Some(Tag::Other));
        assert_eq!(t.acked(2), None, "acknowledged once");
        // A packet id is reused after its PUBACK: it maps to the new publish.
        t.expect(Tag::Batch(8));
        t.sent(2);
        assert_eq!(t.acked(2), Some(Tag::Batch(8)));
    }
}
