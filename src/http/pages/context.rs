//! What every page knows about its visitor: language, currency, who is signed in, the CSRF
//! token of its forms, and the cookies to set on the way out.
//!
//! Browser sessions are cookies, never tokens in page storage: `HttpOnly`, `SameSite=Lax`,
//! `Path=/`, and `Secure` when `http.public_url` is https. A shopper's cookie holds the same
//! kind of session token the JSON API takes as a bearer token, so one session serves both (and
//! the WebSocket). State-changing forms carry the `agora_csrf` cookie's value in a hidden
//! field, and a post whose field does not match the cookie is refused: another site can make
//! a browser post, but cannot read or set this site's cookie.

use actix_web::{
    cookie::{time::Duration as CookieAge, Cookie, SameSite},
    http::{header, StatusCode},
    HttpRequest, HttpResponse,
};
use maud::Markup;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::i18n::{query_value, Lang, LANG_COOKIE};
use crate::{error::Error, money::Currency, shoppers::Shopper, state::AppState};

pub use crate::http::auth::SHOPPER_COOKIE;
pub const CSRF_COOKIE: &str = "agora_csrf";
pub const CURRENCY_COOKIE: &str = "agora_currency";
/// The cart the browser shops with (a shopper may have several, one per region).
pub const CART_COOKIE: &str = "agora_cart";
/// How long a remembered choice (language, currency) lasts.
const CHOICE_DAYS: i64 = 365;

/// A shopper signed in through the session cookie.
pub struct SignedIn {
    pub shopper: Shopper,
    pub token: String,
}

pub struct PageContext {
    pub lang: Lang,
    pub currency: Currency,
    /// The currencies the store sells in, for the switcher.
    pub currencies: Vec<Currency>,
    pub shopper: Option<SignedIn>,
    /// The value every form of this page carries as `csrf`.
    pub csrf: String,
    /// The page's own path and query, to come back to.
    pub here: String,
    cookies: Vec<Cookie<'static>>,
    secure: bool,
    session_age: CookieAge,
}

impl PageContext {
    /// Reads the visitor from the request: choices made in its query are remembered.
    pub async fn load(request: &HttpRequest, state: &AppState) -> Self {
        let secure = state.settings.http.served_over_https();
        let session_hours = i64::try_from(state.settings.auth.session_ttl_hours).unwrap_or(24);
        let mut context = Self {
            lang: Lang::of_request(request),
            currency: state.pricing.fx.base(),
            currencies: state.pricing.fx.currencies().collect(),
            shopper: None,
            csrf: String::new(),
            here: match request.query_string() {
                "" => request.path().to_owned(),
                query => format!("{}?{query}", request.path()),
            },
            cookies: Vec::new(),
            secure,
            session_age: CookieAge::hours(session_hours),
        };
        context.choose_currency(request, state);
        if query_value(request, "lang").is_some() {
            let tag = context.lang.tag();
            context.remember(LANG_COOKIE, tag, CookieAge::days(CHOICE_DAYS));
        }
        context.csrf = match request.cookie(CSRF_COOKIE) {
            Some(cookie) if cookie.value().len() == 64 => cookie.value().to_owned(),
            _ => {
                let token = hex::encode(rand::random::<[u8; 32]>());
                let age = context.session_age;
                context.remember(CSRF_COOKIE, &token, age);
                token
            }
        };
        if let Some(token) = request.cookie(SHOPPER_COOKIE).map(|c| c.value().to_owned()) {
            match state.accounts.authenticate(&token).await {
                Ok(shopper) => context.shopper = Some(SignedIn { shopper, token }),
                // An expired or revoked session: the browser forgets it.
                Err(Error::Unauthorized(_)) => context.forget(SHOPPER_COOKIE),
                Err(error) => tracing::warn!(%error, "reading a page's session failed"),
            }
        }
        context
    }

