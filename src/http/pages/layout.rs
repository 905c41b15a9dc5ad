//! The frame every page shares: `<html lang>`, the header with search, language and currency
//! switchers and the cart, the footer; and the page for a request that failed.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use maud::{html, Markup, DOCTYPE};

use super::{
    assets,
    context::{PageContext, PageRefusal},
    i18n::Lang,
};
use crate::error::Error;

/// A whole page around `body`.
pub fn page(context: &PageContext, title: &str, body: Markup) -> Markup {
    page_with_script(context, title, body, None)
}

/// A whole page around `body` that also loads one script of its own (`seller.js`,
/// `flash.js`), besides `live.js`.
pub fn page_with_script(
    context: &PageContext,
    title: &str,
    body: Markup,
    script: Option<&str>,
) -> Markup {
    let lang = context.lang;
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Agora" }
                link rel="stylesheet" href=(assets::url("app.css"));
                script type="module" src=(assets::url("live.js")) {}
                @if let Some(script) = script {
                    script type="module" src=(assets::url(script)) {}
                }
            }
            body data-lang=(lang.tag()) data-currency=(context.currency.code()) {
                a.skip href="#main" { (lang.tr("Skip to content", "Zum Inhalt", "Aller au contenu", "本文へ移動")) }
                (header(context))
                main #main { (body) }
                footer {
                    p { "Agora · " (lang.tr("an open realtime marketplace", "ein offener Echtzeit-Marktplatz", "une place de marché ouverte en temps réel", "オープンなリアルタイム・マーケットプレイス")) }
                    p {
                        a href="/seller" { (lang.tr("Sell on Agora", "Auf Agora verkaufen", "Vendre sur Agora", "Agoraで出品")) }
                        " · "
                        a href="/operator" { (lang.tr("Operator", "Betreiber", "Opérateur", "運営者")) }
                    }
                }
                div #live-status .live-status role="status" aria-live="polite" {}
            }
        }
    }
}

fn header(context: &PageContext) -> Markup {
    let lang = context.lang;
    html! {
        header.site {
            a.brand href="/" { "Agora" }
            form.search role="search" action="/" method="get" {
                label for="search-q" .visually-hidden { (lang.tr("Search products", "Produkte suchen", "Rechercher des produits", "商品を検索")) }
                input #search-q type="search" name="q" placeholder=(lang.tr("Search…", "Suchen…", "Rechercher…", "検索…"));
                button type="submit" { (lang.tr("Search", "Suchen", "Rechercher", "検索")) }
            }
            nav aria-label=(lang.tr("Language", "Sprache", "Langue", "言語")) .switch {
                @for other in Lang::ALL {
                    @if other == lang {
                        span aria-current="true" lang=(other.tag()) { (other.native_name()) }
                    } @else {
                        a href=(with_param(&context.here, "lang", other.tag())) lang=(other.tag()) hreflang=(other.tag()) { (other.native_name()) }
                    }
                }
            }
            form.switch action=(path_only(&context.here)) method="get" {
                label for="currency" { (lang.tr("Currency", "Währung", "Devise", "通貨")) }
                select #currency name="currency" data-autosubmit {
                    @for currency in &context.currencies {
                        option value=(currency.code()) selected[*currency == context.currency] { (currency.code()) }
                    }
                }
                button type="submit" .js-hidden { (lang.tr("Change", "Ändern", "Changer", "変更")) }
            }
            nav.account aria-label=(lang.tr("Account", "Konto", "Compte", "アカウント")) {
                a href="/cart" { (lang.tr("Cart", "Warenkorb", "Panier", "カート")) }
                " "
                @match &context.shopper {
                    Some(signed_in) if !signed_in.shopper.guest => {
                        a href="/account" { (signed_in.shopper.email.as_deref().unwrap_or_default()) }
                    }
                    _ => {
                        a href="/account" { (lang.tr("Sign in", "Anmelden", "Se connecter", "ログイン")) }
                    }
                }
            }
        }
    }
}

/// `path` with `name=value` set in its query (replacing an earlier value).
pub fn with_param(path: &str, name: &str, value: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    pairs.push(format!("{name}={}", encode(value)));
    format!("{base}?{}", pairs.join("&"))
}

fn path_only(path: &str) -> &str {
    path.split('?').next().unwrap_or("/")
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte))
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// A request a page could not serve: the domain's refusal or a form from elsewhere.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Domain(#[from] Error),
    #[error(transparent)]
    Refused(#[from] PageRefusal),
}

impl From<deadpool_postgres::PoolError> for PageError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Domain(error.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Domain(error) => error.status_code(),
            Self::Refused(PageRefusal::Csrf) => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            Self::Domain(error) if status.is_server_error() => {
                // Logged (with its cause) by the error's own mapping; not shown.
                let _ = error.error_response();
                "Something went wrong on our side. Please try again in a moment.".to_owned()
            }
            other => other.to_string(),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { (title) " · Agora" }
                    link rel="stylesheet" href=(assets::url("app.css"));
                }
                body {
                    main #main {
                        h1 { (title) }
                        p role="alert" { (message) }
                        p { a href="/" { "Back to the store" } }
                    }
                }
            }
        };
        super::secure(&mut HttpResponse::build(status))
            .content_type("text/html; charset=utf-8")
            .body(body.into_string())
    }
}
