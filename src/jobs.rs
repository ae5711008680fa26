//! One pool of child processes for work that splits into independent jobs: the study's
//! cells on one box (`study::local`) and the shards of `landscape --jobs`. It
//! splits the cores (or the GPUs) between the jobs ([`split`]), starts each child on a
//! device in turn, collects the children that exit, and on SIGINT or SIGTERM passes
//! SIGTERM on to every child it started, so that each stops as it would on its own.

use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::error::{Error, Result};

/// Every visible GPU (`cuda:0`, …), or `cpu` when there is none.
pub fn default_devices() -> Vec<String> {
    let n = if tch::Cuda::is_available() { tch::Cuda::device_count() } else { 0 };
    if n == 0 {
        vec!["cpu".into()]
    } else {
        (0..n).map(|i| format!("cuda:{i}")).collect()
    }
}

/// The cores of this machine (1 if they cannot be counted).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The jobs and the threads of each, for `todo` jobs on `devices` with `cores` cores.
/// On the CPU one single-thread process per core beat one process using every core (two
/// 1-thread processes: 1.24× the images/s of one 2-thread process, ResNet-20 bf16, AMD
/// EPYC, 2 cores); on GPUs one job per device.
pub fn split(todo: usize, devices: &[String], cores: usize, jobs: Option<usize>, threads: Option<i32>) -> (usize, i32) {
    let gpus = devices.iter().filter(|d| d.starts_with("cuda")).count();
    let default_jobs = if gpus > 0 { devices.len() } else { cores };
    let jobs = jobs.unwrap_or(default_jobs).min(todo.max(1)).max(1);
    let threads = threads.unwrap_or_else(|| ((cores / jobs).max(1)) as i32);
    (jobs, threads)
}

/// Pools alive in this process.
static LIVE_POOLS: AtomicUsize = AtomicUsize::new(0);

/// Once per process: SIGINT and SIGTERM take their default action (end the process) while
/// no pool is alive. signal-hook cannot give a signal back its default disposition once it
/// has handled it, so without this a Ctrl-C after the last pool (while `landscape` draws,
/// say) would be ignored. A process that also stops training on these signals
/// ([`crate::signals`]) must not drop a pool before it trains.
fn default_action_without_pools() -> Result<()> {
    static INSTALLED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            let action = move || {
                if LIVE_POOLS.load(Ordering::SeqCst) == 0 {
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                }
            };
            // SAFETY: the action reads an atomic and calls emulate_default_handler, both
            // async-signal-safe.
            unsafe { signal_hook::low_level::register(signal, action) }.map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    installed.clone().map_err(|e| Error::Config(format!("cannot install the signal handler: {e}")))
}

/// A child process of the pool, with what its owner keeps beside it.
pub struct Job<T> {
    pub tag: T,
    pub device: String,
    pub child: Child,
    pub started: Instant,
}

/// Children running at most `size` at a time, spread over `devices` in turn.
pub struct Pool<T> {
    devices: Vec<String>,
    size: usize,
    next_device: usize,
    running: Vec<Job<T>>,
    /// SIGINT and SIGTERM: the flag each raises, and its handler's id.
    flags: Vec<(i32, Arc<AtomicBool>, signal_hook::SigId)>,
    stopped: Option<i32>,
}

