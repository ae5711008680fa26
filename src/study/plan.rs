//! The grid of a study: depths × architectures × seeds, one ordinary `train` run directory
//! per cell at `DIR/<arch>-<depth>/seed-<s>/`, and `DIR/grid.json`, the plan, written
//! before any cell starts: the grid's axes and the settings every cell shares, as typed
//! values (the parts of a [`TrainConfig`]). A rerun with another plan or other settings is
//! refused; a finished cell is skipped; an interrupted one continues from its last
//! checkpoint. A cell's run is compared with the plan by value ([`TrainConfig::experiment`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Arch, Compute, ResNetConfig};
use crate::train::config::{DataSettings, Machine, Output, Schedule};
use crate::train::TrainConfig;

/// What to train: every (arch, depth, seed), each with the same settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    pub depths: Vec<i64>,
    pub archs: Vec<Arch>,
    pub seeds: Vec<i64>,
    pub settings: Shared,
}

/// The settings every cell shares: a `train` configuration's parts, of which each cell
/// sets its own architecture, depth, seed and run directory (kept here as resnet, 0, 0
/// and empty), and none of the machine's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    pub model: ResNetConfig,
    pub compute: Compute,
    pub schedule: Schedule,
    pub data: DataSettings,
    pub output: Output,
}

/// Where and how a cell computes: not part of the plan, so a grid may move between
/// machines (or onto a cluster) without retraining.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exec {
    pub threads: Option<i32>,
    pub device: Option<String>,
}

