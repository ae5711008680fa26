//! TensorBoard event files: every run directory gets one `events.out.tfevents.*` file
//! (unless `--no-tensorboard`), so `tensorboard --logdir runs` shows and overlays every run
//! and every cell of a study. [`EventLog`] writes it and [`read`] reads it back.
//!
//! The file is a sequence of records: the data's length (u64, little-endian), the masked
//! CRC-32C of those 8 bytes, the data (a [`proto::Event`] encoded by `prost`), and the
//! masked CRC-32C of the data. Every value is logged at the training *iteration* as its
//! step, the x axis of Fig. 6, so a resumed run keeps exactly the records up to its
//! checkpoint's iteration and appends the same ones an uninterrupted run would.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::error::{Error, Result};

pub mod proto;

use proto::{Event, HistogramProto, PluginData, Summary, SummaryMetadata, TensorProto, Value, ValueKind, What};

/// What every event file's name starts with (TensorBoard looks for `tfevents` in names).
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// The tags, grouped by TensorBoard's `group/name` convention.
pub mod tags {
    /// Every `--log-every` iterations: the step's training loss and learning rate.
    pub const STEP_LOSS: &str = "train_step/loss";
    pub const STEP_LR: &str = "train_step/lr";
    /// Per epoch.
    pub const TRAIN_LOSS: &str = "loss/train";
    pub const TEST_LOSS: &str = "loss/test";
    pub const VAL_LOSS: &str = "loss/val";
    pub const TRAIN_ERR: &str = "error/train";
    pub const TEST_ERR: &str = "error/test";
    pub const VAL_ERR: &str = "error/val";
    pub const LR: &str = "optim/lr";
    pub const IMAGES_PER_SEC: &str = "speed/images_per_sec";
    pub const EPOCH_SECONDS: &str = "speed/epoch_seconds";
    /// `grad_norm/<column of metrics.csv without its prefix>`, with `--log-grad-norms`.
    pub const GRAD_NORM_GROUP: &str = "grad_norm/";
    /// `weights/<parameter name>`, with `--log-histograms`.
    pub const WEIGHTS_GROUP: &str = "weights/";
    /// The run's `config.json`, as text, at step 0.
    pub const CONFIG: &str = "config";
}

/// The event file of one run, open for appending.
pub struct EventLog {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventLog {
    /// Starts a new event file in `dir` (no other may exist there).
    pub fn create(dir: &Path) -> Result<Self> {
        if let Some(old) = event_files(dir)?.first() {
            return Err(Error::Config(format!("{}: an event file exists already", old.display())));
        }
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let path = dir.join(format!("{FILE_PREFIX}{secs}.{}.resnet-cifar", hostname()));
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(|e| Error::io(&path, e))?;
        let mut log = EventLog { file: BufWriter::new(file), path };
        log.write(Event { wall_time: now(), step: 0, what: Some(What::FileVersion("brain.Event:2".into())) })?;
        Ok(log)
    }

