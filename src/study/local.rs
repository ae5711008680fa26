//! Every core and GPU of one box: the grid's unfinished cells run as separate processes,
//! `jobs` at a time, CPU threads split between them, or one cell per GPU. One progress
//! display: a line per running cell, plus cells done and the time left. The processes are
//! those of [`crate::jobs`]' pool.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Error, Result};
use crate::jobs::{self, Job, Pool};

use super::plan::{Cell, CellState, Exec, Grid};

/// How the grid runs on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Cells at once [default: one per GPU; on the CPU, one per core up to the cells left].
    pub jobs: Option<usize>,
    /// Devices to spread cells over (`cpu`, `cuda:0`, …) [default: every visible GPU, else cpu].
    pub devices: Vec<String>,
    /// CPU threads per cell [default: the cores divided among the jobs].
    pub threads: Option<i32>,
    /// No progress display (only the lines: a cell started, ended, failed).
    pub quiet: bool,
}

/// The command that trains cell `index` of the grid in `dir`: `EXE study --run-cell N --out
/// DIR [--threads T] [--device D]`, for the `resnet-cifar` binary `exe`; Slurm's array tasks
/// run the same.
pub fn cell_command(exe: &Path, dir: &Path, index: usize, exec: &Exec) -> Vec<String> {
    let mut args = vec![exe.display().to_string(), "study".into(), "--run-cell".into(), index.to_string()];
    args.extend(["--out".into(), dir.display().to_string()]);
    if let Some(t) = exec.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    if let Some(d) = &exec.device {
        args.extend(["--device".into(), d.clone()]);
    }
    args
}

/// A cell being trained by a child process of the pool: the cell, its line, its epochs.
struct Running {
    cell: Cell,
    bar: ProgressBar,
    epochs: i64,
}

/// Mean seconds per epoch of each network seen so far, to estimate the time left.
#[derive(Default)]
struct Pace {
    /// (arch-depth, seconds per epoch).
    known: Vec<(String, f64)>,
}

impl Pace {
    fn learn(&mut self, grid: &Grid, cell: &Cell) {
        if let Ok(rows) = crate::metrics::read(&grid.cell_dir(cell).join("metrics.csv")) {
            let secs = rows.iter().map(|r| r.epoch_seconds).sum::<f64>() / rows.len() as f64;
            self.known.retain(|(n, _)| *n != cell.net());
            self.known.push((cell.net(), secs));
        }
    }
    /// Seconds per epoch of `cell`'s network: measured, else scaled by depth from another.
    fn of(&self, cell: &Cell) -> Option<f64> {
        if let Some((_, s)) = self.known.iter().find(|(n, _)| *n == cell.net()) {
            return Some(*s);
        }
        let (net, s) = self.known.first()?;
        let depth: f64 = net.rsplit('-').next()?.parse().ok()?;
        Some(s * cell.depth as f64 / depth)
    }
}

fn epochs_done(grid: &Grid, cell: &Cell) -> usize {
    crate::metrics::read(&grid.cell_dir(cell).join("metrics.csv")).map_or(0, |r| r.len())
}

fn fmt_duration(secs: f64) -> String {
    let m = (secs / 60.0).round() as i64;
    if m == 0 {
        "<1m".into()
    } else if m >= 60 {
        format!("{}h{:02}m", m / 60, m % 60)
    } else {
        format!("{m}m")
    }
}

/// Runs every unfinished cell of `grid` with the binary `exe` (see [`cell_command`]). A
/// closed stdout stops the grid as SIGTERM does (`Error::GridInterrupted` with SIGPIPE's
/// number): the caller should leave SIGPIPE ignored (Rust's default) while this runs.
pub fn run(grid: &Grid, exe: &Path, opts: &LocalOptions) -> Result<()> {
    let mut todo = Vec::new();
    for cell in &grid.cells {
        let epochs = match grid.state(cell)? {
            CellState::Finished { .. } => continue,
            CellState::Interrupted { epochs, .. } => epochs,
            CellState::New => grid.config(cell, &Exec::default())?.schedule.epochs,
        };
        todo.push((cell.clone(), epochs));
    }
    if todo.is_empty() {
        // A closed stdout changes nothing here: there is nothing left to stop.
        let _ = writeln!(std::io::stdout(), "every cell of {} is finished", grid.dir.display());
        return Ok(());
    }
    let mut runner = Runner::new(grid, exe, opts, todo)?;
    while runner.launch()? {
        std::thread::sleep(Duration::from_millis(500));
        runner.poll()?;
        runner.show_time_left();
    }
    runner.finish()
}

