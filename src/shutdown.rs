//! Shutdown on request: the one place that listens for SIGTERM and Ctrl-C. Everything that
//! runs until stopped takes its stop as a parameter instead (a [`CancellationToken`] or a
//! future), so tests stop it by cancelling and only the command line listens for signals.

use tokio_util::sync::CancellationToken;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A token cancelled by the first SIGTERM or Ctrl-C (logged as a shutdown request).
#[must_use]
pub fn token_on_signal() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::info!("shutdown requested: no new renewals; those in flight finish");
        on_signal.cancel();
    });
    cancel
}
