//! The grid of a study: depths × architectures × seeds, one ordinary `train` run directory
//! per cell at `DIR/<arch>-<depth>/seed-<s>/`, and `DIR/grid.json`, the plan, written
//! before any cell starts. A rerun with another plan or other settings is refused; a
//! finished cell is skipped; an interrupted one continues from its last checkpoint.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Arch;
use crate::train::TrainConfig;

/// What to train: every (arch, depth, seed), each with the same `train` flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridSpec {
    pub depths: Vec<i64>,
    pub archs: Vec<String>,
    pub seeds: Vec<i64>,
    /// `train` flags shared by every cell (epochs, schedule, precision, …), as given.
    pub train_flags: Vec<String>,
}

/// Where and how a cell computes: not part of the plan, so a grid may move between
/// machines (or onto a cluster) without retraining.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exec {
    pub threads: Option<i32>,
    pub device: Option<String>,
}

/// Flags the grid sets itself, per cell.
const GRID_FLAGS: [(&str, &str); 5] = [
    ("--arch", "--archs"),
    ("--depth", "--depths"),
    ("--seed", "--seeds"),
    ("--out", "the grid's --out"),
    ("--resume", "a rerun of the same command"),
];
/// Flags that say where a cell computes rather than what it computes.
const EXEC_FLAGS: [&str; 2] = ["--threads", "--device"];

impl GridSpec {
    /// Splits `flags` into the plan's train flags and the execution settings in them
    /// (`--threads`, `--device`), refusing the flags the grid sets per cell.
    pub fn new(depths: Vec<i64>, archs: Vec<Arch>, seeds: Vec<i64>, flags: &[String]) -> Result<(GridSpec, Exec)> {
        let mut depths = depths;
        depths.dedup();
        let mut train_flags = Vec::new();
        let mut exec = Exec::default();
        let mut it = flags.iter();
        while let Some(flag) = it.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (flag.as_str(), None),
            };
            if let Some((_, instead)) = GRID_FLAGS.iter().find(|(f, _)| *f == name) {
                return Err(Error::Config(format!("{name} is set by the grid for each cell: use {instead}")));
            }
            if EXEC_FLAGS.contains(&name) {
                let value = inline
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| Error::Config(format!("{name} needs a value")))?;
                if name == "--threads" {
                    let t = value.parse::<i32>().ok().filter(|t| *t >= 1);
                    exec.threads =
                        Some(t.ok_or_else(|| Error::Config(format!("--threads {value} must be a whole number ≥ 1")))?);
                } else {
                    crate::device::parse_device(&value)?;
                    exec.device = Some(value);
                }
                continue;
            }
            train_flags.push(flag.clone());
        }
        let spec = GridSpec { depths, archs: archs.iter().map(ToString::to_string).collect(), seeds, train_flags };
        if spec.depths.is_empty() || spec.archs.is_empty() || spec.seeds.is_empty() {
            return Err(Error::Config("the grid is empty: give at least one depth, architecture and seed".into()));
        }
        Ok((spec, exec))
    }
}

/// One run of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub index: usize,
    pub arch: String,
    pub depth: i64,
    pub seed: i64,
    /// Relative to the grid directory: `<arch>-<depth>/seed-<s>`.
    pub dir: PathBuf,
}

impl Cell {
    /// `resnet-56`.
    pub fn net(&self) -> String {
        format!("{}-{}", self.arch, self.depth)
    }
    /// `resnet-56 seed 1`.
    pub fn name(&self) -> String {
        format!("{} seed {}", self.net(), self.seed)
    }
}

/// `DIR/grid.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GridFile {
    /// What wrote it, for a reader's information.
    tool: String,
    spec: GridSpec,
    cells: Vec<Cell>,
}

/// Turns `train` flags (`argv[0]` the program name) into a checked configuration: the
/// command line's parser, given by the program that runs the grid (the library has no
/// flags of its own).
pub type FlagParser = fn(&[String]) -> Result<TrainConfig>;

