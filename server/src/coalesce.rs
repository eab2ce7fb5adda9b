//! Coalesced reads: callers that ask one host for the same kind of read at
//! the same time share one libvirt call.
//!
//! A [`Coalescer`] keeps the questions waiting and at most one batch in
//! flight. A question asked while no batch runs makes one at once, with
//! just itself in it (no wait is added at concurrency 1); questions asked
//! while a batch is in flight wait for it to end and then go together in
//! the next one (at most `max` of them). So every answer comes from a call
//! that libvirt began after its question was asked: coalescing never
//! serves an older answer than a call of the caller's own would have, and
//! under load one round trip answers many callers (the concurrent
//! `GetDomain` reads of a host: one `virDomainListGetStats` for all).
//!
//! A batch may leave a question unanswered (`None`): the read it stands
//! for then makes its own call, as it would without coalescing. A batch
//! that fails, or a driver task that dies, answers `None` to each of its
//! questions and to every one still waiting; nothing is ever lost or left
//! waiting.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::oneshot;

/// The future of one batch: an answer per question, in order (`None`, or
/// a shorter list, leaves questions unanswered).
pub type BatchFuture<A> = Pin<Box<dyn Future<Output = Vec<Option<A>>> + Send>>;

/// Runs one batch of questions with the context `P` given to
/// [`Coalescer::ask`].
pub type RunBatch<P, Q, A> = fn(Arc<P>, Vec<Q>) -> BatchFuture<A>;

type Waiter<Q, A> = (Q, oneshot::Sender<Option<A>>);

struct State<Q, A> {
    /// A driver task runs batches.
    running: bool,
    /// Questions not yet in a batch, in the order asked.
    waiting: Vec<Waiter<Q, A>>,
}

/// Questions of one kind to one host, and the batch in flight.
pub struct Coalescer<P, Q, A> {
    run: RunBatch<P, Q, A>,
    max: usize,
    state: Mutex<State<Q, A>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is valid between any two statements that change it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<P, Q, A> Coalescer<P, Q, A>
where
    P: Send + Sync + 'static,
    Q: Send + 'static,
    A: Send + 'static,
{
    /// A coalescer whose batches `run` makes, of at most `max` questions.
    pub fn new(run: RunBatch<P, Q, A>, max: usize) -> Self {
        Coalescer {
            run,
            max: max.max(1),
            state: Mutex::new(State {
                running: false,
                waiting: Vec::new(),
            }),
        }
    }

    /// The answer to `q` from a batch begun after it was asked, or `None`
    /// when that batch did not answer it. A question asked while no batch
    /// runs makes its batch itself, on its own task (nothing is spawned at
    /// concurrency 1); the questions asked meanwhile then go to a driver
    /// task. Dropping the future abandons the question; when it was making
    /// a batch, the questions waiting for the next one are answered `None`.
    pub async fn ask(self: &Arc<Self>, ctx: &Arc<P>, q: Q) -> Option<A> {
        let turn = {
            let mut s = lock(&self.state);
            if s.running {
                let (tx, rx) = oneshot::channel();
                s.waiting.push((q, tx));
                Err(rx)
            } else {
                s.running = true;
                Ok(q)
            }
        };
        let q = match turn {
            Ok(q) => q,
            Err(rx) => return rx.await.ok().flatten(),
        };
        let mut guard = Driving {
            of: self,
            done: false,
        };
        let mine = (self.run)(Arc::clone(ctx), vec![q])
            .await
            .into_iter()
            .next()
            .flatten();
        {
            let mut s = lock(&self.state);
            if s.waiting.is_empty() {
                s.running = false;
            } else {
                tokio::spawn(Arc::clone(self).drive(Arc::clone(ctx)));
            }
        }
        guard.done = true;
        mine
    }

    /// Runs batches until no question waits.
    async fn drive(self: Arc<Self>, ctx: Arc<P>) {
        let mut guard = Driving {
            of: &self,
            done: false,
        };
        loop {
            let batch: Vec<Waiter<Q, A>> = {
                let mut s = lock(&self.state);
                if s.waiting.is_empty() {
                    s.running = false;
                    guard.done = true;
                    return;
                }
                let n = s.waiting.len().min(self.max);
                s.waiting.drain(..n).collect()
            };
            let (questions, answers_to): (Vec<Q>, Vec<_>) = batch.into_iter().unzip();
            let mut answers = (self.run)(Arc::clone(&ctx), questions).await.into_iter();
            for tx in answers_to {
                // A caller that gave up has dropped its receiver.
                let _ = tx.send(answers.next().flatten());
            }
        }
    }
}

/// Ends a driver (or a question making its own batch) that stopped early:
/// its task was dropped or its batch panicked. Every waiting question is
/// answered `None` (its sender dropped) and the next question makes a new
/// batch.
struct Driving<'a, P, Q, A> {
    of: &'a Coalescer<P, Q, A>,
    done: bool,
}

