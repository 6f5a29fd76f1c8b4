//! The web dashboard (`GET /`, its script and style sheet) and the
//! read-only image route it shows cropped plates from.
//!
//! The dashboard's files live in `dashboards/web/` and are compiled into
//! the binary, so a site needs nothing but `gatelog` and no CDN. The page
//! is plain HTML, CSS and JavaScript with no build step.
//!
//! `GET /images?ref=…` serves one file under `server.image_dir`. A ref is a
//! path relative to that folder, or an absolute path inside it. Paths with
//! `..`, NUL or backslashes are refused before touching the disk, and the
//! canonical path (symbolic links resolved) must still lie inside the
//! folder, so no ref can reach any other file. Only image types are served
//! (SVG too, under a policy that lets it run nothing).

use std::path::{Component, Path, PathBuf};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::openapi::schema;
use crate::{ApiError, AppState};

const INDEX_HTML: &str = include_str!("../../../../dashboards/web/index.html");
const APP_JS: &str = include_str!("../../../../dashboards/web/app.js");
const STYLE_CSS: &str = include_str!("../../../../dashboards/web/style.css");

/// Everything the page loads comes from this server; images may also come
/// from the http(s) URLs that cameras report.
const CSP: &str = "default-src 'self'; img-src 'self' data: http: https:; \
                   connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";
/// Images are inert: no script, no outside loads, even when opened alone.
const IMAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";
/// The largest image served.
const MAX_IMAGE_BYTES: u64 = 16 * 1024 * 1024;

/// The page. Three facts it cannot learn without a failing request are
/// written into it: whether sync status exists, whether images do, and
/// whether this is a site or the head-office view.
#[utoipa::path(
    get,
    path = "/",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard page.", content_type = "text/html",
        body = String))
)]
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    let html = INDEX_HTML
        .replace(
            "{{SYNC}}",
            if state.broadcaster.has_sync_status() {
                "on"
            } else {
                "off"
            },
        )
        .replace(
            "{{IMAGES}}",
            if state.image_dir.is_some() {
                "on"
            } else {
                "off"
            },
        )
        .replace(
            "{{SCOPE}}",
            if state.is_central() {
                "central"
            } else {
                "site"
            },
        );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(html)
}

/// The dashboard's script.
#[utoipa::path(
    get,
    path = "/app.js",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's script.",
        content_type = "text/javascript", body = String))
)]
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(APP_JS)
}

/// The dashboard's style sheet.
#[utoipa::path(
    get,
    path = "/style.css",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's style sheet.",
        content_type = "text/css", body = String))
)]
pub async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(STYLE_CSS)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImageQuery {
    /// A path relative to `server.image_dir`, or an absolute path inside it.
    #[serde(rename = "ref")]
    #[param(min_length = 1, max_length = 1024)]
    reference: String,
}

/// `GET /images?ref=…`: one cropped image.
#[utoipa::path(
    get,
    path = "/images",
    tag = "dashboard",
    params(ImageQuery),
    responses(
        (status = 200, description = "The image.", content(
            ("image/jpeg"), ("image/png"), ("image/webp"), ("image/gif"), ("image/svg+xml")
        )),
        (status = 400, description = "`ref` is missing or repeated, or another parameter was \
            given (`bad_parameter`).", body = schema::Error),
        (status = 404, description = "No image: no image folder is configured, or the ref \
            names no image file inside it (`not_found`).", body = schema::Error),
    )
)]
pub async fn image(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound("no such image".into());
    // Whatever is wrong with the query, the answer names `ref`, the one
    // parameter there is.
    let query: ImageQuery = crate::query::parse(req.query_string())
        .map_err(|_| ApiError::bad_param("ref", "ref must be given once, and nothing else"))?;
    let Some(dir) = &state.image_dir else {
        return Err(not_found());
    };
    let path = resolve(dir, &query.reference).ok_or_else(not_found)?;
    let content_type = image_type(&path).ok_or_else(not_found)?;
    let meta = tokio::fs::metadata(&path).await.map_err(|_| not_found())?;
    if !meta.is_file() || meta.len() > MAX_IMAGE_BYTES {
        return Err(not_found());
    }
    let bytes = tokio::fs::read(&path).await.map_err(|_| not_found())?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // An SVG opened on its own is a document that could run script;
        // an image needs none of that.
        .insert_header((header::CONTENT_SECURITY_POLICY, IMAGE_CSP))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(bytes))
}

/// The file a ref names, if it lies inside `dir`. `None` for anything that
/// could escape it.
pub fn resolve(dir: &Path, reference: &str) -> Option<PathBuf> {
    if reference.is_empty()
        || reference.len() > 1024
        || reference.contains(['\0', '\\'])
        || reference.chars().any(char::is_control)
    {
        return None;
    }
    let root = dir.canonicalize().ok()?;
    let given = Path::new(reference);
    // Only plain names may follow the root; `..` and `.` are refused
    // outright rather than normalised.
    let mut parts = given.components().peekable();
    if given.is_absolute() {
        parts.next();
    }
    if parts.any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let candidate = if given.is_absolute() {
        given.to_path_buf()
    } else {
        root.join(given)
    };
    let real = candidate.canonicalize().ok()?;
    real.starts_with(&root).then_some(real)
}

fn image_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_cannot_leave_the_image_folder() {
        let base = std::env::temp_dir().join(format!("gatelog-img-{}", uuid::Uuid::new_v4()));
        let dir = base.join("crops");
        std::fs::create_dir_all(dir.join("cam1")).unwrap();
        std::fs::write(dir.join("cam1/a.jpg"), b"jpg").unwrap();
        std::fs::write(base.join("secret.jpg"), b"no").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("secret.jpg"), dir.join("link.jpg")).unwrap();

        let inside = dir.canonicalize().unwrap().join("cam1/a.jpg");
        assert_eq!(resolve(&dir, "cam1/a.jpg"), Some(inside.clone()));
        assert_eq!(resolve(&dir, inside.to_str().unwrap()), Some(inside));
        for bad in [
            "../secret.jpg",
            "cam1/../../secret.jpg",
            "./cam1/a.jpg",
            base.join("secret.jpg").to_str().unwrap(),
            "link.jpg",
            "cam1\\a.jpg",
            "cam1/a.jpg\0",
            "",
            "/etc/passwd",
            "missing.jpg",
        ] {
            assert_eq!(resolve(&dir, bad), None, "{bad:?}");
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
