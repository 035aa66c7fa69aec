//! Tabular exports as CSV or Excel, shared by every "export" endpoint (audit trail,
//! experiment results, ...).
//!
//! Build a [`Table`] (a sheet name, column headers, rows of typed [`Cell`]s), then answer
//! it with [`Table::into_response`] in the [`ExportFormat`] the client asked for:
//!
//! ```
//! use samplit_control_plane::export::{Cell, ExportFormat, Table};
//!
//! let mut table = Table::new("Results", ["variant", "visitors", "rate"]);
//! table.push_row(vec!["control".into(), 1200_i64.into(), 0.031.into()])?;
//! table.push_row(vec!["=HYPERLINK(\"x\")".into(), 1180_i64.into(), Cell::Empty])?;
//! let csv = table.to_csv()?;
//! assert!(String::from_utf8(csv)?.contains("'=HYPERLINK"));
//! // In a handler: `table.into_response(format, "results-2026-11-28")`.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Guarantees, for both formats:
//! - **Formula injection is neutralised.** A text cell (headers included) that starts
//!   with a tab or a carriage return, or whose first non-whitespace character is `=`,
//!   `+`, `-` or `@` (spreadsheets skip leading blanks before reading a formula; OWASP's
//!   rule), gets a leading `'`, so a
//!   spreadsheet shows it as text instead of evaluating it (OWASP "CSV injection"). This
//!   applies to XLSX too: its string cells are never evaluated by Excel itself, but users
//!   re-save them as CSV. Numbers ([`Cell::Int`], [`Cell::Float`]) are written as numbers
//!   and never altered, so `-5` stays a negative number — only *text* is escaped.
//!   Exported text therefore differs from the stored text by that one quote.
//! - **CSV** is RFC 4180: CRLF line ends, a header row, fields quoted only when needed
//!   (commas, quotes, CR/LF), quotes doubled; UTF-8 without a BOM
//!   (`Content-Type: text/csv; charset=utf-8`).
//! - **XLSX** has one worksheet with a bold, frozen header row and auto-fitted columns.
//!   Excel limits apply: at most 1,048,575 data rows (more is an [`ExportError`]) and
//!   32,767 characters per cell (longer text is cut and ends with `…`). Integers are
//!   stored as Excel numbers (doubles: exact up to 2^53).
//! - Non-finite floats (NaN, ±∞) become empty cells in both formats.
//! - Responses carry `Content-Disposition: attachment; filename="<stem>.<ext>"` (the stem
//!   reduced to `[A-Za-z0-9._-]`) and `Cache-Control: no-store` (exports hold org data).
//!
//! Tables are built in memory: fine for audit trails and results (thousands of rows);
//! a streaming writer would be the next step for millions.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;

/// Excel's row limit, header row included.
pub const XLSX_MAX_ROWS: usize = 1_048_576;
/// Excel's limit on the characters of one cell.
pub const XLSX_MAX_CELL_CHARS: usize = 32_767;

/// The formats an export endpoint can answer (`?format=csv|xlsx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

