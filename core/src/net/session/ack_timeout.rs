//! `consumer_timeout`: a delivery not acknowledged in time closes its
//! channel with 406, as RabbitMQ does, which requeues it.
//!
//! Nothing is timed per delivery: every tick each channel notes its next
//! delivery tag, and a channel whose oldest unacked tag is below the tag
//! noted at least a timeout ago holds a delivery older than the timeout
//! (found within one tick of it).

use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmq_protocol::frame::Kind;
use ringmq_protocol::{ErrorCode, Refusal};

use super::Session;

/// How often channels are looked at, for a timeout of `timeout`.
fn tick(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
}

impl Session {
    /// Watches the connection's unacked deliveries until it closes.
    pub(super) async fn watch_ack_timeouts(self: Rc<Self>, timeout: Duration) {
        let every = tick(timeout);
        loop {
            futures_lite::future::or(glommio::timer::sleep(every), self.ended.wait()).await;
            if self.closed.get() {
                return;
            }
            let late = self.late_channels(Instant::now(), timeout);
            for ch in late {
                let r = Refusal::new(
                    ErrorCode::PreconditionFailed,
                    format_args!(
                        "delivery acknowledgement on channel {ch} timed out. Timeout value used: {} ms. This timeout value can be configured, see consumers doc guide to learn more",
                        timeout.as_millis()
                    ),
                );
                // A soft error: only the channel closes.
                let _ = self.refuse(r, Kind::Settle.as_u16(), ch, 0);
            }
        }
    }

    /// Notes each channel's next tag at `now`; returns the channels holding
    /// a delivery older than `timeout`.
    fn late_channels(&self, now: Instant, timeout: Duration) -> Vec<u16> {
        let mut st = self.st.borrow_mut();
        let mut late = Vec::new();
        for (&ch, chan) in &mut st.channels {
            if chan.closing {
                continue;
            }
            chan.tag_marks.push_back((now, chan.next_tag));
            let Some(due) = now.checked_sub(timeout) else {
                continue;
            };
            // Keep the newest mark at least `timeout` old (and the newer
            // ones): deliveries below its tag are older than the timeout.
            while chan.tag_marks.len() > 1 && chan.tag_marks[1].0 <= due {
                chan.tag_marks.pop_front();
            }
            let bound = chan
                .tag_marks
                .front()
                .filter(|&&(at, _)| at <= due)
                .map(|&(_, tag)| tag);
            let oldest = chan.unacked.front().map(|u| u.tag);
            if let (Some(bound), Some(oldest)) = (bound, oldest) {
                if oldest < bound {
                    late.push(ch);
                }
            }
        }
        late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_timeout_within_bounds() {
        assert_eq!(tick(Duration::from_secs(1800)), Duration::from_secs(60));
        assert_eq!(tick(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(tick(Duration::from_millis(10)), Duration::from_millis(50));
    }
}
