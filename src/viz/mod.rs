//! Figures: [`figure`] draws panels of lines and bands (PNG or SVG, one drawing path for
//! every figure of the project); [`curves`] turns runs' `metrics.csv` into Fig. 6-style
//! learning curves on it.

pub mod curves;
pub mod figure;