impl ExportFormat {
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// One cell: text is neutralised on output, numbers and booleans are written as such.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for Cell {
    fn from(v: i32) -> Self {
        Self::Int(i64::from(v))
    }
}
impl From<u32> for Cell {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<uuid::Uuid> for Cell {
    fn from(v: uuid::Uuid) -> Self {
        Self::Text(v.to_string())
    }
}
/// Timestamps are written as RFC 3339 text (UTC as stored), which every tool parses.
impl From<time::OffsetDateTime> for Cell {
    fn from(v: time::OffsetDateTime) -> Self {
        v.format(&time::format_description::well_known::Rfc3339)
            .map_or(Self::Empty, Self::Text)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Empty, Into::into)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("row {row} has {got} cells; the table has {expected} columns")]
    RowWidth {
        row: usize,
        expected: usize,
        got: usize,
    },
    #[error(
        "{rows} rows do not fit in a spreadsheet (at most {max}); narrow the export or use CSV"
    )]
    TooManyRows { rows: usize, max: usize },
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("xlsx: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::TooManyRows { .. } => ApiError::BadRequest(e.to_string()),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// A sheet of typed cells under named columns.
#[derive(Debug, Clone)]
pub struct Table {
    sheet_name: String,
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table. `sheet_name` is the XLSX worksheet name (cleaned up to Excel's
    /// rules: at most 31 characters, none of `[]:*?/\`).
    pub fn new<C: Into<String>>(sheet_name: &str, columns: impl IntoIterator<Item = C>) -> Self {
        Self {
            sheet_name: clean_sheet_name(sheet_name),
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; it must have one cell per column.
    pub fn push_row(&mut self, row: Vec<Cell>) -> Result<(), ExportError> {
        if row.len() != self.columns.len() {
            return Err(ExportError::RowWidth {
                row: self.rows.len() + 1,
                expected: self.columns.len(),
                got: row.len(),
            });
        }
        self.rows.push(row);
        Ok(())
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn rows(&self) -> &[Vec<Cell>] {
        &self.rows
    }

    /// RFC 4180 CSV (see the module docs).
    pub fn to_csv(&self) -> Result<Vec<u8>, ExportError> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        writer.write_record(
            self.columns
                .iter()
                .map(|c| neutralize_formula(c).into_owned()),
        )?;
        for row in &self.rows {
            let fields: Vec<Cow<'_, str>> = row.iter().map(csv_field).collect();
            writer.write_record(fields.iter().map(|f| f.as_bytes()))?;
        }
        writer
            .into_inner()
            .map_err(|e| ExportError::Csv(e.into_error().into()))
    }

    /// An XLSX workbook with one sheet (see the module docs).
    pub fn to_xlsx(&self) -> Result<Vec<u8>, ExportError> {
        use rust_xlsxwriter::{Format, Workbook};
        if self.rows.len() + 1 > XLSX_MAX_ROWS {
            return Err(ExportError::TooManyRows {
                rows: self.rows.len(),
                max: XLSX_MAX_ROWS - 1,
            });
        }
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.set_name(&self.sheet_name)?;
        let bold = Format::new().set_bold();
        for (c, name) in self.columns.iter().enumerate() {
            sheet.write_string_with_format(0, col(c)?, xlsx_text(name), &bold)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            // Bounded by XLSX_MAX_ROWS above, so it fits in u32.
            let r = u32::try_from(r + 1).map_err(|_| ExportError::TooManyRows {
                rows: self.rows.len(),
                max: XLSX_MAX_ROWS - 1,
            })?;
            for (c, cell) in row.iter().enumerate() {
                let c = col(c)?;
                match cell {
                    Cell::Empty => {}
                    Cell::Text(s) => {
                        sheet.write_string(r, c, xlsx_text(s))?;
                    }
                    #[allow(clippy::cast_precision_loss)] // documented: exact up to 2^53
                    Cell::Int(v) => {
                        sheet.write_number(r, c, *v as f64)?;
                    }
                    Cell::Float(v) if v.is_finite() => {
                        sheet.write_number(r, c, *v)?;
                    }
                    Cell::Float(_) => {}
                    Cell::Bool(v) => {
                        sheet.write_boolean(r, c, *v)?;
                    }
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofit();
        Ok(workbook.save_to_buffer()?)
    }

    /// The table as a download: body, `Content-Type`, `Content-Disposition` with
    /// `<file_stem>.<csv|xlsx>`, and `Cache-Control: no-store`.
    pub fn into_response(
        &self,
        format: ExportFormat,
        file_stem: &str,
    ) -> Result<Response, ApiError> {
        let body = match format {
            ExportFormat::Csv => self.to_csv()?,
            ExportFormat::Xlsx => self.to_xlsx()?,
        };
        let disposition = format!(
            "attachment; filename=\"{}.{}\"",
            clean_file_stem(file_stem),
            format.extension()
        );
        let disposition = HeaderValue::from_str(&disposition)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("content-disposition: {e}")))?;
        Ok((
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                ),
                (header::CONTENT_DISPOSITION, disposition),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response())
    }
}

/// Prefixes `'` to text that a spreadsheet would read as a formula: its first
/// non-whitespace character is `=`, `+`, `-` or `@` (spreadsheets skip leading blanks
/// first), or it starts with a tab or CR (which some tools strip before doing so).
pub fn neutralize_formula(text: &str) -> Cow<'_, str> {
    let starts_blank = matches!(text.chars().next(), Some('\t' | '\r'));
    let first_visible = text.trim_start().chars().next();
    if starts_blank || matches!(first_visible, Some('=' | '+' | '-' | '@')) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

fn csv_field(cell: &Cell) -> Cow<'_, str> {
    match cell {
        Cell::Empty => Cow::Borrowed(""),
        Cell::Text(s) => neutralize_formula(s),
        Cell::Int(v) => Cow::Owned(v.to_string()),
        // `Display` for f64 is the shortest text that reads back to the same number.
        Cell::Float(v) if v.is_finite() => Cow::Owned(v.to_string()),
        Cell::Float(_) => Cow::Borrowed(""),
        Cell::Bool(v) => Cow::Borrowed(if *v { "true" } else { "false" }),
    }
}

fn xlsx_text(text: &str) -> Cow<'_, str> {
    let text = neutralize_formula(text);
    if text.chars().count() <= XLSX_MAX_CELL_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(XLSX_MAX_CELL_CHARS - 1).collect();
    cut.push('…');
    Cow::Owned(cut)
}

fn col(c: usize) -> Result<u16, ExportError> {
    u16::try_from(c).map_err(|_| ExportError::Xlsx(rust_xlsxwriter::XlsxError::RowColumnLimitError))
}

fn clean_sheet_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .take(31)
        .collect();
    let cleaned = cleaned.trim_matches('\'').trim().to_owned();
    if cleaned.is_empty() {
        "Sheet1".to_owned()
    } else {
        cleaned
    }
}

fn clean_file_stem(stem: &str) -> String {
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "export".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new("Audit: trail/2026", ["name", "count", "rate", "ok"]);
        t.push_row(vec![
            "plain".into(),
            Cell::Int(-5),
            Cell::Float(0.25),
            Cell::Bool(true),
        ])
        .unwrap();
        t.push_row(vec![
            "has, comma and \"quotes\"\nand a newline".into(),
            Cell::Int(7),
            Cell::Float(f64::NAN),
            Cell::Empty,
        ])
        .unwrap();
        t.push_row(vec![
            "=cmd|' /C calc'!A0".into(),
            Cell::Int(0),
            Cell::Float(-1.5),
            Cell::Bool(false),
        ])
        .unwrap();
        t
    }

    #[test]
    fn csv_follows_rfc_4180_and_neutralises_formulas() {
        let csv = String::from_utf8(sample().to_csv().unwrap()).unwrap();
        assert_eq!(
            csv,
            "name,count,rate,ok\r\n\
             plain,-5,0.25,true\r\n\
             \"has, comma and \"\"quotes\"\"\nand a newline\",7,,\r\n\
             '=cmd|' /C calc'!A0,0,-1.5,false\r\n"
        );
    }

    #[test]
    fn every_dangerous_first_character_is_neutralised_and_nothing_else() {
        for (input, expected) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            (" =1+1", "' =1+1"),
            ("\n\n@SUM(A1)", "'\n\n@SUM(A1)"),
            ("\u{a0}-1", "'\u{a0}-1"),
            ("   +1", "'   +1"),
            ("  a=b", "  a=b"),
            ("a=b", "a=b"),
            ("", ""),
            ("1-2", "1-2"),
        ] {
            assert_eq!(neutralize_formula(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn rows_of_the_wrong_width_are_refused() {
        let mut t = Table::new("x", ["a", "b"]);
        let err = t.push_row(vec![Cell::Int(1)]).unwrap_err();
        assert!(matches!(
            err,
            ExportError::RowWidth {
                row: 1,
                expected: 2,
                got: 1
            }
        ));
    }

    #[test]
    fn xlsx_reads_back_with_numbers_as_numbers_and_text_neutralised() {
        use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
        let bytes = sample().to_xlsx().unwrap();
        assert_eq!(&bytes[..4], b"PK\x03\x04", "an xlsx file is a zip archive");
        let mut book: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(book.sheet_names(), vec!["Audit_ trail_2026".to_owned()]);
        let range = book.worksheet_range("Audit_ trail_2026").unwrap();
        let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
        assert_eq!(rows[0][0], Data::String("name".into()));
        assert_eq!(rows[1][1], Data::Float(-5.0));
        assert_eq!(rows[1][3], Data::Bool(true));
        assert_eq!(rows[2][2], Data::Empty, "NaN becomes an empty cell");
        assert_eq!(rows[3][0], Data::String("'=cmd|' /C calc'!A0".into()));
        assert_eq!(rows[3][2], Data::Float(-1.5));
    }

    #[test]
    fn over_long_text_is_cut_to_the_excel_cell_limit() {
        let long = "x".repeat(XLSX_MAX_CELL_CHARS + 10);
        let cut = xlsx_text(&long);
        assert_eq!(cut.chars().count(), XLSX_MAX_CELL_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn file_and_sheet_names_are_cleaned() {
        assert_eq!(clean_file_stem("audit \"x\"/../2026"), "audit__x__.._2026");
        assert_eq!(clean_file_stem("..."), "export");
        assert_eq!(clean_sheet_name("a[b]c"), "a_b_c");
        assert_eq!(clean_sheet_name(""), "Sheet1");
        assert_eq!(clean_sheet_name(&"s".repeat(40)).len(), 31);
    }
}