impl<T> Pool<T> {
    /// A pool of `size` children at a time over `devices` (at least one of each); SIGINT
    /// and SIGTERM are caught from now until the pool is dropped.
    pub fn new(devices: Vec<String>, size: usize) -> Result<Self> {
        let devices = if devices.is_empty() { vec!["cpu".to_string()] } else { devices };
        default_action_without_pools()?;
        let flags: Vec<_> = [libc::SIGINT, libc::SIGTERM]
            .into_iter()
            .map(|s| {
                let f = Arc::new(AtomicBool::new(false));
                signal_hook::flag::register(s, Arc::clone(&f)).map(|id| (s, f, id))
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::Config(format!("cannot install the signal handler: {e}")))?;
        LIVE_POOLS.fetch_add(1, Ordering::SeqCst);
        Ok(Pool { devices, size: size.max(1), next_device: 0, running: Vec::new(), flags, stopped: None })
    }

    /// Whether another child may start now: a free slot, and no stop.
    pub fn has_room(&self) -> bool {
        self.stopped.is_none() && self.running.len() < self.size
    }

    /// The device the next child runs on (each in turn).
    pub fn next_device(&self) -> &str {
        &self.devices[self.next_device % self.devices.len()]
    }

    /// Starts `command` as a child on [`Self::next_device`] (the caller has put the device
    /// into its arguments), kept with `tag`.
    pub fn start(&mut self, tag: T, command: &mut Command) -> Result<&mut Job<T>> {
        let device = self.next_device().to_string();
        let child = command.spawn().map_err(|e| Error::io(command.get_program(), e))?;
        self.next_device += 1;
        self.running.push(Job { tag, device, child, started: Instant::now() });
        Ok(self.running.last_mut().expect("just pushed"))
    }

    /// The children still running.
    pub fn running(&self) -> &[Job<T>] {
        &self.running
    }

    pub fn running_mut(&mut self) -> &mut [Job<T>] {
        &mut self.running
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// A SIGINT or SIGTERM that arrived since the last call, once: the pool then stops
    /// ([`Self::stop`]) and this returns the signal's number.
    pub fn interrupted(&mut self) -> Option<i32> {
        if self.stopped.is_some() {
            return None;
        }
        let signal = self.flags.iter().find(|(_, f, _)| f.load(Ordering::Relaxed)).map(|(s, _, _)| *s)?;
        self.stop(signal);
        Some(signal)
    }

    /// Starts no more children and sends SIGTERM to those running; `signal` is the reason,
    /// which [`Self::stopped`] reports.
    pub fn stop(&mut self, signal: i32) {
        if self.stopped.is_some() {
            return;
        }
        self.stopped = Some(signal);
        for job in &self.running {
            // SAFETY: sending a signal to a child we started and have not reaped.
            unsafe { libc::kill(job.child.id() as i32, libc::SIGTERM) };
        }
    }

    /// The signal the pool stopped for, if it did.
    pub fn stopped(&self) -> Option<i32> {
        self.stopped
    }

    /// The children that exited since the last call, with their exit status, in the order
    /// they were started.
    pub fn reap(&mut self) -> Result<Vec<(Job<T>, ExitStatus)>> {
        let mut ended = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            let job = &mut self.running[i];
            match job.child.try_wait().map_err(|e| Error::io(job.child.id().to_string(), e))? {
                None => i += 1,
                Some(status) => ended.push((self.running.remove(i), status)),
            }
        }
        Ok(ended)
    }
}

impl<T> Drop for Pool<T> {
    /// The pool's signals go back to ending the process (once no other pool is alive).
    fn drop(&mut self) {
        for (_, _, id) in &self.flags {
            signal_hook::low_level::unregister(*id);
        }
        LIVE_POOLS.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_jobs_take_one_core_each_up_to_the_jobs_left() {
        let cpu = vec!["cpu".to_string()];
        assert_eq!(split(8, &cpu, 2, None, None), (2, 1));
        assert_eq!(split(8, &cpu, 16, None, None), (8, 2));
        assert_eq!(split(1, &cpu, 16, None, None), (1, 16));
        assert_eq!(split(8, &cpu, 16, Some(4), None), (4, 4));
        assert_eq!(split(8, &cpu, 2, Some(1), Some(2)), (1, 2));
        assert_eq!(split(8, &cpu, 2, Some(3), None), (3, 1));
        assert_eq!(split(0, &cpu, 2, None, None), (1, 2));
    }

    #[test]
    fn gpus_take_one_job_each() {
        let gpus: Vec<String> = (0..4).map(|i| format!("cuda:{i}")).collect();
        assert_eq!(split(10, &gpus, 32, None, None), (4, 8));
        assert_eq!(split(3, &gpus, 32, None, None), (3, 10));
    }

    #[test]
    fn children_run_over_the_devices_in_turn_and_are_collected_with_their_status() {
        let devices = vec!["cuda:0".to_string(), "cuda:1".to_string()];
        let mut pool = Pool::new(devices, 2).unwrap();
        for (tag, code) in [("a", 0), ("b", 3)] {
            assert!(pool.has_room());
            pool.start(tag, Command::new("sh").args(["-c", &format!("exit {code}")])).unwrap();
        }
        assert!(!pool.has_room(), "two at a time");
        let mut ended = Vec::new();
        while !pool.is_empty() {
            ended.extend(pool.reap().unwrap().into_iter().map(|(j, s)| (j.tag, j.device, s.code())));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ended.sort();
        assert_eq!(ended, [("a", "cuda:0".into(), Some(0)), ("b", "cuda:1".into(), Some(3))]);
    }

    /// Waits for every child of `pool`, each of which must end by SIGTERM.
    fn all_terminated(pool: &mut Pool<()>) {
        use std::os::unix::process::ExitStatusExt;
        let t = Instant::now();
        while !pool.is_empty() {
            for (_, status) in pool.reap().unwrap() {
                assert_eq!(status.signal(), Some(libc::SIGTERM));
            }
            assert!(t.elapsed().as_secs() < 10, "the child was not stopped");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    // One test: a raised signal reaches every pool of the process.
    #[test]
    fn a_stop_or_a_signal_terminates_the_children_and_starts_no_more() {
        let mut pool = Pool::new(vec!["cpu".into()], 4).unwrap();
        pool.start((), Command::new("sleep").arg("30")).unwrap();
        assert_eq!(pool.interrupted(), None);
        pool.stop(libc::SIGINT);
        assert!(!pool.has_room());
        all_terminated(&mut pool);
        assert_eq!(pool.stopped(), Some(libc::SIGINT));

        let mut pool = Pool::new(vec!["cpu".into()], 4).unwrap();
        pool.start((), Command::new("sleep").arg("30")).unwrap();
        // SAFETY: raising a signal that the pool has a handler for.
        unsafe { libc::raise(libc::SIGTERM) };
        assert_eq!(pool.interrupted(), Some(libc::SIGTERM));
        assert_eq!(pool.interrupted(), None, "reported once");
        assert!(!pool.has_room());
        all_terminated(&mut pool);
        assert_eq!(pool.stopped(), Some(libc::SIGTERM));
    }
}
