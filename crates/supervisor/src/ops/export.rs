//! `gatelog export --format csv|jsonl|codeco [filters] [--out FILE]`.
//!
//! The filters are the API's, checked by the API's own parser, so a filter
//! means the same on the command line and over HTTP. Rows stream page by
//! page to FILE or stdout; progress goes to stderr. `--format codeco`
//! writes one CODECO interchange for one partner (`--partner`, required
//! when more than one is configured), exactly as
//! `GET /api/v1/logs/export?format=codeco` does.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use gatelog_local_store::export::{ExportFormat, Exporter};
use gatelog_metrics::Metrics;

use super::progress::Progress;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// csv (with a header row), jsonl (one passage object a line) or
    /// codeco (one EDIFACT CODECO interchange for a partner).
    #[arg(long)]
    pub format: String,
    /// codeco: the partner's name (`[[partners]]`); required when more
    /// than one partner is configured.
    #[arg(long)]
    pub partner: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Owner code: 3 letters (any category) or 4. For codeco, a
    /// comma-separated list (MSCU,MEDU) that narrows the partner's owners.
    #[arg(long)]
    pub owner: Option<String>,
    /// Six-digit serial.
    #[arg(long)]
    pub number: Option<String>,
    /// Full number or a prefix of it.
    #[arg(long)]
    pub container: Option<String>,
    /// A substring of the full number.
    #[arg(long)]
    pub q: Option<String>,
    /// From this time (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this time (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub camera: Option<String>,
    #[arg(long)]
    pub site: Option<String>,
    /// ok or bad.
    #[arg(long)]
    pub check: Option<String>,
    /// pending or synced.
    #[arg(long)]
    pub sync: Option<String>,
    /// in or out: movements of one direction.
    #[arg(long)]
    pub direction: Option<String>,
    /// One truck's boxes, by its licence plate.
    #[arg(long)]
    pub truck_plate: Option<String>,
    /// desc (default) or asc, by capture time.
    #[arg(long)]
    pub order: Option<String>,
}

impl ExportArgs {
    /// The arguments as the API's query string.
    fn query(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("format", Some(&self.format)),
            ("owner", self.owner.as_ref()),
            ("number", self.number.as_ref()),
            ("container", self.container.as_ref()),
            ("q", self.q.as_ref()),
            ("from", self.from.as_ref()),
            ("to", self.to.as_ref()),
            ("camera", self.camera.as_ref()),
            ("site", self.site.as_ref()),
            ("check", self.check.as_ref()),
            ("sync", self.sync.as_ref()),
            ("direction", self.direction.as_ref()),
            ("truck_plate", self.truck_plate.as_ref()),
            ("partner", self.partner.as_ref()),
            ("order", self.order.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v.as_str())))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// `gatelog export`.
pub async fn run(config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    let refusal = |e: gatelog_api::ApiError| {
        let flag = match &e {
            gatelog_api::ApiError::BadParameter { param, .. } => {
                format!(" (--{})", param.replace('_', "-"))
            }
            _ => String::new(),
        };
        anyhow::anyhow!("{e}{flag}")
    };
    let request = gatelog_api::routes::export::parse(&args.query()).map_err(refusal)?;
    let format = request.format;
    let codeco = config.codeco().map_err(anyhow::Error::msg)?;
    let (filter, encoding) =
        gatelog_api::routes::export::encoding(request, &codeco, chrono::Utc::now())
            .map_err(refusal)?;
    super::require_store(config)?;
    let opened = super::open_store(config, Metrics::new()).await?;
    let store = opened.store;
    // A CODECO export keeps only its partner's movements, which the count
    // of matching passages would overstate: it shows its progress without
    // a total.
    let total = match format {
        ExportFormat::Codeco => None,
        _ => Some(store.count_matching(&filter).await? as u64),
    };
    let unit = match format {
        ExportFormat::Codeco => "movements",
        _ => "passages",
    };

    let (mut out, target): (Box<dyn Write>, String) = match &args.out {
        Some(path) => (
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            )),
            path.display().to_string(),
        ),
        None => (
            Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            "stdout".into(),
        ),
    };
    let progress = Progress::new("export", total, unit);
    progress.set_message(format!("to {target}"));
    let mut exporter = Exporter::new(store.clone(), filter, encoding);
    let mut rows = 0u64;
    let result: anyhow::Result<()> = async {
        while let Some(chunk) = exporter.next_chunk().await? {
            match out.write_all(&chunk.bytes) {
                Ok(()) => {}
                // A reader such as `head` that has seen enough is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("cannot write to {target}")),
            }
            rows += chunk.rows as u64;
            progress.set_position(rows);
        }
        match out.flush() {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(e).with_context(|| format!("cannot write to {target}"))
            }
            _ => Ok(()),
        }
    }
    .await;
    drop(out);
    store.close().await;
    match result {
        Ok(()) => {
            progress.finish(&format!("{rows} {unit} written to {target}"));
            Ok(())
        }
        Err(e) => {
            progress.abandon();
            Err(e)
        }
    }
}