impl<P, Q, A> Drop for Driving<'_, P, Q, A> {
    fn drop(&mut self) {
        if !self.done {
            let mut s = lock(&self.of.state);
            s.waiting.clear();
            s.running = false;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Duration;
    use tokio::sync::{Mutex as AsyncMutex, Semaphore};

    /// A batch runner whose batches wait for a permit and record their
    /// questions; question `q` is answered `q * 10`, except 7 (unanswered).
    #[derive(Default)]
    struct Probe {
        batches: Mutex<Vec<Vec<u32>>>,
        gate: Option<Arc<Semaphore>>,
        fail: AsyncMutex<bool>,
    }

    fn run(p: Arc<Probe>, qs: Vec<u32>) -> BatchFuture<u32> {
        Box::pin(async move {
            p.batches.lock().unwrap().push(qs.clone());
            if let Some(g) = &p.gate {
                g.acquire().await.unwrap().forget();
            }
            if *p.fail.lock().await {
                return Vec::new();
            }
            qs.iter().map(|&q| (q != 7).then_some(q * 10)).collect()
        })
    }

    fn gated() -> (Arc<Probe>, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let p = Arc::new(Probe {
            gate: Some(Arc::clone(&gate)),
            ..Probe::default()
        });
        (p, gate)
    }

    async fn until_batches(p: &Probe, n: usize) {
        for _ in 0..500 {
            if p.batches.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("batch {n} never began");
    }

    type Probed = Coalescer<Probe, u32, u32>;

    /// Asks `q` on a task of its own.
    fn spawn_ask(c: &Arc<Probed>, p: &Arc<Probe>, q: u32) -> tokio::task::JoinHandle<Option<u32>> {
        let (c, p) = (Arc::clone(c), Arc::clone(p));
        tokio::spawn(async move { c.ask(&p, q).await })
    }

    /// Until `n` questions wait for the next batch.
    async fn until_waiting(c: &Probed, n: usize) {
        while lock(&c.state).waiting.len() < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn alone_a_question_is_its_own_batch() {
        let p = Arc::new(Probe::default());
        let c = Arc::new(Coalescer::new(run, 8));
        assert_eq!(c.ask(&p, 3).await, Some(30));
        assert_eq!(c.ask(&p, 4).await, Some(40));
        assert_eq!(*p.batches.lock().unwrap(), vec![vec![3], vec![4]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn questions_asked_during_a_batch_share_the_next_one() {
        let (p, gate) = gated();
        let c = Arc::new(Coalescer::new(run, 64));
        let first = spawn_ask(&c, &p, 1);
        until_batches(&p, 1).await;
        // Asked while batch 1 is in flight: none of them may be answered
        // by it, all of them go in batch 2.
        let later: Vec<_> = (2..12).map(|q| spawn_ask(&c, &p, q)).collect();
        until_waiting(&c, 10).await;
        gate.add_permits(2);
        assert_eq!(first.await.unwrap(), Some(10));
        for (q, h) in (2..12).zip(later) {
            let want = (q != 7).then_some(q * 10);
            assert_eq!(h.await.unwrap(), want, "question {q}");
        }
        let batches = p.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[0], vec![1]);
        let mut second = batches[1].clone();
        second.sort_unstable();
        assert_eq!(second, (2..12).collect::<Vec<_>>());
        assert!(!lock(&c.state).running);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_hold_at_most_max_questions() {
        let (p, gate) = gated();
        let c = Arc::new(Coalescer::new(run, 4));
        let first = spawn_ask(&c, &p, 100);
        until_batches(&p, 1).await;
        let later: Vec<_> = (0..10).map(|q| spawn_ask(&c, &p, q)).collect();
        until_waiting(&c, 10).await;
        gate.add_permits(100);
        assert_eq!(first.await.unwrap(), Some(1000));
        for h in later {
            h.await.unwrap();
        }
        let sizes: Vec<usize> = p.batches.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 4, 4, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_leaves_its_questions_unanswered_and_the_next_runs() {
        let p = Arc::new(Probe::default());
        let c = Arc::new(Coalescer::new(run, 8));
        *p.fail.lock().await = true;
        assert_eq!(c.ask(&p, 5).await, None);
        *p.fail.lock().await = false;
        assert_eq!(c.ask(&p, 5).await, Some(50));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_stalls_no_one() {
        let (p, gate) = gated();
        let c = Arc::new(Coalescer::new(run, 8));
        let first = spawn_ask(&c, &p, 1);
        until_batches(&p, 1).await;
        // Gives up while waiting for batch 2.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), c.ask(&p, 2)).await;
        assert!(gave_up.is_err());
        let stays = spawn_ask(&c, &p, 3);
        until_waiting(&c, 2).await;
        gate.add_permits(2);
        assert_eq!(first.await.unwrap(), Some(10));
        assert_eq!(stays.await.unwrap(), Some(30));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_question_making_its_batch_answers_every_waiting_one() {
        let (p, gate) = gated();
        let c = Arc::new(Coalescer::new(run, 8));
        let making = spawn_ask(&c, &p, 1);
        until_batches(&p, 1).await;
        let waiting = spawn_ask(&c, &p, 2);
        until_waiting(&c, 1).await;
        making.abort();
        assert!(making.await.unwrap_err().is_cancelled());
        assert_eq!(waiting.await.unwrap(), None);
        gate.add_permits(1);
        assert_eq!(c.ask(&p, 4).await, Some(40));
        assert_eq!(*p.batches.lock().unwrap(), vec![vec![1], vec![4]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_driver_answers_every_waiting_question() {
        let (p, gate) = gated();
        let c = Arc::new(Coalescer::new(run, 8));
        // A driver of the test's own, dropped while its batch is in flight.
        lock(&c.state).running = true;
        lock(&c.state).waiting.push((1, oneshot::channel().0));
        let driver = tokio::spawn(Arc::clone(&c).drive(Arc::clone(&p)));
        until_batches(&p, 1).await;
        let waiting = spawn_ask(&c, &p, 2);
        until_waiting(&c, 1).await;
        driver.abort();
        assert!(driver.await.unwrap_err().is_cancelled());
        assert_eq!(waiting.await.unwrap(), None);
        // The next question starts a driver of its own.
        gate.add_permits(1);
        assert_eq!(c.ask(&p, 4).await, Some(40));
    }
}
