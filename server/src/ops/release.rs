//! Releasing what a read is done with off the request path.
//!
//! libvirt formats a domain's UUID for its debug log in every public call
//! on a domain handle, `virDomainFree` included, and once more when the
//! handle's last reference goes, whether or not anything logs (see
//! [`crate::libvirt_sys::StatsList`]). Releasing the 1000 handles of a
//! listing costs ~1.3 ms of CPU on the benchmark machine, a quarter of the
//! listing's latency, and nothing the caller waits for depends on it.
//! [`later`] hands such values to one thread that drops them while the
//! answer is on its way. It does not save CPU, only the caller's wait: on
//! a machine whose cores are all busy the release costs what it did.

use std::sync::{mpsc, OnceLock};

/// How many values may wait for the release thread; past that the caller
/// releases its own (the queue is never an unbounded store of handles).
const QUEUE: usize = 64;

/// Something to drop, of any type.
type Garbage = Box<dyn Send>;

/// The release thread's queue, started on first use; `None` if the thread
/// could not be started.
fn queue() -> Option<&'static mpsc::SyncSender<Garbage>> {
    static QUEUE_TX: OnceLock<Option<mpsc::SyncSender<Garbage>>> = OnceLock::new();
    QUEUE_TX
        .get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel::<Garbage>(QUEUE);
            std::thread::Builder::new()
                .name("libvirt-release".into())
                .spawn(move || rx.into_iter().for_each(drop))
                .ok()?;
            Some(tx)
        })
        .as_ref()
}

/// Drops `value` on the release thread, or here when that thread is busy
/// with [`QUEUE`] values already (or could not be started).
pub fn later<T: Send + 'static>(value: T) {
    match queue() {
        // A full queue hands the value back, and it is dropped here.
        Some(tx) => drop(tx.try_send(Box::new(value))),
        None => drop(value),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };
    use std::time::{Duration, Instant};

    use super::*;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn every_value_handed_over_is_dropped_even_past_the_queue() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let n = QUEUE * 4;
        for _ in 0..n {
            later(Counted(dropped.clone()));
        }
        let end = Instant::now() + Duration::from_secs(10);
        while dropped.load(Ordering::SeqCst) < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(dropped.load(Ordering::SeqCst), n);
    }
}
