//! The learning-rate schedule as a pure function of the iteration (Section 4.2): start at
//! 0.1, divide by 10 at 32k and 48k iterations, stop at 64k. `Scaled` puts the two drops at
//! the same fractions (50 % and 75 %) of a shorter run; `Paper` uses the paper's numbers.
//! An optional warm-up at a tenth of the rate (0.01 by default) precedes it, as the paper
//! does for ResNet-110 (400 iterations).

crate::text::value_enum! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum ScheduleKind: "schedule" {
        /// Drops at 50 % and 75 % of `--epochs`: the paper's recipe compressed.
        #[default]
        Scaled => "scaled",
        /// Exactly 64k iterations with drops at 32k and 48k, whatever `--epochs` says.
        Paper => "paper",
    }
}

pub const PAPER_ITERATIONS: i64 = 64_000;
pub const PAPER_MILESTONES: [i64; 2] = [32_000, 48_000];
/// The paper's warm-up for ResNet-110.
pub const PAPER_WARMUP_ITERATIONS: i64 = 400;
/// Depth from which warm-up is on by default.
pub const WARMUP_FROM_DEPTH: i64 = 110;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub base_lr: f64,
    /// Iterations in the whole run.
    pub total_iterations: i64,
    /// Iterations at which the rate is divided by 10 (from that iteration on).
    pub milestones: [i64; 2],
    /// Iterations 0..warmup_iterations run at `base_lr / 10`.
    pub warmup_iterations: i64,
}

impl LrSchedule {
    /// Drops at 50 % and 75 % of `total_iterations`.
    pub fn scaled(base_lr: f64, total_iterations: i64, warmup_iterations: i64) -> Self {
        let milestones = [total_iterations / 2, total_iterations * 3 / 4];
        LrSchedule { base_lr, total_iterations, milestones, warmup_iterations }
    }

    /// The paper's 64k iterations with drops at 32k and 48k.
    pub fn paper(base_lr: f64, warmup_iterations: i64) -> Self {
        LrSchedule { base_lr, total_iterations: PAPER_ITERATIONS, milestones: PAPER_MILESTONES, warmup_iterations }
    }

    /// The learning rate for iteration `iteration` (0-based).
    pub fn lr_at(&self, iteration: i64) -> f64 {
        if iteration < self.warmup_iterations {
            return self.base_lr / 10.0;
        }
        let drops = self.milestones.iter().filter(|&&m| iteration >= m).count() as i32;
        self.base_lr / 10f64.powi(drops)
    }
}

/// Warm-up length when none is given: the paper's 400 iterations from depth 110 on.
pub fn default_warmup(depth: i64) -> i64 {
    if depth >= WARMUP_FROM_DEPTH {
        PAPER_WARMUP_ITERATIONS
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_milestones() {
        let s = LrSchedule::paper(0.1, 0);
        assert_eq!(s.lr_at(0), 0.1);
        assert_eq!(s.lr_at(31_999), 0.1);
        assert!((s.lr_at(32_000) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(47_999) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(48_000) - 0.001).abs() < 1e-12);
        assert_eq!(s.total_iterations, 64_000);
    }

    #[test]
    fn scaled_drops_at_half_and_three_quarters() {
        let s = LrSchedule::scaled(0.1, 391 * 50, 0);
        assert_eq!(s.milestones, [9775, 14662]);
        assert_eq!(s.lr_at(9774), 0.1);
        assert!((s.lr_at(9775) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(14662) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn warmup_then_base_rate() {
        let s = LrSchedule::paper(0.1, default_warmup(110));
        assert!((s.lr_at(0) - 0.01).abs() < 1e-12);
        assert!((s.lr_at(399) - 0.01).abs() < 1e-12);
        assert_eq!(s.lr_at(400), 0.1);
        assert_eq!(default_warmup(56), 0);
        assert_eq!(default_warmup(1202), 400);
    }
}
