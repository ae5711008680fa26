//! Test-only fault injection. With `RESNET_CIFAR_TEST_PAUSE=KIND:N` the process stops at
//! that point, prints `FAULT-PAUSE KIND:N` on stderr and waits to be killed: `iteration:N`
//! after the N-th SGD step, `checkpoint:N` inside the N-th checkpoint write (temporary
//! file written and synced, not yet renamed). Without the variable these are no-ops.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

fn target() -> Option<&'static (String, i64)> {
    static TARGET: OnceLock<Option<(String, i64)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let v = std::env::var("RESNET_CIFAR_TEST_PAUSE").ok()?;
            let (kind, n) = v.split_once(':')?;
            Some((kind.to_string(), n.parse().ok()?))
        })
        .as_ref()
}

/// Pauses forever if `kind:n` is the configured fault point.
pub fn pause_point(kind: &str, n: i64) {
    if let Some((k, m)) = target() {
        if k == kind && *m == n {
            eprintln!("FAULT-PAUSE {kind}:{n}");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Counts checkpoint writes and pauses inside the configured one.
pub fn checkpoint_write() {
    static COUNT: AtomicI64 = AtomicI64::new(0);
    if target().is_some() {
        pause_point("checkpoint", COUNT.fetch_add(1, Ordering::SeqCst) + 1);
    }
}