/// The local runner's state: the queue, the cells running, the display.
struct Runner<'a> {
    grid: &'a Grid,
    exe: &'a Path,
    jobs: usize,
    threads: i32,
    /// Cells left, with the epochs each is planned for.
    queue: std::collections::VecDeque<(Cell, i64)>,
    /// The cells running; it stops them on SIGINT and SIGTERM.
    pool: Pool<Running>,
    failed: Vec<String>,
    done: usize,
    pace: Pace,
    display: Display,
}

/// One line per running cell and one for the grid (on a terminal), or plain lines.
struct Display {
    multi: MultiProgress,
    overall: ProgressBar,
    interactive: bool,
    /// Plain lines could not be written (stdout closed: `| head -1`): the grid stops as
    /// on a signal, its running cells writing their checkpoints.
    closed: std::cell::Cell<bool>,
}

impl Display {
    fn new(total: usize, done: usize, quiet: bool) -> Self {
        let interactive = !quiet && crate::progress::interactive();
        let target = if interactive { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} cells {msg}").unwrap());
        overall.set_prefix("grid");
        overall.set_position(done as u64);
        Display { multi, overall, interactive, closed: std::cell::Cell::new(false) }
    }

    fn say(&self, line: String) {
        if self.interactive {
            self.multi.println(line).ok();
        } else if !self.closed.get() {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                self.closed.set(true);
            }
        }
    }

    fn cell_bar(&self, cell: &Cell, device: &str, epochs: i64, done: usize) -> ProgressBar {
        let bar = self.multi.insert_before(&self.overall, ProgressBar::new(epochs as u64));
        bar.set_style(
            ProgressStyle::with_template("  {prefix:24} [{bar:30}] epoch {pos}/{len} {msg} ({elapsed})").unwrap(),
        );
        bar.enable_steady_tick(Duration::from_secs(1));
        bar.set_prefix(format!("{} ({device})", cell.name()));
        bar.set_position(done as u64);
        bar
    }
}

impl<'a> Runner<'a> {
    fn new(grid: &'a Grid, exe: &'a Path, opts: &LocalOptions, todo: Vec<(Cell, i64)>) -> Result<Self> {
        let devices = if opts.devices.is_empty() { jobs::default_devices() } else { opts.devices.clone() };
        let (jobs, threads) = jobs::split(todo.len(), &devices, jobs::cores(), opts.jobs, opts.threads);
        let logs = grid.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
        let total = grid.cells.len();
        let done = total - todo.len();
        let display = Display::new(total, done, opts.quiet);
        display.say(format!(
            "{total} cells ({done} finished), {jobs} at a time on {}, {threads} thread(s) each; logs in {}",
            devices.join(","),
            logs.display()
        ));
        let pool = Pool::new(devices, jobs)?;
        let mut pace = Pace::default();
        for cell in &grid.cells {
            pace.learn(grid, cell);
        }
        Ok(Runner { grid, exe, jobs, threads, queue: todo.into(), pool, failed: Vec::new(), done, pace, display })
    }

    /// Passes a signal on to the cells, or starts cells while slots are free; `false` when
    /// nothing runs any more.
    fn launch(&mut self) -> Result<bool> {
        // A closed stdout stops the grid as a signal does.
        let signal = if self.display.closed.get() && self.pool.stopped().is_none() {
            self.pool.stop(libc::SIGPIPE);
            Some(libc::SIGPIPE)
        } else {
            self.pool.interrupted()
        };
        if let Some(s) = signal {
            self.display.say(format!("signal {s}: stopping; each running cell writes its checkpoint"));
        }
        while self.pool.has_room() {
            let Some((cell, epochs)) = self.queue.pop_front() else { break };
            let device = self.pool.next_device().to_string();
            let mut command = self.command(&cell, &device)?;
            let bar = self.display.cell_bar(&cell, &device, epochs, epochs_done(self.grid, &cell));
            self.display.say(format!("started {} on {device}", cell.name()));
            self.pool.start(Running { cell, bar, epochs }, &mut command)?;
        }
        Ok(!self.pool.is_empty())
    }