    fn choose_currency(&mut self, request: &HttpRequest, state: &AppState) {
        let supported =
            |code: &str| Currency::from_code(code.trim()).filter(|c| state.pricing.fx.supports(*c));
        if let Some(asked) = query_value(request, "currency")
            .as_deref()
            .and_then(supported)
        {
            self.currency = asked;
            self.remember(CURRENCY_COOKIE, asked.code(), CookieAge::days(CHOICE_DAYS));
        } else if let Some(kept) = request
            .cookie(CURRENCY_COOKIE)
            .and_then(|c| supported(c.value()))
        {
            self.currency = kept;
        }
    }

    /// Sets a cookie on the response: HttpOnly, SameSite=Lax, for the whole site.
    pub fn remember(&mut self, name: &'static str, value: &str, age: CookieAge) {
        let cookie = Cookie::build(name, value.to_owned())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(age)
            .finish();
        self.cookies.push(cookie);
    }

    /// Keeps a session for as long as the store's sessions last.
    pub fn remember_session(&mut self, name: &'static str, value: &str) {
        let age = self.session_age;
        self.remember(name, value, age);
    }

    /// Removes a cookie from the browser.
    pub fn forget(&mut self, name: &'static str) {
        self.remember(name, "", CookieAge::ZERO);
    }

    /// Whether a form's `csrf` field is this browser's token (compared by digest, so the
    /// comparison's timing says nothing about the token).
    pub fn check_csrf(&self, request: &HttpRequest, submitted: &str) -> Result<(), PageRefusal> {
        let cookie = request.cookie(CSRF_COOKIE);
        let matches = cookie.is_some_and(|cookie| {
            !submitted.is_empty()
                && Sha256::digest(cookie.value().as_bytes()) == Sha256::digest(submitted.as_bytes())
        });
        if matches {
            Ok(())
        } else {
            metrics::counter!("agora_page_csrf_refusals_total").increment(1);
            Err(PageRefusal::Csrf)
        }
    }

    /// The signed-in shopper, or a new guest with a session cookie (browsing needs no
    /// account; a cart does).
    pub async fn ensure_shopper(&mut self, state: &AppState) -> Result<&SignedIn, Error> {
        if self.shopper.is_none() {
            let locale = self.lang.preference().tags().first().cloned();
            let (shopper, session) = state.accounts.sign_up_guest(locale.as_ref()).await?;
            self.remember_session(SHOPPER_COOKIE, &session.token);
            self.shopper = Some(SignedIn {
                shopper,
                token: session.token,
            });
        }
        self.shopper
            .as_ref()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("no shopper after signing one up")))
    }

    /// The page, with the cookies this request set.
    pub fn render(self, status: StatusCode, page: Markup) -> HttpResponse {
        let mut response = HttpResponse::build(status);
        super::secure(&mut response).content_type("text/html; charset=utf-8");
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        for cookie in self.cookies {
            response.cookie(cookie);
        }
        response.body(page.into_string())
    }

    /// `303 See Other` to `to` (a local path), with the cookies this request set.
    pub fn redirect(self, to: &str) -> HttpResponse {
        let mut response = HttpResponse::SeeOther();
        let local = if to.starts_with('/') && !to.starts_with("//") {
            to
        } else {
            "/"
        };
        response.insert_header((header::LOCATION, local.to_owned()));
        for cookie in self.cookies {
            response.cookie(cookie);
        }
        response.finish()
    }
}

/// The cart a browser shops with, from its cookie.
pub fn cart_of(request: &HttpRequest) -> Option<Uuid> {
    request
        .cookie(CART_COOKIE)
        .and_then(|cookie| cookie.value().parse().ok())
}

/// Why a page refused a request outright.
#[derive(Debug, thiserror::Error)]
pub enum PageRefusal {
    /// A state-changing form without this browser's CSRF token.
    #[error("this form has expired or did not come from this site; reload the page and try again")]
    Csrf,
}
