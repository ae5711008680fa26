//! Figures: [`figure`] draws panels of lines and bands (PNG or SVG, one drawing path for
//! every figure of the project); [`curves`] turns runs' `metrics.csv` into Fig. 6-style
//! learning curves on it; [`contour`] draws filled contour maps (the loss landscapes);
//! [`confusion`] the confusion matrix as a heat map.

pub mod confusion;
pub mod contour;
pub mod curves;
pub mod figure;