/// A planned grid in its directory.
#[derive(Debug, Clone)]
pub struct Grid {
    pub dir: PathBuf,
    pub spec: GridSpec,
    pub cells: Vec<Cell>,
    parse: FlagParser,
}

/// What a cell's directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    /// Nothing yet (or a run that died before its first checkpoint).
    New,
    /// A checkpoint to continue from, with the epochs done and planned.
    Interrupted {
        epochs_done: usize,
        epochs: i64,
    },
    Finished {
        epochs: i64,
    },
}

impl Grid {
    /// Plans the grid in `dir`: checks every cell's flags, then writes `grid.json` or, when
    /// one is there, checks that it holds this very plan.
    pub fn plan(dir: &Path, spec: GridSpec, parse: FlagParser) -> Result<Grid> {
        // The order cells run in: a whole replicate (every network, one seed) before the
        // next seed, so a partial grid already has a full table; the longest cells first.
        let mut depths = spec.depths.clone();
        depths.sort_unstable_by(|a, b| b.cmp(a));
        let mut cells = Vec::new();
        for &seed in &spec.seeds {
            for arch in &spec.archs {
                for &depth in &depths {
                    let dir = PathBuf::from(format!("{arch}-{depth}")).join(format!("seed-{seed}"));
                    cells.push(Cell { index: cells.len(), arch: arch.clone(), depth, seed, dir });
                }
            }
        }
        let grid = Grid { dir: dir.to_path_buf(), spec, cells, parse };
        for cell in &grid.cells {
            grid.config(cell, &Exec::default())?;
        }
        let path = dir.join("grid.json");
        if path.exists() {
            let saved = Grid::open(dir, parse)?;
            if saved.spec != grid.spec {
                return Err(Error::Config(format!(
                    "{} holds another plan ({}): use another --out, or rerun with the same flags",
                    path.display(),
                    describe_difference(&saved.spec, &grid.spec)
                )));
            }
        } else {
            // A cell directory that refuses the plan refuses it before grid.json is
            // written: a refusal leaves nothing behind.
            for cell in &grid.cells {
                grid.state(cell)?;
            }
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let file = GridFile {
                tool: format!("resnet-cifar {}", env!("CARGO_PKG_VERSION")),
                spec: grid.spec.clone(),
                cells: grid.cells.clone(),
            };
            let text = serde_json::to_string_pretty(&file).expect("grid serialises");
            crate::files::write_atomic(&path, text.as_bytes())?;
        }
        Ok(grid)
    }

