//! The report of a study grid (`resnet-cifar study`): Table 6 in the paper's layout with
//! the spread over seeds, Fig. 6 with seed bands, Fig. 7 from `fig7.csv` when the study
//! measured it, and every finished cell's summary.

use std::fmt::Write;
use std::path::PathBuf;

use super::{cards, escape, figure, table};
use crate::analysis::{fig7, read_responses, Responses};
use crate::error::Result;
use crate::study::results::{self, cell_rows, table6_rows, Curves, Results, CELL_HEADER, TABLE6_HEADER};
use crate::study::Grid;

/// What a study directory holds for the report.
pub struct StudyReport {
    pub dir: PathBuf,
    pub results: Results,
    pub curves: Vec<Curves>,
    /// Fig. 7's layer responses (`fig7.csv`), when the study measured them.
    pub responses: Option<Vec<Responses>>,
}

impl StudyReport {
    /// Reads the finished cells of `grid`, and its `fig7.csv` if there is one.
    pub fn collect(grid: &Grid) -> Result<Self> {
        let (results, curves) = results::collect(grid)?;
        let fig7_csv = grid.dir.join("fig7.csv");
        let responses = if fig7_csv.is_file() { Some(read_responses(&fig7_csv)?) } else { None };
        Ok(StudyReport { dir: grid.dir.clone(), results, curves, responses })
    }

    /// The HTML of the study's section.
    pub fn html(&self, out: &mut String) -> Result<()> {
        let r = &self.results;
        let s = &r.settings;
        let dataset = s.dataset()?;
        let _ = writeln!(
            out,
            "<section class=\"study\"><h2>Study: plain vs. residual networks on {}</h2>",
            escape(&dataset.to_string())
        );
        let _ = writeln!(out, "<p class=\"meta\">{}</p>", escape(&self.dir.display().to_string()));
        cards(
            out,
            &[
                ("epochs (iterations)", format!("{} ({})", s.epochs, s.iterations), "study-epochs".into()),
                ("training / test images", format!("{} / {}", s.train_images, s.test_images), "study-images".into()),
                ("batch, precision", format!("{}, {}", s.batch_size, s.precision), "study-compute".into()),
                ("finished cells", format!("{}", r.cells.len()), "study-cells".into()),
            ],
        );
        out.push_str(
            "<h3>Table 6: final test error (%), mean ± sample std over seeds</h3>\n<p class=\"meta\">\
             best and min–max are over seeds; paper: He et al. (2015) Table 6, (2016) for pre-activation.</p>\n",
        );
        table(out, &TABLE6_HEADER, &table6_rows(r), 1);
        figure(
            out,
            "Fig. 6: training error dashed, test error bold; mean over seeds with the min–max band.",
            |svg| results::fig6(&self.curves, dataset, svg),
        )?;
        if let Some(responses) = &self.responses {
            figure(
                out,
                "Fig. 7: std of each 3×3 layer's response on the test set (first seed of each network).",
                |svg| fig7(responses, svg),
            )?;
        }
        out.push_str("<h3>Cells</h3>\n");
        table(out, &CELL_HEADER, &cell_rows(r), 1);
        if !r.missing.is_empty() {
            let _ = writeln!(out, "<p>Not finished yet: {}.</p>", escape(&r.missing.join(", ")));
        }
        out.push_str("</section>\n");
        Ok(())
    }
}

/// Writes `report.html` into the study directory of `grid` from what [`crate::study::collect`]
/// left there (the tables' cells and `fig7.csv`); returns its path.
pub fn write_report(grid: &Grid) -> Result<PathBuf> {
    let report = StudyReport::collect(grid)?;
    let html = grid.dir.join("report.html");
    let title = format!("Study report: {}", grid.dir.display());
    super::write(&html, &title, &[super::Section::Study(Box::new(report))])?;
    Ok(html)
}
