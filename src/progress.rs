//! Progress for long work: an indicatif bar per epoch on a terminal (loss, error,
//! images/s), nothing when output is not a terminal; one plain line per finished epoch.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::EpochMetrics;

/// Whether progress bars should be drawn (stderr is a terminal).
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar over `images` training images for one epoch; hidden when `quiet` or not a terminal.
pub fn epoch_bar(images: u64, epoch: i64, epochs: i64, quiet: bool) -> ProgressBar {
    if quiet || !interactive() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(images);
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
        .expect("valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// The plain summary line for a finished epoch.
pub fn epoch_line(m: &EpochMetrics, epochs: i64) -> String {
    let val = m.val.map(|(l, e)| format!("  val loss {l:.4} err {e:.2}%")).unwrap_or_default();
    format!(
        "epoch {}/{epochs}  iter {}  lr {}  train loss {:.4} err {:.2}%  test loss {:.4} err {:.2}%{val}  {:.1} s  {:.0} img/s",
        m.epoch, m.iteration, m.lr, m.train_loss, m.train_err, m.test_loss, m.test_err, m.epoch_seconds, m.images_per_sec
    )
}

/// A bar over `len` pieces of work (`what`: "points", …) with the time left; hidden when
/// `quiet` or not a terminal.
pub fn count_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet || !interactive() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!("[{{bar:30}}] {{pos}}/{{len}} {what} {{msg}} ({{eta}} left)");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template").progress_chars("=> "));
    bar
}