    /// Reads the grid planned in `dir`.
    pub fn open(dir: &Path, parse: FlagParser) -> Result<Grid> {
        let path = dir.join("grid.json");
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Config(format!(
                "{}: no grid here (no grid.json): plan one with --depths/--archs/--seeds",
                dir.display()
            )),
            _ => Error::io(&path, e),
        })?;
        let file: GridFile = serde_json::from_str(&text)
            .map_err(|e| Error::data(&path, format!("not a grid written by `resnet-cifar study`: {e}")))?;
        Ok(Grid { dir: dir.to_path_buf(), spec: file.spec, cells: file.cells, parse })
    }

    /// The cell's run directory.
    pub fn cell_dir(&self, cell: &Cell) -> PathBuf {
        self.dir.join(&cell.dir)
    }

    /// The cell's training configuration: the grid's flags with its arch, depth and seed.
    pub fn config(&self, cell: &Cell, exec: &Exec) -> Result<TrainConfig> {
        let out = self.cell_dir(cell);
        let mut argv: Vec<String> = vec!["train".into()];
        argv.extend(["--arch".into(), cell.arch.clone(), "--depth".into(), cell.depth.to_string()]);
        argv.extend(["--seed".into(), cell.seed.to_string(), "--out".into(), out.display().to_string()]);
        if let Some(t) = exec.threads {
            argv.extend(["--threads".into(), t.to_string()]);
        }
        if let Some(d) = &exec.device {
            argv.extend(["--device".into(), d.clone()]);
        }
        argv.extend(self.spec.train_flags.iter().cloned());
        (self.parse)(&argv).map_err(|e| Error::Config(format!("{}: {e}", cell.name())))
    }

    /// Looks at the cell's directory. A run there with other settings than the plan's is
    /// an error, never silently mixed in.
    pub fn state(&self, cell: &Cell) -> Result<CellState> {
        let dir = self.cell_dir(cell);
        if !dir.join("config.json").exists() {
            let empty = crate::train::claim::contents(&dir)?.is_empty();
            if !empty && !dir.join("metrics.csv").exists() {
                return Err(Error::Config(format!("{} holds something else than a run: move it away", dir.display())));
            }
            return Ok(CellState::New);
        }
        let saved = crate::train::config::config_from_run(&dir)?;
        let planned = self.config(cell, &Exec::default())?;
        if let Some(diff) = experiment_difference(&saved, &planned) {
            return Err(Error::Config(format!(
                "{} holds a run with other settings ({diff}): use another --out, or delete it to train it again",
                dir.display()
            )));
        }
        let epochs_done = match crate::metrics::read(&dir.join("metrics.csv")) {
            Ok(rows) => rows.len(),
            Err(_) => 0,
        };
        if epochs_done as i64 >= saved.epochs {
            return Ok(CellState::Finished { epochs: saved.epochs });
        }
        if dir.join("last.safetensors").exists() {
            Ok(CellState::Interrupted { epochs_done, epochs: saved.epochs })
        } else {
            Ok(CellState::New)
        }
    }

    /// Removes what a run that died before its first checkpoint left (its config.json,
    /// metrics.csv and TensorBoard event files), so it starts anew.
    pub fn clear_unstarted(&self, cell: &Cell) -> Result<()> {
        let dir = self.cell_dir(cell);
        let mut left = vec![dir.join("config.json"), dir.join("metrics.csv")];
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let events =
                entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."));
            left.extend(events.map(|e| e.path()));
        }
        for p in left {
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        Ok(())
    }

    /// Where a cell's output goes when the grid runs it: `DIR/logs/<arch>-<depth>-seed-<s>.log`.
    pub fn log_path(&self, cell: &Cell) -> PathBuf {
        self.dir.join("logs").join(format!("{}-seed-{}.log", cell.net(), cell.seed))
    }
}

/// Trains (or continues) cell `index` of the grid in `dir`, in this process: what each
/// worker of `--jobs`, and each Slurm array task, runs.
pub fn run_cell(grid: &Grid, index: usize, exec: &Exec) -> Result<Option<crate::train::RunSummary>> {
    let dir = &grid.dir;
    let cell = grid.cells.get(index).ok_or_else(|| {
        Error::Config(format!(
            "cell {index} does not exist: the grid in {} has {} cells",
            dir.display(),
            grid.cells.len()
        ))
    })?;
    let device = exec.device.as_deref().map(crate::device::parse_device).transpose()?;
    match grid.state(cell)? {
        CellState::Finished { epochs } => {
            println!("{}: finished ({epochs} epochs) in {}", cell.name(), grid.cell_dir(cell).display());
            Ok(None)
        }
        CellState::Interrupted { epochs_done, epochs } => {
            println!("{}: continuing after epoch {epochs_done} of {epochs}", cell.name());
            let overrides = crate::train::ResumeOverrides {
                threads: exec.threads,
                device,
                data_dir: None,
                cuda_graphs: None,
                deterministic: false,
            };
            Ok(Some(crate::train::resume(&grid.cell_dir(cell), overrides, false)?))
        }
        CellState::New => {
            grid.clear_unstarted(cell)?;
            let cfg = grid.config(cell, exec)?;
            Ok(Some(crate::train::run(&cfg)?))
        }
    }
}

