//! The pages' static files (one stylesheet, one script), embedded in the binary, named by a
//! digest of their content and served with a year-long, immutable cache: a new build with a
//! changed file gets a new name, so browsers never keep a stale copy.

use std::sync::LazyLock;

use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};

struct Asset {
    /// `app.css`, as the code names it.
    name: &'static str,
    /// `app.3f1c…9a.css`, as browsers fetch it.
    fingerprinted: String,
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: &'static [u8]) -> Self {
        let digest = hex::encode(&Sha256::digest(body)[..6]);
        let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
        Self {
            name,
            fingerprinted: format!("{stem}.{digest}.{extension}"),
            content_type,
            body,
        }
    }
}

static ASSETS: LazyLock<[Asset; 4]> = LazyLock::new(|| {
    [
        Asset::new(
            "app.css",
            "text/css; charset=utf-8",
            include_bytes!("static/app.css"),
        ),
        Asset::new(
            "live.js",
            "text/javascript; charset=utf-8",
            include_bytes!("static/live.js"),
        ),
        Asset::new(
            "seller.js",
            "text/javascript; charset=utf-8",
            include_bytes!("static/seller.js"),
        ),
        Asset::new(
            "flash.js",
            "text/javascript; charset=utf-8",
            include_bytes!("static/flash.js"),
        ),
    ]
});

/// Where browsers fetch the asset `name` (`app.css`, `live.js`).
pub fn url(name: &str) -> String {
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map_or_else(String::new, |asset| {
            format!("/static/{}", asset.fingerprinted)
        })
}

/// `GET /static/{file}`: an asset by its fingerprinted name, cached for a year.
pub async fn serve(file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|asset| asset.fingerprinted == *file) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header(("Cache-Control", "public, max-age=31536000, immutable"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(asset.body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_named_by_their_content_and_stay_small() {
        let css = url("app.css");
        assert!(
            css.starts_with("/static/app.") && css.ends_with(".css"),
            "{css}"
        );
        let total: usize = ASSETS.iter().map(|asset| asset.body.len()).sum();
        assert!(
            total < 100 * 1024,
            "a page's CSS and JavaScript: {total} bytes"
        );
    }
}
