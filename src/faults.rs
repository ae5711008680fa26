//! Test-only fault injection, compiled only with the cargo feature `fault-injection`
//! (`make test` turns it on); without it every point is an empty function. With `RESNET_CIFAR_TEST_PAUSE=KIND:N[@VAR=VALUE]` the process stops at
//! that point, prints `FAULT-PAUSE KIND:N` on stderr and waits to be killed: `iteration:N`
//! after the N-th SGD step, `checkpoint:N` inside the N-th checkpoint write (temporary
//! file written and synced, not yet renamed). Without the variable these are no-ops.
//! At an `iteration` point a training run that handles signals is *held* instead: it waits
//! there until SIGINT/SIGTERM/SIGUSR1 arrives and then stops as it would have after that
//! step, so a test can interrupt a run at an exact iteration. `oom:N` fails the N-th
//! training forward pass as libtorch does when GPU memory runs out (tch panics with
//! `CUDA out of memory. …`), so the CPU drives that path too.

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicI64, Ordering};
#[cfg(feature = "fault-injection")]
use std::sync::OnceLock;

#[cfg(feature = "fault-injection")]
fn target() -> Option<&'static (String, i64)> {
    static TARGET: OnceLock<Option<(String, i64)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let v = std::env::var("RESNET_CIFAR_TEST_PAUSE").ok()?;
            // `KIND:N@VAR=VALUE`: only in a process whose environment has VAR=VALUE (one
            // task of a Slurm array, say).
            let (point, only) = match v.split_once('@') {
                Some((p, cond)) => (p, Some(cond)),
                None => (v.as_str(), None),
            };
            if let Some((var, value)) = only.and_then(|c| c.split_once('=')) {
                if std::env::var(var).ok().as_deref() != Some(value) {
                    return None;
                }
            }
            let (kind, n) = point.split_once(':')?;
            Some((kind.to_string(), n.parse().ok()?))
        })
        .as_ref()
}

/// Pauses forever if `kind:n` is the configured fault point.
#[cfg(feature = "fault-injection")]
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

/// [`pause_point`], except that a raised `stop` flag ends the wait.
#[cfg(not(feature = "fault-injection"))]
pub fn hold_point(_kind: &str, _n: i64, _stop: Option<&crate::signals::StopFlag>) {}

/// [`pause_point`], except that a raised `stop` flag ends the wait.
#[cfg(feature = "fault-injection")]
pub fn hold_point(kind: &str, n: i64, stop: Option<&crate::signals::StopFlag>) {
    let Some(stop) = stop else { return pause_point(kind, n) };
    if let Some((k, m)) = target() {
        if k == kind && *m == n {
            eprintln!("FAULT-PAUSE {kind}:{n}");
            while stop.raised().is_none() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// Counts checkpoint writes and pauses inside the configured one.
#[cfg(not(feature = "fault-injection"))]
pub fn checkpoint_write() {}

/// Counts checkpoint writes and pauses inside the configured one.
#[cfg(feature = "fault-injection")]
pub fn checkpoint_write() {
    static COUNT: AtomicI64 = AtomicI64::new(0);
    if target().is_some() {
        pause_point("checkpoint", COUNT.fetch_add(1, Ordering::SeqCst) + 1);
    }
}

/// Counts training forward passes and fails the configured one (`oom:N`) as libtorch does
/// when CUDA memory runs out.
#[cfg(not(feature = "fault-injection"))]
pub fn out_of_memory_point() {}

/// Counts training forward passes and fails the configured one (`oom:N`) as libtorch does
/// when CUDA memory runs out: a panic from tch, in its words.
#[cfg(feature = "fault-injection")]
pub fn out_of_memory_point() {
    static COUNT: AtomicI64 = AtomicI64::new(0);
    if let Some((k, m)) = target() {
        if k == "oom" && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == *m {
            let said = "CUDA out of memory. Tried to allocate 12.00 GiB. GPU 0 has a total capacity of 139.81 GiB of \
                        which 3.12 GiB is free. (simulated: RESNET_CIFAR_TEST_PAUSE=oom)";
            let err = tch::TchError::Torch(format!("{said}\nException raised from malloc (most recent call first):"));
            std::panic::panic_any(format!("called `Result::unwrap()` on an `Err` value: {err:?}"));
        }
    }
}
