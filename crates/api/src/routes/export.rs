//! `GET /api/v1/logs/export?format=csv|jsonl&…filters`: every matching
//! passage, streamed.
//!
//! The filters are those of `GET /api/v1/logs`, parsed by the same strict
//! parser; `limit` and `cursor` are refused, because an export covers
//! every match. The body is produced page by page as the client reads it,
//! so memory stays flat for any size. An error after the first byte can
//! only cut the stream short; it is logged, and a CSV or JSONL reader sees
//! a truncated last line.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use gatelog_local_store::export::{ExportFormat, Exporter};

use crate::query;
use crate::routes::logs::LogsQuery;
use crate::{ApiError, AppState};

pub async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (format, filter) = parse(req.query_string())?;
    let exporter = Exporter::new(state.reader.clone(), filter, format);
    let body = stream::unfold(Some(exporter), |exporter| async move {
        let mut exporter = exporter?;
        match exporter.next_chunk().await {
            Ok(Some(chunk)) => Some((
                Ok::<_, actix_web::Error>(web::Bytes::from(chunk.bytes)),
                Some(exporter),
            )),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "export stopped early");
                Some((Err(ApiError::from(e).into()), None))
            }
        }
    });
    let name = format!(
        "gatelog-{}.{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(body))
}

/// `format` and the listing's filters, strictly.
pub fn parse(query: &str) -> Result<(ExportFormat, gatelog_local_store::LogFilter), ApiError> {
    query::parse::<LogsQuery>(query)?.export_filter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_required_and_filters_are_strict() {
        let param = |q: &str| match parse(q).unwrap_err() {
            ApiError::BadParameter { param, .. } => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(param(""), "format");
        assert_eq!(param("format=xml"), "format");
        assert_eq!(param("format=csv&format=csv"), "format");
        assert_eq!(param("format=csv&limit=10"), "limit");
        assert_eq!(param("format=csv&owner=1234"), "owner");
        let (f, filter) = parse("format=jsonl&owner=mscu&order=asc").unwrap();
        assert_eq!(f, ExportFormat::Jsonl);
        assert_eq!(filter.owner.as_deref(), Some("MSCU"));
    }
}
