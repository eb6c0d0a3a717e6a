//! One shutdown signal for every task of a process.

use tokio::sync::watch;

/// Fires the shutdown.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Waits for the shutdown; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A new signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// A signal fired by Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
    pub fn on_signals() -> (ShutdownTrigger, Shutdown) {
        let (trigger, shutdown) = Self::new();
        let t = trigger.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async {
                    match term.as_mut() {
                        Some(s) => { s.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {}
            }
            tracing::info!("shutting down");
            t.fire();
        });
        (trigger, shutdown)
    }

    /// Whether it has fired.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the signal fires (at once if it already has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }
}

impl ShutdownTrigger {
    /// Fires the signal; every waiter wakes.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}
