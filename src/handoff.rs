//! Latest-wins hand-over between two threads: at most one item waits, and a
//! new one replaces it. A slow consumer then always gets the freshest frame
//! and the producer never blocks or builds a queue.

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

/// The producing end. It holds a receiver too, to take a stale item out.
#[derive(Debug, Clone)]
pub struct Latest<T> {
    tx: Sender<T>,
    stale: Receiver<T>,
}

/// A hand-over slot: the producer's end and the consumer's receiver, which
/// works with `recv_timeout` and `select!` like any channel.
pub fn latest<T>() -> (Latest<T>, Receiver<T>) {
    let (tx, rx) = bounded(1);
    (
        Latest {
            tx,
            stale: rx.clone(),
        },
        rx,
    )
}

impl<T> Latest<T> {
    /// Puts `item`, dropping the one still waiting, if any; never blocks.
    /// Returns true when an older item was dropped.
    pub fn put(&self, mut item: T) -> bool {
        let mut replaced = false;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return replaced,
                // Cannot happen while `stale` lives; nothing waits either way.
                Err(TrySendError::Disconnected(_)) => return replaced,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    // Empty means the consumer took it in between: retry.
                    replaced |= self.stale.try_recv().is_ok();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn consumer_gets_only_the_newest() {
        let (tx, rx) = latest();
        assert!(!tx.put(1));
        assert!(tx.put(2));
        assert!(tx.put(3));
        assert_eq!(rx.try_recv(), Ok(3));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn producer_never_blocks_without_a_consumer() {
        let (tx, rx) = latest();
        let dropped = (0..10_000).filter(|&i| tx.put(i)).count();
        assert_eq!(dropped, 9_999);
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok(9_999));
    }

    #[test]
    fn items_arrive_in_order_across_threads() {
        let (tx, rx) = latest();
        let producer = std::thread::spawn(move || {
            for i in 0..50_000u32 {
                tx.put(i);
            }
        });
        let mut last = None;
        while let Ok(v) = rx.recv_timeout(Duration::from_secs(5)) {
            assert!(last < Some(v), "{v} after {last:?}");
            last = Some(v);
            if v == 49_999 {
                break;
            }
        }
        producer.join().unwrap();
        assert_eq!(last, Some(49_999));
    }
}
