//! The agent's stop signal, named (after mini-redis's `shutdown.rs`): the receiving end of a
//! `watch<bool>` that turns true once. The loop and the upload worker each hold one.

use tokio::sync::watch;

/// Listens for the request to stop. Cheap to clone; every clone sees the same signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Listens on `rx`: the agent stops once the sender sends `true`.
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        Self { rx }
    }

    /// A signal and the sender that raises it.
    pub fn channel() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self::new(rx))
    }

    /// True once the stop was asked for.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until the stop is asked for (at once if it already was). A sender dropped without
    /// asking can never ask: this then waits forever rather than stopping the agent.
    pub async fn recv(&mut self) {
        if self.rx.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl From<watch::Receiver<bool>> for Shutdown {
    fn from(rx: watch::Receiver<bool>) -> Self {
        Self::new(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[tokio::test]
    async fn recv_returns_once_the_stop_is_asked_for_and_every_clone_sees_it() {
        let (tx, mut shutdown) = Shutdown::channel();
        let mut other = shutdown.clone();
        assert!(!shutdown.is_shutdown());
        let waiting = tokio::spawn(async move { other.recv().await });
        tx.send(true).unwrap();
        shutdown.recv().await;
        assert!(shutdown.is_shutdown());
        waiting.await.unwrap();
        // Asked already: returns at once.
        shutdown.recv().await;
    }

    #[tokio::test]
    async fn a_sender_dropped_without_asking_never_stops_the_agent() {
        let (tx, mut shutdown) = Shutdown::channel();
        drop(tx);
        {
            let mut waiting = std::pin::pin!(shutdown.recv());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        assert!(!shutdown.is_shutdown());
    }
}