/// The first setting in which two runs differ as experiments (not where they computed).
fn experiment_difference(a: &TrainConfig, b: &TrainConfig) -> Option<String> {
    let pairs: [(&str, String, String); 18] = [
        ("dataset", a.dataset.to_string(), b.dataset.to_string()),
        ("arch", a.model.arch.to_string(), b.model.arch.to_string()),
        ("depth", a.model.depth.to_string(), b.model.depth.to_string()),
        ("shortcut", a.model.shortcut.to_string(), b.model.shortcut.to_string()),
        ("batch_norm", a.model.batch_norm.to_string(), b.model.batch_norm.to_string()),
        ("zero_init_residual", a.model.zero_init_residual.to_string(), b.model.zero_init_residual.to_string()),
        ("precision", a.compute.precision.to_string(), b.compute.precision.to_string()),
        ("batch_size", a.batch_size.to_string(), b.batch_size.to_string()),
        ("lr", a.lr.to_string(), b.lr.to_string()),
        ("momentum", a.momentum.to_string(), b.momentum.to_string()),
        ("weight_decay", a.weight_decay.to_string(), b.weight_decay.to_string()),
        ("schedule", a.schedule.to_string(), b.schedule.to_string()),
        ("warmup", a.warmup_iterations().to_string(), b.warmup_iterations().to_string()),
        ("normalization", a.normalization.to_string(), b.normalization.to_string()),
        ("val_split", a.val_split.to_string(), b.val_split.to_string()),
        ("limit_train", format!("{:?}", a.limit_train), format!("{:?}", b.limit_train)),
        ("limit_test", format!("{:?}", a.limit_test), format!("{:?}", b.limit_test)),
        ("seed", a.seed.to_string(), b.seed.to_string()),
    ];
    if let Some((k, x, y)) = pairs.into_iter().find(|(_, x, y)| x != y) {
        return Some(format!("{k} {x}, not {y}"));
    }
    // The saved epochs are the schedule's; with `scaled` they are the flag's.
    let scaled = a.schedule == crate::schedule::ScheduleKind::Scaled;
    (scaled && a.epochs != b.epochs).then(|| format!("epochs {}, not {}", a.epochs, b.epochs))
}

fn describe_difference(saved: &GridSpec, new: &GridSpec) -> String {
    if saved.depths != new.depths {
        format!("depths {:?}, not {:?}", saved.depths, new.depths)
    } else if saved.archs != new.archs {
        format!("archs {}, not {}", saved.archs.join(","), new.archs.join(","))
    } else if saved.seeds != new.seeds {
        format!("seeds {:?}, not {:?}", saved.seeds, new.seeds)
    } else {
        format!("train flags `{}`, not `{}`", saved.train_flags.join(" "), new.train_flags.join(" "))
    }
}

