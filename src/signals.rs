//! SIGINT and SIGTERM stop training cleanly: the loop finishes its step, writes the
//! checkpoint and the CSV, and the binary exits 130 or 143 with the command to resume.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

pub struct StopFlag {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl StopFlag {
    pub fn install() -> Result<Self> {
        let flag = StopFlag { int: Arc::new(AtomicBool::new(false)), term: Arc::new(AtomicBool::new(false)) };
        let reg = |sig, f: &Arc<AtomicBool>| {
            signal_hook::flag::register(sig, Arc::clone(f))
                .map_err(|e| Error::Config(format!("cannot install the signal handler: {e}")))
        };
        reg(SIGINT, &flag.int)?;
        reg(SIGTERM, &flag.term)?;
        Ok(flag)
    }

    /// The signal received, if any.
    pub fn raised(&self) -> Option<i32> {
        if self.int.load(Ordering::Relaxed) {
            Some(SIGINT)
        } else if self.term.load(Ordering::Relaxed) {
            Some(SIGTERM)
        } else {
            None
        }
    }
}
