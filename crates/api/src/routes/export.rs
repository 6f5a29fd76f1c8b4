//! `GET /api/v1/logs/export?format=csv|jsonl|codeco&…filters`: every
//! matching passage, streamed.
//!
//! The filters are those of `GET /api/v1/logs`, parsed by the same strict
//! parser; `limit` and `cursor` are refused, because an export covers
//! every match. The body is produced page by page as the client reads it,
//! so memory stays flat for any size. An error after the first byte can
//! only cut the stream short; it is logged, and a CSV or JSONL reader sees
//! a truncated last line (a CODECO reader, a missing `UNZ`).
//!
//! `format=codeco` writes one CODECO interchange for one partner
//! (`partner`, required when more than one is configured; see
//! [`gatelog_core::codeco::CodecoConfig::plan`]); `owner` may then be a
//! comma-separated list that narrows the partner's owners. Only passages
//! with a direction are movements.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use gatelog_core::codeco::{CodecoConfig, Writer};
use gatelog_local_store::export::{Encoding, ExportFormat, Exporter};

use crate::openapi::schema;
use crate::query;
use crate::routes::logs::{ExportRequest, LogsQuery};
use crate::{ApiError, AppState};

/// `GET /api/v1/logs/export`.
#[utoipa::path(
    get,
    path = "/api/v1/logs/export",
    tag = "passages",
    params(LogsQuery),
    responses(
        (status = 200, description = "Every matching passage, streamed. An error after the \
            first byte cuts the stream short.", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (String = "application/edifact")
        )),
        (status = 400, description = "`format` is missing, `limit` or `cursor` was given, or \
            a parameter is unknown, repeated or malformed (`bad_parameter`, naming it); for \
            `format=codeco`, the partner is unknown or must be named, or no UN/LOCODE is \
            configured.",
            body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let request = parse(req.query_string())?;
    let format = request.format;
    let (filter, encoding) = encoding(request, &state.codeco, chrono::Utc::now())?;
    let exporter = Exporter::new(state.reader.clone(), filter, encoding);
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

/// `format`, the listing's filters and, for CODECO, `partner` and the
/// owner list, strictly.
pub fn parse(query: &str) -> Result<ExportRequest, ApiError> {
    query::parse::<LogsQuery>(query)?.export_filter()
}

/// How the request's passages are written: for CODECO, the interchange
/// planned for its partner and prepared at `now`. A CODECO request the
/// configuration cannot serve (no `site.locode`, an unknown or missing
/// partner, an owner not the partner's) is a 400 naming the parameter.
pub fn encoding(
    request: ExportRequest,
    codeco: &CodecoConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(gatelog_local_store::LogFilter, Encoding), ApiError> {
    let encoding = match request.format {
        ExportFormat::Csv => Encoding::Csv,
        ExportFormat::Jsonl => Encoding::Jsonl,
        ExportFormat::Codeco => {
            let plan = codeco
                .plan(request.partner.as_deref(), &request.owners)
                .map_err(|e| ApiError::bad_param(e.param(), e.to_string()))?;
            Encoding::Codeco(Box::new(Writer::new(plan, now)))
        }
    };
    Ok((request.filter, encoding))
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
        let r = parse("format=jsonl&owner=mscu&order=asc").unwrap();
        assert_eq!(r.format, ExportFormat::Jsonl);
        assert_eq!(r.filter.owner.as_deref(), Some("MSCU"));
        assert_eq!(param("format=csv&partner=MSC"), "partner");
        assert_eq!(param("format=csv&owner=MSCU,MEDU"), "owner");
        assert_eq!(param("format=codeco&order=asc"), "order");
        assert_eq!(param("format=codeco&owner=MSCU,M5CU"), "owner");
    }

    #[test]
    fn codeco_takes_a_partner_and_an_owner_list() {
        use gatelog_core::codeco::{Locode, OwnerSelector, PartnerConfig, Partners};
        let r = parse("format=codeco&partner=MSC&owner=MSCU,med&direction=in").unwrap();
        assert_eq!(r.partner.as_deref(), Some("MSC"));
        assert_eq!(
            r.owners,
            vec![
                OwnerSelector::Code("MSCU".into()),
                OwnerSelector::Prefix("MED".into())
            ]
        );
        assert_eq!(r.filter.direction, Some(gatelog_core::Direction::In));
        assert_eq!(r.filter.owner, None);
        let partner = |name: &str| PartnerConfig {
            name: name.into(),
            owners: vec!["MSCU".into()],
            sender_id: None,
            recipient_id: None,
            association: "SMDG20".into(),
            bgm_in: 34,
            bgm_out: 36,
        };
        let config = CodecoConfig {
            partners: Partners::new(&[partner("MSC"), partner("ONE")], "site-1").unwrap(),
            locode: Some(Locode::parse("KRPUS").unwrap()),
        };
        let refused = |q: &str, config: &CodecoConfig| match encoding(
            parse(q).unwrap(),
            config,
            chrono::Utc::now(),
        )
        .unwrap_err()
        {
            ApiError::BadParameter { param, .. } => param,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused("format=codeco", &config), "partner");
        assert_eq!(refused("format=codeco&partner=XYZ", &config), "partner");
        assert_eq!(
            refused("format=codeco&partner=MSC&owner=MEDU", &config),
            "owner"
        );
        assert_eq!(
            refused("format=codeco&partner=MSC", &CodecoConfig::default()),
            "format"
        );
        let (filter, enc) = encoding(
            parse("format=codeco&partner=ONE").unwrap(),
            &config,
            chrono::Utc::now(),
        )
        .unwrap();
        assert!(matches!(enc, Encoding::Codeco(_)));
        assert_eq!(filter.cursor, None);
    }
}