impl GridSpec {
    /// The grid of `depths` × `archs` × `seeds` whose cells share the settings of `template`
    /// (its architecture, depth, seed, run directory and machine are the cells' own).
    pub fn new(depths: Vec<i64>, archs: Vec<Arch>, seeds: Vec<i64>, template: &TrainConfig) -> Result<GridSpec> {
        let mut depths = depths;
        depths.dedup();
        let model = ResNetConfig { arch: Arch::Resnet, depth: 0, ..template.model };
        let output = Output { dir: PathBuf::new(), ..template.output.clone() };
        let settings = Shared {
            model,
            compute: template.compute,
            schedule: template.schedule,
            data: template.data.clone(),
            output,
        };
        let spec = GridSpec { depths, archs, seeds, settings };
        if spec.depths.is_empty() || spec.archs.is_empty() || spec.seeds.is_empty() {
            return Err(Error::Config("the grid is empty: give at least one depth, architecture and seed".into()));
        }
        Ok(spec)
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

/// The plan in a `grid.json` of the versions before the typed settings: the `train` flags
/// as text.
#[derive(Deserialize, PartialEq)]
struct FlagSpec {
    depths: Vec<i64>,
    archs: Vec<Arch>,
    seeds: Vec<i64>,
    train_flags: Vec<String>,
}

/// What a `grid.json` holds: a grid, or the plan of an earlier version.
enum Saved {
    Typed(Box<Grid>),
    Flags(FlagSpec),
}

/// A planned grid in its directory.
#[derive(Debug, Clone)]
pub struct Grid {
    pub dir: PathBuf,
    pub spec: GridSpec,
    pub cells: Vec<Cell>,
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
    /// Plans the grid in `dir`: checks every cell's settings, then writes `grid.json` or,
    /// when one is there, checks that it holds this very plan (a `grid.json` of an earlier
    /// version, with the settings as flags, is brought up to date when its axes agree: each
    /// started cell's own `config.json` is then compared with the plan, as always).
    pub fn plan(dir: &Path, spec: GridSpec) -> Result<Grid> {
        // The order cells run in: a whole replicate (every network, one seed) before the
        // next seed, so a partial grid already has a full table; the longest cells first.
        let mut depths = spec.depths.clone();
        depths.sort_unstable_by(|a, b| b.cmp(a));
        let mut cells = Vec::new();
        for &seed in &spec.seeds {
            for arch in &spec.archs {
                for &depth in &depths {
                    let dir = PathBuf::from(format!("{arch}-{depth}")).join(format!("seed-{seed}"));
                    cells.push(Cell { index: cells.len(), arch: arch.to_string(), depth, seed, dir });
                }
            }
        }
        let grid = Grid { dir: dir.to_path_buf(), spec, cells };
        for cell in &grid.cells {
            grid.config(cell, &Exec::default())?;
        }
        let path = dir.join("grid.json");
        let saved = if path.exists() { Some(Grid::read(dir)?) } else { None };
        match saved {
            Some(Saved::Typed(saved)) if saved.spec != grid.spec => {
                let difference = describe_difference(&saved.spec, &grid.spec);
                return Err(Error::PlanMismatch { path, difference });
            }
            Some(Saved::Typed(_)) => {}
            Some(Saved::Flags(old)) => {
                let (depths, archs, seeds) = (&grid.spec.depths, &grid.spec.archs, &grid.spec.seeds);
                if (&old.depths, &old.archs, &old.seeds) != (depths, archs, seeds) {
                    let archs: Vec<String> = old.archs.iter().map(ToString::to_string).collect();
                    let difference = format!("depths {:?}, archs {archs:?}, seeds {:?}", old.depths, old.seeds);
                    return Err(Error::PlanMismatch { path, difference });
                }
                grid.write_plan()?;
            }
            None => grid.write_plan()?,
        }
        Ok(grid)
    }

    /// Writes `grid.json`, after checking every cell directory: a cell that refuses the
    /// plan refuses it before anything is written, so a refusal leaves nothing behind.
    fn write_plan(&self) -> Result<()> {
        for cell in &self.cells {
            self.state(cell)?;
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let file = GridFile {
            tool: format!("resnet-cifar {}", env!("CARGO_PKG_VERSION")),
            spec: self.spec.clone(),
            cells: self.cells.clone(),
        };
        let text = serde_json::to_string_pretty(&file).expect("grid serialises");
        crate::files::write_atomic(&self.dir.join("grid.json"), text.as_bytes())
    }

    /// Reads the grid planned in `dir`.
    pub fn open(dir: &Path) -> Result<Grid> {
        match Grid::read(dir)? {
            Saved::Typed(grid) => Ok(*grid),
            Saved::Flags(_) => Err(Error::OldGrid { path: dir.join("grid.json") }),
        }
    }

    /// `DIR/grid.json`, today's or an earlier version's.
    fn read(dir: &Path) -> Result<Saved> {
        let path = dir.join("grid.json");
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NoGrid { dir: dir.to_path_buf() },
            _ => Error::io(&path, e),
        })?;
        let not_a_grid =
            |e: serde_json::Error| Error::data(&path, format!("not a grid written by `resnet-cifar study`: {e}"));
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(not_a_grid)?;
        if value.pointer("/spec/train_flags").is_some() {
            return Ok(Saved::Flags(serde_json::from_value(value["spec"].take()).map_err(not_a_grid)?));
        }
        let file: GridFile = serde_json::from_value(value).map_err(not_a_grid)?;
        Ok(Saved::Typed(Box::new(Grid { dir: dir.to_path_buf(), spec: file.spec, cells: file.cells })))
    }

    /// The cell's run directory.
    pub fn cell_dir(&self, cell: &Cell) -> PathBuf {
        self.dir.join(&cell.dir)
    }

    /// The cell's training configuration: the grid's settings with its arch, depth, seed
    /// and run directory, on `exec`'s machine.
    pub fn config(&self, cell: &Cell, exec: &Exec) -> Result<TrainConfig> {
        let s = &self.spec.settings;
        let arch = cell.arch.parse().map_err(|e| Error::Config(format!("{}: {e}", cell.name())))?;
        let device = crate::device::parse_device(exec.device.as_deref().unwrap_or("auto"))?;
        let cfg = TrainConfig {
            model: ResNetConfig { arch, depth: cell.depth, ..s.model },
            compute: s.compute,
            schedule: s.schedule,
            data: s.data.clone(),
            seed: cell.seed,
            output: Output { dir: self.cell_dir(cell), ..s.output.clone() },
            machine: Machine { device, threads: exec.threads, handle_signals: true, ..Machine::default() },
        };
        cfg.validate().map_err(|e| Error::Config(format!("{}: {e}", cell.name())))?;
        Ok(cfg)
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
        if let Some(difference) = saved.experiment().difference(&planned.experiment()) {
            return Err(Error::CellMismatch { dir, difference });
        }
        let epochs_done = match crate::metrics::read(&dir.join("metrics.csv")) {
            Ok(rows) => rows.len(),
            Err(_) => 0,
        };
        let epochs = saved.schedule.epochs;
        if epochs_done as i64 >= epochs {
            return Ok(CellState::Finished { epochs });
        }
        if dir.join("last.safetensors").exists() {
            Ok(CellState::Interrupted { epochs_done, epochs })
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

fn describe_difference(saved: &GridSpec, new: &GridSpec) -> String {
    if saved.depths != new.depths {
        format!("depths {:?}, not {:?}", saved.depths, new.depths)
    } else if saved.archs != new.archs {
        let names = |a: &[Arch]| a.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        format!("archs {}, not {}", names(&saved.archs), names(&new.archs))
    } else if saved.seeds != new.seeds {
        format!("seeds {:?}, not {:?}", saved.seeds, new.seeds)
    } else {
        let diff = crate::train::config::difference(&saved.settings, &new.settings);
        format!("settings: {}", diff.unwrap_or_else(|| "a setting".into()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Precision;

    /// The settings a grid's cells share: `epochs` epochs, the rest at `train`'s defaults.
    pub(crate) fn template(epochs: i64) -> TrainConfig {
        let mut cfg = TrainConfig::default();
        cfg.schedule.epochs = epochs;
        cfg
    }

    fn spec(depths: Vec<i64>, archs: Vec<Arch>, seeds: Vec<i64>, cfg: &TrainConfig) -> GridSpec {
        GridSpec::new(depths, archs, seeds, cfg).unwrap()
    }

    #[test]
    fn a_spec_keeps_the_shared_settings_and_not_the_cells_own() {
        let mut a = template(3);
        a.model.depth = 56;
        a.seed = 7;
        a.output.dir = "runs/x".into();
        a.machine.threads = Some(2);
        let b = template(3);
        let both = [Arch::Plain, Arch::Resnet];
        assert_eq!(spec(vec![20], both.to_vec(), vec![0], &a), spec(vec![20], both.to_vec(), vec![0], &b));
        assert!(GridSpec::new(vec![], vec![Arch::Plain], vec![0], &a).is_err());
        // grid.json spells the settings as config.json does.
        let text = serde_json::to_string(&spec(vec![20], both.to_vec(), vec![0], &a)).unwrap();
        assert!(text.contains(r#""archs":["plain","resnet"]"#) && text.contains(r#""epochs":3"#), "{text}");
    }

    #[test]
    fn plan_lays_out_cells_and_refuses_another_plan() {
        let tmp = tempfile::tempdir().unwrap();
        let both = vec![Arch::Plain, Arch::Resnet];
        let two = spec(vec![20, 32], both.clone(), vec![0, 1, 2], &template(2));
        let grid = Grid::plan(tmp.path(), two.clone()).unwrap();
        assert_eq!(grid.cells.len(), 12);
        // Seed by seed, the deeper network of each architecture first.
        let order: Vec<String> = grid.cells[..4].iter().map(|c| c.dir.display().to_string()).collect();
        assert_eq!(order, ["plain-32/seed-0", "plain-20/seed-0", "resnet-32/seed-0", "resnet-20/seed-0"]);
        assert_eq!(grid.cells[11].dir, PathBuf::from("resnet-20/seed-2"));
        assert!(grid.cells.iter().enumerate().all(|(i, c)| c.index == i));
        assert!(tmp.path().join("grid.json").exists());
        assert_eq!(grid.state(&grid.cells[0]).unwrap(), CellState::New);
        assert_eq!(Grid::open(tmp.path()).unwrap().spec, two);
        // The same plan again is fine; another is refused in one line, naming the setting.
        Grid::plan(tmp.path(), two.clone()).unwrap();
        let three = spec(vec![20, 32], both.clone(), vec![0, 1, 2], &template(3));
        let e = Grid::plan(tmp.path(), three).unwrap_err().to_string();
        assert!(e.contains("another plan") && e.contains("schedule.epochs 2, not 3") && !e.contains('\n'), "{e}");
        let fewer = spec(vec![20], both, vec![0, 1, 2], &template(2));
        assert!(Grid::plan(tmp.path(), fewer).unwrap_err().to_string().contains("depths"));
        // A bad setting is caught before anything is written.
        let tmp2 = tempfile::tempdir().unwrap();
        let bad = spec(vec![21], vec![Arch::Plain], vec![0], &template(2));
        assert!(Grid::plan(tmp2.path(), bad).unwrap_err().to_string().contains("6n+2"));
        assert!(!tmp2.path().join("grid.json").exists());
    }

    #[test]
    fn cell_config_carries_the_settings() {
        let tmp = tempfile::tempdir().unwrap();
        let mut shared = template(7);
        shared.compute.precision = Precision::Bf16;
        shared.data.limit_train = Some(100);
        let grid = Grid::plan(tmp.path(), spec(vec![56], vec![Arch::Resnet], vec![4], &shared)).unwrap();
        let exec = Exec { threads: Some(3), device: Some("cpu".into()) };
        let cfg = grid.config(&grid.cells[0], &exec).unwrap();
        assert_eq!((cfg.model.depth, cfg.model.arch, cfg.seed, cfg.schedule.epochs), (56, Arch::Resnet, 4, 7));
        assert_eq!(cfg.compute.precision, Precision::Bf16);
        assert_eq!((cfg.data.limit_train, cfg.machine.threads), (Some(100), Some(3)));
        assert_eq!(cfg.output.dir, tmp.path().join("resnet-56/seed-4"));
    }

    #[test]
    fn a_grid_of_an_earlier_version_is_brought_up_to_date_by_its_own_command() {
        let tmp = tempfile::tempdir().unwrap();
        let old = r#"{"tool":"resnet-cifar 0.1.0","spec":{"depths":[20],"archs":["plain","resnet"],"seeds":[0],
            "train_flags":["--epochs","2"]},"cells":[]}"#;
        std::fs::write(tmp.path().join("grid.json"), old).unwrap();
        let e = Grid::open(tmp.path()).unwrap_err();
        assert!(matches!(e, Error::OldGrid { .. }), "{e}");
        let other = spec(vec![20, 56], vec![Arch::Plain, Arch::Resnet], vec![0], &template(2));
        assert!(Grid::plan(tmp.path(), other).unwrap_err().to_string().contains("another plan"));
        let same = spec(vec![20], vec![Arch::Plain, Arch::Resnet], vec![0], &template(2));
        Grid::plan(tmp.path(), same.clone()).unwrap();
        assert_eq!(Grid::open(tmp.path()).unwrap().spec, same);
    }
}