    /// The process of `cell` on `device`, its output appended to the cell's log.
    fn command(&self, cell: &Cell, device: &str) -> Result<Command> {
        let exec = Exec { threads: Some(self.threads), device: Some(device.to_string()) };
        let argv = cell_command(self.exe, &self.grid.dir, cell.index, &exec);
        let log_path = self.grid.log_path(cell);
        let open = || std::fs::OpenOptions::new().create(true).append(true).open(&log_path);
        let (out, err) = (open(), open());
        let (out, err) = (out.map_err(|e| Error::io(&log_path, e))?, err.map_err(|e| Error::io(&log_path, e))?);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).stdin(Stdio::null()).stdout(out).stderr(err);
        Ok(command)
    }

    /// Updates each running cell's line and collects the cells that ended.
    fn poll(&mut self) -> Result<()> {
        for job in self.pool.running() {
            let r = &job.tag;
            if let Ok(rows) = crate::metrics::read(&self.grid.cell_dir(&r.cell).join("metrics.csv")) {
                let last = rows.last().expect("metrics::read returns at least one row");
                r.bar.set_position(rows.len() as u64);
                r.bar.set_message(format!("train {:.1}% test {:.1}%", last.train_err, last.test_err));
            }
        }
        for (job, status) in self.pool.reap()? {
            self.ended(job, status);
        }
        self.display.overall.set_position(self.done as u64);
        Ok(())
    }

    /// Reports a cell whose process ended: finished, stopped by a signal, or failed.
    fn ended(&mut self, job: Job<Running>, status: std::process::ExitStatus) {
        let r = &job.tag;
        r.bar.finish_and_clear();
        self.display.multi.remove(&r.bar);
        let minutes = job.started.elapsed().as_secs_f64() / 60.0;
        let name = r.cell.name();
        match self.grid.state(&r.cell) {
            Ok(CellState::Finished { .. }) if status.success() => {
                self.done += 1;
                self.pace.learn(self.grid, &r.cell);
                self.display.say(format!("finished {name} on {} in {minutes:.1} min", job.device));
            }
            _ if self.pool.stopped().is_some() => {
                self.display.say(format!("stopped {name} ({status}); it continues from its checkpoint next time"))
            }
            _ => {
                let log = self.grid.log_path(&r.cell);
                let why = last_line(&log).unwrap_or_else(|| status.to_string());
                self.display.say(format!("FAILED {name}: {why} (log: {})", log.display()));
                self.failed.push(format!("{name} ({why})"));
            }
        }
    }

    /// The grid line: cells running and the time left, from the pace measured so far.
    fn show_time_left(&self) {
        let queued = self.queue.iter().map(|(c, epochs)| self.pace.of(c).map(|s| s * *epochs as f64));
        let running = self.pool.running().iter().map(|job| {
            let r = &job.tag;
            let rest = r.epochs as f64 - epochs_done(self.grid, &r.cell) as f64;
            self.pace.of(&r.cell).map(|s| s * rest)
        });
        let left: f64 = queued.chain(running).map(|x| x.unwrap_or(f64::NAN)).sum();
        let eta =
            if left.is_finite() { format!("~{} left", fmt_duration(left / self.jobs as f64)) } else { String::new() };
        self.display.overall.set_message(format!("· {} running · {eta}", self.pool.running().len()));
    }

    fn finish(self) -> Result<()> {
        self.display.overall.finish_and_clear();
        if let Some(signal) = self.pool.stopped() {
            return Err(Error::GridInterrupted { signal, dir: self.grid.dir.clone() });
        }
        if !self.failed.is_empty() {
            return Err(Error::Config(format!("{} cell(s) failed: {}", self.failed.len(), self.failed.join("; "))));
        }
        Ok(())
    }
}

/// The last non-empty line of a log, for a one-line failure report.
fn last_line(path: &PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_command_names_cell_and_execution() {
        let exec = Exec { threads: Some(2), device: Some("cuda:1".into()) };
        let argv = cell_command(Path::new("/bin/x"), Path::new("/g"), 3, &exec);
        assert_eq!(argv.join(" "), "/bin/x study --run-cell 3 --out /g --threads 2 --device cuda:1");
        assert_eq!(cell_command(Path::new("x"), Path::new("g"), 0, &Exec::default()).len(), 6);
    }

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(fmt_duration(59.0), "1m");
        assert_eq!(fmt_duration(20.0), "<1m");
        assert_eq!(fmt_duration(3600.0 * 2.0 + 300.0), "2h05m");
    }
}
