//! Markdown tables and number formatting.

use std::fmt::Write as _;

/// A Markdown table built row by row.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub(crate) fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The Markdown text, ending with a newline.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            out.push('|');
            for cell in cells {
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        };
        line(&mut out, &self.header);
        line(&mut out, &vec!["---".to_owned(); self.header.len()]);
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }
}

/// The median (the mean of the two middle values for an even count); `None` when empty.
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

/// The `q` quantile (0..=1) of `values` by nearest rank; `None` when empty.
pub(crate) fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// Requests per second, e.g. `81.2k`.
pub(crate) fn rate(rps: f64) -> String {
    if rps >= 1_000.0 {
        format!("{:.1}k", rps / 1_000.0)
    } else {
        format!("{rps:.0}")
    }
}

/// A duration in microseconds with three significant digits where they matter, e.g. `0.52 ms`, `86 µs`,
/// `2.41 µs`.
pub(crate) fn micros(us: f64) -> String {
    if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else if us >= 100.0 {
        format!("{us:.0} µs")
    } else if us >= 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.2} µs")
    }
}

/// A ratio, e.g. `0.66×`; three decimals below 0.1 (`0.083×`), where two would hide the differences.
pub(crate) fn ratio(value: f64) -> String {
    if value < 0.095 {
        format!("{value:.3}×")
    } else {
        format!("{value:.2}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median([]), None);
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut values, 0.99), Some(99.0));
        assert_eq!(quantile(&mut values, 1.0), Some(100.0));
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(ratio(0.66), "0.66×");
        assert_eq!(ratio(0.0834), "0.083×");
        assert_eq!(micros(2.414), "2.41 µs");
        assert_eq!(micros(85.44), "85.4 µs");
        assert_eq!(micros(443.0), "443 µs");
        assert_eq!(micros(1_150.0), "1.15 ms");
        assert_eq!(rate(153_080.0), "153.1k");
    }

    #[test]
    fn renders_markdown() {
        let mut table = Table::new(["a", "b"]);
        table.row(["1", "2"]);
        assert_eq!(table.render(), "| a | b |\n| --- | --- |\n| 1 | 2 |\n");
    }
}