    /// Continues the event file of the run in `dir` from a checkpoint taken at `iteration`:
    /// records of later steps (written after that checkpoint, before the run stopped) and a
    /// torn last record are dropped, so that a resumed run's stream equals an uninterrupted
    /// one's. The kept records are rewritten to a temporary file renamed over the old one.
    /// A run without an event file (one from before them) starts one.
    pub fn resume(dir: &Path, iteration: i64) -> Result<Self> {
        let files = event_files(dir)?;
        let Some(path) = files.first().cloned() else {
            return Self::create(dir);
        };
        let mut kept = Vec::new();
        for f in &files {
            kept.extend(read(f)?.into_iter().filter(|e| e.step <= iteration));
        }
        let bytes: Vec<u8> = kept.iter().flat_map(record).collect();
        crate::files::write_atomic(&path, &bytes)?;
        for extra in &files[1..] {
            std::fs::remove_file(extra).map_err(|e| Error::io(extra, e))?;
        }
        let file = OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(EventLog { file: BufWriter::new(file), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scalar `value` of `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        self.summary(step, tag, None, ValueKind::SimpleValue(value as f32))
    }

    /// Text for TensorBoard's text plugin (rendered as Markdown).
    pub fn text(&mut self, tag: &str, step: i64, text: &str) -> Result<()> {
        let tensor = TensorProto {
            dtype: proto::DT_STRING,
            tensor_shape: Some(proto::TensorShapeProto { dim: vec![] }),
            string_val: vec![text.as_bytes().to_vec()],
        };
        let meta = SummaryMetadata { plugin_data: Some(PluginData { plugin_name: "text".into(), content: vec![] }) };
        self.summary(step, tag, Some(meta), ValueKind::Tensor(tensor))
    }

    /// A histogram of `tag` at `step`.
    pub fn histogram(&mut self, tag: &str, step: i64, h: HistogramProto) -> Result<()> {
        self.summary(step, tag, None, ValueKind::Histo(h))
    }

    fn summary(&mut self, step: i64, tag: &str, metadata: Option<SummaryMetadata>, value: ValueKind) -> Result<()> {
        let value = Value { tag: tag.into(), metadata, value: Some(value) };
        self.write(Event { wall_time: now(), step, what: Some(What::Summary(Summary { value: vec![value] })) })
    }

    fn write(&mut self, event: Event) -> Result<()> {
        self.file.write_all(&record(&event)).map_err(|e| Error::io(&self.path, e))
    }

    /// Hands what was logged to the operating system (at each epoch end and checkpoint).
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// The event files in `dir`, by name.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(FILE_PREFIX) && !name.ends_with(".tmp") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Reads the events of `path`. Reading stops at a torn or corrupt record, as TensorBoard's
/// reader does: a run killed while writing loses only that record.
pub fn read(path: &Path) -> Result<Vec<Event>> {
    Ok(parse(&crate::files::read(path)?))
}

/// The events of an event file's bytes, up to the first torn or corrupt record.
pub fn parse(mut bytes: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    while bytes.len() >= 12 {
        let (len_bytes, rest) = bytes.split_at(8);
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let rest = &rest[4..];
        if crc != masked_crc(len_bytes) || len > rest.len().saturating_sub(4) as u64 {
            break;
        }
        let (data, rest) = rest.split_at(len as usize);
        let crc = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
        let event = match Event::decode(data) {
            Ok(e) if crc == masked_crc(data) => e,
            _ => break,
        };
        events.push(event);
        bytes = &rest[4..];
    }
    events
}

/// `event` as a TFRecord: its length, the length's masked CRC-32C, the event, its masked
/// CRC-32C.
fn record(event: &Event) -> Vec<u8> {
    let data = event.encode_to_vec();
    let len = (data.len() as u64).to_le_bytes();
    let mut rec = Vec::with_capacity(data.len() + 16);
    rec.extend_from_slice(&len);
    rec.extend_from_slice(&masked_crc(&len).to_le_bytes());
    rec.extend_from_slice(&data);
    rec.extend_from_slice(&masked_crc(&data).to_le_bytes());
    rec
}

/// TensorFlow's masked CRC-32C of a record's length or data.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalars(events: &[Event]) -> Vec<(String, i64, f32)> {
        let mut out = Vec::new();
        for e in events {
            if let Some(What::Summary(s)) = &e.what {
                for v in &s.value {
                    if let Some(ValueKind::SimpleValue(x)) = v.value {
                        out.push((v.tag.clone(), e.step, x));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_crc_is_castagnoli() {
        // The standard check value of CRC-32C; TensorBoard's own reader checks the masked
        // ones in tests/tensorboard.rs.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn written_records_read_back_and_resume_drops_later_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::create(dir.path()).unwrap();
        log.text(tags::CONFIG, 0, "{}").unwrap();
        for step in [10, 20, 30] {
            log.scalar(tags::STEP_LOSS, step, step as f64 / 10.0).unwrap();
        }
        log.flush().unwrap();
        drop(log);
        let path = event_files(dir.path()).unwrap().remove(0);
        let events = read(&path).unwrap();
        assert_eq!(events.len(), 5);
        assert!(matches!(&events[0].what, Some(What::FileVersion(v)) if v == "brain.Event:2"));
        // A torn last record (a kill mid-write) is dropped, then everything after step 20.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[7, 0, 0]);
        std::fs::write(&path, &bytes).unwrap();
        let mut log = EventLog::resume(dir.path(), 20).unwrap();
        log.scalar(tags::STEP_LOSS, 30, 3.5).unwrap();
        log.flush().unwrap();
        let got = scalars(&read(&path).unwrap());
        let want: Vec<(String, i64, f32)> =
            [(10, 1.0), (20, 2.0), (30, 3.5)].iter().map(|&(s, v)| (tags::STEP_LOSS.to_string(), s, v)).collect();
        assert_eq!(got, want);
        assert!(EventLog::create(dir.path()).is_err(), "a second event file is refused");
    }

    #[test]
    fn garbage_reads_as_no_events() {
        assert!(parse(&[0xff; 64]).is_empty());
        assert!(parse(&[]).is_empty());
    }
}
