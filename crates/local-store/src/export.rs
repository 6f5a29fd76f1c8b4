//! Export of passages as CSV or JSON Lines, page by page.
//!
//! An [`Exporter`] walks the matching passages in keyset pages of 1,000,
//! each page its own short query. Memory stays flat however many rows
//! match, and no read transaction stays open for the length of an export,
//! which would stop WAL checkpoints on a busy store. The API streams the
//! chunks as an HTTP body; the CLI writes them to a file or stdout.
//!
//! CSV has a header row and quotes fields as RFC 4180 says. A text field
//! that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
//! `@`, tab or carriage return) is prefixed with `'`, because camera ids
//! and image references come from clients. JSON Lines has one passage
//! object a line, the same object the API returns.
//!
//! CODECO is one EDIFACT interchange, written by
//! [`gatelog_core::codeco::Writer`]: this module only feeds it the
//! matching passages in gate-time order and adds the header before the
//! first page and the trailer after the last. The writer decides which
//! passages are movements for the partner.

use gatelog_core::codeco;
use gatelog_core::Passage;
use serde_json::Value;

use crate::query::push_filters;
use crate::{Cursor, LogFilter, PassageReader, Store, StoreError};

/// Passages per page.
const PAGE: u32 = 1000;

/// The columns of a CSV export, in order; each is a field of the passage
/// object.
pub const CSV_COLUMNS: [&str; 24] = [
    "id",
    "site_id",
    "container",
    "container_owner",
    "container_number",
    "check_digit",
    "check_digit_ok",
    "flags",
    "captured_at",
    "last_seen_at",
    "seen_count",
    "camera_id",
    "source_video",
    "cropped_image_ref",
    "confidence",
    "created_at",
    "updated_at",
    "version",
    "sync_state",
    "direction",
    "lane",
    "truck_plate",
    "iso_type",
    "dwell_secs",
];

/// The formats an export is asked for by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
    /// UN/EDIFACT CODECO gate reports, for one partner.
    Codeco,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            "codeco" => Some(Self::Codeco),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
            // RFC 1767's type; UNOC is ISO 8859-1.
            Self::Codeco => "application/edifact; charset=iso-8859-1",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
            Self::Codeco => "edi",
        }
    }
}

/// How an export writes its passages.
#[derive(Debug)]
pub enum Encoding {
    Csv,
    Jsonl,
    /// One CODECO interchange, written by its writer.
    Codeco(Box<codeco::Writer>),
}

/// One piece of an export.
#[derive(Debug, Default)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    /// Passages in `bytes`.
    pub rows: usize,
}

/// Walks the passages matching a filter, page by page.
pub struct Exporter {
    reader: Box<dyn PassageReader>,
    filter: LogFilter,
    encoding: Encoding,
    started: bool,
    done: bool,
}

impl Exporter {
    /// `filter.limit` and `filter.cursor` are ignored: an export covers
    /// every match, in `filter.order`. A CODECO export always runs in
    /// gate-time order, oldest first, and asks the reader only for its
    /// partner's owner when there is just one.
    ///
    /// `reader` is a site's [`Store`] or the head office's reader.
    pub fn new(reader: impl PassageReader, mut filter: LogFilter, encoding: Encoding) -> Self {
        filter.limit = PAGE;
        filter.cursor = None;
        if let Encoding::Codeco(w) = &encoding {
            filter.order = crate::Order::Asc;
            if let [only] = w.owners() {
                filter.owner = Some(only.as_str().to_string());
            }
        }
        Self {
            reader: Box::new(reader),
            filter,
            encoding,
            started: false,
            done: false,
        }
    }

    /// The next chunk, or `None` when the export is complete. The first
    /// chunk of a CSV export starts with the header row; a CODECO export
    /// starts with its interchange header and ends with its trailer.
    pub async fn next_chunk(&mut self) -> Result<Option<Chunk>, StoreError> {
        let mut chunk = Chunk::default();
        if !self.started {
            self.started = true;
            match &self.encoding {
                Encoding::Csv => {
                    chunk
                        .bytes
                        .extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
                    chunk.bytes.extend_from_slice(b"\r\n");
                }
                Encoding::Codeco(w) => w.start(&mut chunk.bytes),
                Encoding::Jsonl => {}
            }
        }
        // A page may hold no movement for a CODECO partner; the walk goes
        // on until it has something to send or has ended.
        while !self.done && chunk.rows == 0 {
            let page = self.reader.search(&self.filter).await?;
            for p in &page.logs {
                let written = match &mut self.encoding {
                    Encoding::Csv => {
                        write_passage(ExportFormat::Csv, p, &mut chunk.bytes).map(|_| true)?
                    }
                    Encoding::Jsonl => {
                        write_passage(ExportFormat::Jsonl, p, &mut chunk.bytes).map(|_| true)?
                    }
                    Encoding::Codeco(w) => w.movement(p, &mut chunk.bytes),
                };
                chunk.rows += usize::from(written);
            }
            match page.next_cursor {
                Some(c) => self.filter.cursor = Some(c),
                None => {
                    self.done = true;
                    if let Encoding::Codeco(w) = &self.encoding {
                        w.finish(&mut chunk.bytes);
                    }
                }
            }
        }
        if chunk.bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(chunk))
    }
}

/// Appends one passage in `format`, with its line ending.
pub fn write_passage(
    format: ExportFormat,
    p: &Passage,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let value = serde_json::to_value(p).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match format {
        // A CODECO message needs its interchange; see `Encoding::Codeco`.
        ExportFormat::Codeco => {
            return Err(StoreError::Corrupt(
                "a CODECO message is written by its interchange's writer".into(),
            ))
        }
        ExportFormat::Jsonl => {
            serde_json::to_writer(&mut *out, &value)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push(b'\n');
        }
        ExportFormat::Csv => {
            for (i, col) in CSV_COLUMNS.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                csv_field(value.get(*col).unwrap_or(&Value::Null), out);
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    Ok(())
}

fn csv_field(v: &Value, out: &mut Vec<u8>) {
    let text = match v {
        Value::Null => return,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{s}")
            } else {
                s.clone()
            }
        }
        // Flags: names joined with '|'.
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("|"),
        Value::Object(_) => v.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

impl Store {
    /// How many passages match `filter` (its limit and cursor ignored).
    pub async fn count_matching(&self, filter: &LogFilter) -> Result<i64, StoreError> {
        let mut f = filter.clone();
        f.cursor = None::<Cursor>;
        let substring = self.substring_plan(&f).await?;
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT count(*) FROM passages");
        push_filters(&mut q, &f, substring);
        Ok(q.build_query_scalar().fetch_one(self.pool()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Value) -> String {
        let mut out = Vec::new();
        csv_field(&v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field(Value::Null), "");
        assert_eq!(field(Value::from("cam-1")), "cam-1");
        assert_eq!(field(Value::from("a,b")), "\"a,b\"");
        assert_eq!(field(Value::from("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(field(Value::from("=HYPERLINK(1)")), "'=HYPERLINK(1)");
        assert_eq!(field(Value::from("-1+2")), "'-1+2");
        assert_eq!(field(Value::from(0.5)), "0.5");
        assert_eq!(
            field(serde_json::json!([
                "check_digit_missing",
                "category_unknown"
            ])),
            "check_digit_missing|category_unknown"
        );
    }
}