/// A small stand-in for the command line's `train` parser, for the library's unit tests:
/// `--arch --depth --seed --out --threads --device --epochs --precision --limit-train`.
#[cfg(test)]
pub(crate) fn test_parser(argv: &[String]) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::default();
    let mut it = argv.iter().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| Error::Config(format!("{flag} needs a value")))?;
        let bad = || Error::Config(format!("invalid value '{v}' for '{flag}'"));
        match flag.as_str() {
            "--arch" => cfg.model.arch = v.parse()?,
            "--depth" => cfg.model.depth = v.parse().map_err(|_| bad())?,
            "--seed" => cfg.seed = v.parse().map_err(|_| bad())?,
            "--out" => cfg.out_dir = v.into(),
            "--threads" => cfg.threads = Some(v.parse().map_err(|_| bad())?),
            "--device" => cfg.device = crate::device::parse_device(v)?,
            "--epochs" => cfg.epochs = v.parse().ok().filter(|e| *e >= 1).ok_or_else(bad)?,
            "--precision" => cfg.compute.precision = v.parse()?,
            "--limit-train" => cfg.limit_train = Some(v.parse().map_err(|_| bad())?),
            _ => return Err(Error::Config(format!("unexpected argument '{flag}'"))),
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn spec_splits_execution_flags_and_refuses_grid_flags() {
        let (spec, exec) = GridSpec::new(
            vec![20, 56],
            vec![Arch::Plain, Arch::Resnet],
            vec![0, 1],
            &flags("--epochs 3 --threads 2 --device=cpu --precision bf16"),
        )
        .unwrap();
        assert_eq!(spec.train_flags, flags("--epochs 3 --precision bf16"));
        assert_eq!(exec, Exec { threads: Some(2), device: Some("cpu".into()) });
        for bad in ["--depth 20", "--out x", "--seed=3", "--arch plain", "--resume d"] {
            let e = GridSpec::new(vec![20], vec![Arch::Plain], vec![0], &flags(bad)).unwrap_err().to_string();
            assert!(e.contains("set by the grid"), "{e}");
        }
        let e = GridSpec::new(vec![20], vec![Arch::Plain], vec![0], &flags("--threads 0")).unwrap_err().to_string();
        assert!(e.contains("--threads 0"), "{e}");
        assert!(GridSpec::new(vec![], vec![Arch::Plain], vec![0], &[]).is_err());
    }

    #[test]
    fn plan_lays_out_cells_and_refuses_another_plan() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, _) =
            GridSpec::new(vec![20, 32], vec![Arch::Plain, Arch::Resnet], vec![0, 1, 2], &flags("--epochs 2")).unwrap();
        let grid = Grid::plan(tmp.path(), spec.clone(), test_parser).unwrap();
        assert_eq!(grid.cells.len(), 12);
        // Seed by seed, the deeper network of each architecture first.
        let order: Vec<String> = grid.cells[..4].iter().map(|c| c.dir.display().to_string()).collect();
        assert_eq!(order, ["plain-32/seed-0", "plain-20/seed-0", "resnet-32/seed-0", "resnet-20/seed-0"]);
        assert_eq!(grid.cells[11].dir, PathBuf::from("resnet-20/seed-2"));
        assert!(grid.cells.iter().enumerate().all(|(i, c)| c.index == i));
        assert!(tmp.path().join("grid.json").exists());
        assert_eq!(grid.state(&grid.cells[0]).unwrap(), CellState::New);
        // The same plan again is fine; another is refused in one line.
        Grid::plan(tmp.path(), spec.clone(), test_parser).unwrap();
        let (other, _) =
            GridSpec::new(vec![20, 32], vec![Arch::Plain, Arch::Resnet], vec![0, 1, 2], &flags("--epochs 3")).unwrap();
        let e = Grid::plan(tmp.path(), other, test_parser).unwrap_err().to_string();
        assert!(e.contains("another plan") && e.contains("--epochs 3") && !e.contains('\n'), "{e}");
        let (fewer, _) =
            GridSpec::new(vec![20], vec![Arch::Plain, Arch::Resnet], vec![0, 1, 2], &flags("--epochs 2")).unwrap();
        assert!(Grid::plan(tmp.path(), fewer, test_parser).unwrap_err().to_string().contains("depths"));
        // A bad train flag is caught before anything is written.
        let tmp2 = tempfile::tempdir().unwrap();
        let (bad, _) = GridSpec::new(vec![20], vec![Arch::Plain], vec![0], &flags("--epochs -1")).unwrap();
        assert!(Grid::plan(tmp2.path(), bad, test_parser).is_err());
        assert!(!tmp2.path().join("grid.json").exists());
        let (bad, _) = GridSpec::new(vec![21], vec![Arch::Plain], vec![0], &[]).unwrap();
        assert!(Grid::plan(tmp2.path(), bad, test_parser).unwrap_err().to_string().contains("6n+2"));
    }

    #[test]
    fn cell_config_carries_the_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, _) = GridSpec::new(
            vec![56],
            vec![Arch::Resnet],
            vec![4],
            &flags("--epochs 7 --precision bf16 --limit-train 100"),
        )
        .unwrap();
        let grid = Grid::plan(tmp.path(), spec, test_parser).unwrap();
        let exec = Exec { threads: Some(3), device: Some("cpu".into()) };
        let cfg = grid.config(&grid.cells[0], &exec).unwrap();
        assert_eq!((cfg.model.depth, cfg.model.arch, cfg.seed, cfg.epochs), (56, Arch::Resnet, 4, 7));
        assert_eq!(cfg.compute.precision, crate::model::Precision::Bf16);
        assert_eq!((cfg.limit_train, cfg.threads), (Some(100), Some(3)));
        assert_eq!(cfg.out_dir, tmp.path().join("resnet-56/seed-4"));
    }
}
