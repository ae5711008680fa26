//! SIGINT, SIGTERM and SIGUSR1 stop training cleanly: the loop finishes its step, writes
//! the checkpoint and the CSV, and the binary exits 130, 143 or 138 with the command to
//! resume. SIGUSR1 is what Slurm sends before a time limit (`--signal=B:USR1@120`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

use crate::error::{Error, Result};

pub struct StopFlag {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
}

impl StopFlag {
    pub fn install() -> Result<Self> {
        let new = || Arc::new(AtomicBool::new(false));
        let flag = StopFlag { int: new(), term: new(), usr1: new() };
        let reg = |sig, f: &Arc<AtomicBool>| {
            signal_hook::flag::register(sig, Arc::clone(f))
                .map_err(|e| Error::Config(format!("cannot install the signal handler: {e}")))
        };
        reg(SIGINT, &flag.int)?;
        reg(SIGTERM, &flag.term)?;
        reg(SIGUSR1, &flag.usr1)?;
        Ok(flag)
    }

    /// The signal received, if any.
    pub fn raised(&self) -> Option<i32> {
        if self.int.load(Ordering::Relaxed) {
            Some(SIGINT)
        } else if self.term.load(Ordering::Relaxed) {
            Some(SIGTERM)
        } else if self.usr1.load(Ordering::Relaxed) {
            Some(SIGUSR1)
        } else {
            None
        }
    }
}
