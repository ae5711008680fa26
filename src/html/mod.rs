//! `resnet-cifar report`: one self-contained HTML file for a run, several runs, or a study.
//! Figures are inline SVG drawn by [`crate::viz`], the style sheet is inline, and there is
//! no script, font or image to fetch: the file opens offline, on a narrow screen too.
//!
//! - [`run`]: a run's configuration, learning curves, per-epoch table, final and best
//!   error, and, for a checkpoint that `eval` scored, per-class accuracy and the confusion
//!   matrix.
//! - [`study`]: Table 6 (mean ± std, best, the paper's), Fig. 6 with seed bands, Fig. 7
//!   and each cell's summary.

use std::fmt::Write;
use std::path::Path;

use crate::error::{Error, Result};

pub mod run;
pub mod study;

pub use run::RunReport;

/// What a report shows, in order.
pub enum Section {
    /// Runs, each in its own section; several are first compared in a table and one
    /// figure of their curves.
    Runs(Vec<RunReport>),
    Study(Box<study::StudyReport>),
}

/// Writes the report of `sections` to `out` (atomically), titled `title`.
pub fn write(out: &Path, title: &str, sections: &[Section]) -> Result<()> {
    if sections.is_empty() {
        return Err(Error::Config("nothing to report: give run or study directories".into()));
    }
    let mut body = String::new();
    for s in sections {
        match s {
            Section::Runs(runs) => {
                if runs.len() > 1 {
                    run::comparison(&mut body, runs)?;
                }
                for r in runs {
                    r.html(&mut body)?;
                }
            }
            Section::Study(s) => s.html(&mut body)?,
        }
    }
    let page = page(title, &body);
    crate::files::write_atomic(out, page.as_bytes())
}

/// The page around `body`.
fn page(title: &str, body: &str) -> String {
    let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header><h1>{t}</h1>\n\
         <p class=\"meta\">resnet-cifar {v}, {stamp}. He, Zhang, Ren and Sun, \"Deep Residual Learning for \
         Image Recognition\" (2015).</p></header>\n<main>\n{body}</main>\n</body>\n</html>\n",
        t = escape(title),
        v = env!("CARGO_PKG_VERSION"),
    )
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:0 1rem 3rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.6rem;margin:1.2rem 0 .2rem}h2{font-size:1.3rem;border-bottom:2px solid #d0d7de;
padding-bottom:.2rem;margin-top:2.2rem}h3{font-size:1.05rem;margin:1.4rem 0 .4rem}
.meta{color:#57606a;font-size:.9rem;margin:0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.88rem;margin:.4rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td.l,th.l{text-align:left}
tbody tr:nth-child(even){background:#fafbfc}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin:.6rem 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .8rem;min-width:9rem}
.card .v{font-size:1.5rem;font-weight:600}.card .k{color:#57606a;font-size:.8rem}
figure{margin:.8rem 0}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#57606a;font-size:.85rem}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:600}
";

/// `text` made safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => s.push('\u{fffd}'),
            c => s.push(c),
        }
    }
    s
}

/// A table: `header` cells, then rows; the first `left` columns are left-aligned.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], left: usize) {
    let cls = |i: usize| if i < left { " class=\"l\"" } else { "" };
    out.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
    for (i, h) in header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", cls(i), escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", cls(i), escape(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}

/// Value cards: (label, value, the value element's `data-value` name, for readers and tests).
fn cards(out: &mut String, items: &[(&str, String, String)]) {
    out.push_str("<div class=\"cards\">");
    for (k, v, id) in items {
        let _ = write!(
            out,
            "<div class=\"card\"><div class=\"v\" data-value=\"{}\">{}</div><div class=\"k\">{}</div></div>",
            escape(id),
            escape(v),
            escape(k)
        );
    }
    out.push_str("</div>\n");
}

/// An inline SVG figure drawn by `draw` into a string, with a caption.
fn figure(out: &mut String, caption: &str, draw: impl FnOnce(&mut String) -> Result<()>) -> Result<()> {
    let mut svg = String::new();
    draw(&mut svg)?;
    let start = svg.find("<svg").ok_or_else(|| Error::Output("a figure drew no SVG".into()))?;
    // plotters escapes markup in text; a control character (invalid in XML) is replaced.
    let svg: String = svg[start..]
        .chars()
        .map(|c| if c.is_control() && !matches!(c, '\n' | '\t') { '\u{fffd}' } else { c })
        .collect();
    let _ = writeln!(out, "<figure>{svg}<figcaption>{}</figcaption></figure>", escape(caption));
    Ok(())
}

/// A percentage as `train` prints it.
fn pct(v: f64) -> String {
    format!("{v:.2}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup_or_control_characters() {
        assert_eq!(escape("<b a=\"x\">&'\u{1b}[31m"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;\u{fffd}[31m");
    }

    #[test]
    fn a_control_character_in_an_svg_is_replaced() {
        let mut out = String::new();
        figure(&mut out, "<c>", |svg| {
            svg.push_str("<?xml?>\n<svg><text>run\u{1b}[31m\u{0}</text></svg>");
            Ok(())
        })
        .unwrap();
        assert_eq!(
            out,
            "<figure><svg><text>run\u{fffd}[31m\u{fffd}</text></svg><figcaption>&lt;c&gt;</figcaption></figure>\n"
        );
    }

    #[test]
    fn a_page_has_no_external_reference() {
        let mut body = String::new();
        table(&mut body, &["a", "b"], &[vec!["<x>".into(), "1".into()]], 1);
        let p = page("t", &body);
        assert!(p.contains("&lt;x&gt;"));
        for bad in ["<script", "http://", "https://", "src=", "@import", "url("] {
            assert!(!p.contains(bad), "{bad}");
        }
    }
}
