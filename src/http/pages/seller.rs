//! The seller console (`/seller`): sign in with the API key once (it becomes an HttpOnly
//! session cookie), the live order feed with each order's detail, fulfilment and refund, and
//! (in the child modules) products, stock and flash sales.
//!
//! Every page here is a signed-in seller's: without a cookie whose key still signs in (a
//! replaced key, a suspended seller), the browser goes to the sign-in form and comes back
//! after it. A seller only ever sees its own orders, products, SKUs and sales: the pages ask
//! the domain functions that scope by seller, which answer "not found" for anything else.
//! `seller.js` keeps the feed live over `/ws/seller` (same origin, the same cookie).

mod after_sale;
mod orders;
mod product_form;
mod product_view;
mod products;
mod sales;
mod stock;
mod words;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    context::PageContext,
    i18n::{query_value, Lang},
    layout::{self, encode, with_param, PageError},
};
use crate::{
    error::Error,
    http::auth::SELLER_COOKIE,
    sellers::{self, Seller},
    state::AppState,
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/seller").route(web::get().to(home)))
        .service(web::resource("/seller/sign-in").route(web::post().to(sign_in)))
        .service(web::resource("/seller/sign-out").route(web::post().to(sign_out)))
        .configure(orders::configure)
        .configure(products::configure)
        .configure(stock::configure)
        .configure(sales::configure);
}

/// A signed-in seller's page: the visitor and the seller.
pub(super) struct Console {
    pub context: PageContext,
    pub seller: Seller,
    /// What the change before this page did (`?done=`), to confirm.
    pub done: Option<String>,
}

/// The seller whose key the cookie holds, if it still signs in; a key that no longer does
/// (replaced, or its seller suspended) is forgotten.
async fn signed_in(
    request: &HttpRequest,
    state: &AppState,
    context: &mut PageContext,
) -> Result<Option<Seller>, PageError> {
    let Some(key) = request
        .cookie(SELLER_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|key| !key.is_empty())
    else {
        return Ok(None);
    };
    let client = state.pool.get().await?;
    match sellers::authenticate(&*client, &key).await {
        Ok(seller) => Ok(Some(seller)),
        Err(Error::Unauthorized(_)) => {
            context.forget(SELLER_COOKIE);
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// To the sign-in form, coming back to `back` after it.
fn to_sign_in(context: PageContext, back: &str) -> HttpResponse {
    context.redirect(&format!("/seller?next={}", encode(back)))
}

/// The console of a page (`Err`: the redirect to sign in first, back to this page).
pub(super) async fn open(
    request: &HttpRequest,
    state: &AppState,
) -> Result<Result<Console, HttpResponse>, PageError> {
    let mut context = PageContext::load(request, state).await;
    let back = context.here.clone();
    let done = query_value(request, "done");
    Ok(match signed_in(request, state, &mut context).await? {
        Some(seller) => Ok(Console {
            context,
            seller,
            done,
        }),
        None => Err(to_sign_in(context, &back)),
    })
}

/// The console of a form post: its CSRF token checked first (refused with 403), then the
/// seller (`Err`: the redirect to sign in, back to `back`, the page the form was on).
pub(super) async fn open_form(
    request: &HttpRequest,
    state: &AppState,
    csrf: &str,
    back: &str,
) -> Result<Result<Console, HttpResponse>, PageError> {
    let mut context = PageContext::load(request, state).await;
    context.check_csrf(request, csrf)?;
    Ok(match signed_in(request, state, &mut context).await? {
        Some(seller) => Ok(Console {
            context,
            seller,
            done: None,
        }),
        None => Err(to_sign_in(context, back)),
    })
}

/// A console page to come back to: a local path under `/seller`, else the feed.
pub(super) fn console_path(raw: &str) -> &str {
    let local = raw.starts_with("/seller")
        && !raw.contains('\\')
        && !raw.chars().any(|c| c.is_control() || c.is_whitespace());
    if local {
        raw
    } else {
        "/seller"
    }
}

/// `path` with the confirmation of `done`.
pub(super) fn done_at(path: &str, done: &str) -> String {
    with_param(console_path(path), "done", done)
}

/// A console page: the console's navigation, the confirmation of the last change, the live
/// alerts, then `body`.
pub(super) fn console_page(console: &Console, title: &str, body: Markup) -> Markup {
    let context = &console.context;
    let lang = context.lang;
    let path = context.here.split('?').next().unwrap_or_default();
    let sections = [
        (
            "/seller/orders",
            lang.tr("Orders", "Bestellungen", "Commandes", "注文"),
        ),
        (
            "/seller/products",
            lang.tr("Products", "Produkte", "Produits", "商品"),
        ),
        (
            "/seller/flash-sales",
            lang.tr(
                "Flash sales",
                "Blitzverkäufe",
                "Ventes flash",
                "フラッシュセール",
            ),
        ),
    ];
    let current = |href: &str| {
        path.starts_with(href)
            || (href == "/seller/orders" && path == "/seller")
            || (href == "/seller/products" && path.starts_with("/seller/stock"))
    };
    let wrapped = html! {
        div.switch.console-bar {
            nav.switch aria-label=(lang.tr("Seller console", "Verkäuferbereich", "Espace vendeur", "出品者コンソール")) {
                @for (href, name) in sections {
                    a href=(href) aria-current=[current(href).then_some("page")] { (name) }
                }
            }
            " · "
            p.hint {
                (lang.tr("Signed in as", "Angemeldet als", "Connecté en tant que", "ログイン中:")) " "
                strong { (console.seller.name) }
            }
            form.inline method="post" action="/seller/sign-out" {
                input type="hidden" name="csrf" value=(context.csrf);
                button type="submit" .secondary { (lang.tr("Sign out", "Abmelden", "Se déconnecter", "ログアウト")) }
            }
        }
        @if let Some(words) = console.done.as_deref().and_then(|done| words::done(lang, done)) {
            p.ok role="status" { (words) }
        }
        (live_words(lang))
        section.alerts aria-labelledby="alerts-heading" {
            h2 #alerts-heading .visually-hidden { (lang.tr("Low-stock alerts", "Warnungen zu niedrigem Bestand", "Alertes de stock bas", "在庫僅少アラート")) }
            ul #stock-alerts aria-live="polite" {}
        }
        (body)
    };
    layout::page_with_script(context, title, wrapped, Some("seller.js"))
}

/// What `seller.js` says, in the page's language (the script holds no words of its own).
fn live_words(lang: Lang) -> Markup {
    html! {
        div #seller-live hidden
            data-socket="/ws/seller"
            data-new-order=(lang.tr("New order", "Neue Bestellung", "Nouvelle commande", "新しい注文"))
            data-order-changed=(lang.tr("Order updated", "Bestellung geändert", "Commande mise à jour", "注文が更新されました"))
            data-low-stock=(lang.tr("Low stock: {sku}, {n} left", "Niedriger Bestand: {sku}, noch {n}", "Stock bas : {sku}, {n} restant(s)", "在庫僅少: {sku} 残り{n}点"))
            data-offline=(lang.tr("Live updates paused; reconnecting…", "Live-Aktualisierung unterbrochen; verbinde neu…", "Mises à jour en direct interrompues ; reconnexion…", "ライブ更新が中断しました。再接続中…"))
            data-online=(lang.tr("Live updates on", "Live-Aktualisierung aktiv", "Mises à jour en direct actives", "ライブ更新中")) {}
    }
}

/// A form's refusals, each next to the input it names (`general`: those naming none).
#[derive(Debug, Default)]
pub(super) struct Refusals {
    pub by_field: Vec<(String, String)>,
    pub general: Vec<String>,
}

impl Refusals {
    pub fn of(&self, name: &str) -> Option<&str> {
        self.by_field
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, message)| message.as_str())
    }

    /// The refusals no input names, above the form.
    pub fn summary(&self) -> Markup {
        html! {
            @for message in &self.general { p.error role="alert" { (message) } }
        }
    }
}

/// The element id of an input named `name` (`variants[0].sku` → `f-variants-0--sku`).
pub(super) fn input_id(name: &str) -> String {
    let mut id = String::from("f-");
    id.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        }
    }));
    id
}

/// A labelled input with its refusal, if any.
pub(super) fn field(
    name: &str,
    label: &str,
    kind: &str,
    value: &str,
    refusals: &Refusals,
    hint: Option<&str>,
) -> Markup {
    field_in("", name, label, (kind, value), refusals, hint)
}

/// [`field`] in one of several forms of a page that share input names (`form` tells their
/// ids apart).
pub(super) fn field_in(
    form: &str,
    name: &str,
    label: &str,
    (kind, value): (&str, &str),
    refusals: &Refusals,
    hint: Option<&str>,
) -> Markup {
    let id = input_id(&format!("{form}{name}"));
    let error = refusals.of(name);
    let described = match (error.is_some(), hint.is_some()) {
        (true, _) => Some(format!("{id}-error")),
        (false, true) => Some(format!("{id}-hint")),
        _ => None,
    };
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value)
                inputmode=[(kind == "text" && name.contains("prices")).then_some("decimal")]
                aria-invalid=[error.map(|_| "true")] aria-describedby=[described];
            @if let Some(error) = error { p.error id=(format!("{id}-error")) { (error) } }
            @else if let Some(hint) = hint { p.hint id=(format!("{id}-hint")) { (hint) } }
        }
    }
}

/// A labelled text area with its refusal, if any.
pub(super) fn text_area(
    name: &str,
    label: &str,
    value: &str,
    refusals: &Refusals,
    hint: Option<&str>,
) -> Markup {
    let id = input_id(name);
    let error = refusals.of(name);
    let described = match (error.is_some(), hint.is_some()) {
        (true, _) => Some(format!("{id}-error")),
        (false, true) => Some(format!("{id}-hint")),
        _ => None,
    };
    html! {
        div.field {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows="3"
                aria-invalid=[error.map(|_| "true")] aria-describedby=[described] { (value) }
            @if let Some(error) = error { p.error id=(format!("{id}-error")) { (error) } }
            @else if let Some(hint) = hint { p.hint id=(format!("{id}-hint")) { (hint) } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
    /// The console page to come back to.
    #[serde(default)]
    back: String,
}

/// `GET /seller`: the feed for a signed-in seller, else the sign-in form.
pub async fn home(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    match signed_in(&request, &state, &mut context).await? {
        Some(seller) => {
            let console = Console {
                context,
                seller,
                done: query_value(&request, "done"),
            };
            orders::feed(&state, console, None).await
        }
        None => {
            let next = query_value(&request, "next").unwrap_or_default();
            let page = sign_in_page(&context, console_path(&next), None);
            Ok(context.render(StatusCode::OK, page))
        }
    }
}

fn sign_in_page(context: &PageContext, next: &str, refused: Option<&str>) -> Markup {
    let lang = context.lang;
    let title = lang.tr(
        "Seller console",
        "Verkäuferbereich",
        "Espace vendeur",
        "出品者コンソール",
    );
    let body = html! {
        h1 { (title) }
        form.account method="post" action="/seller/sign-in" {
            h2 { (lang.tr("Sign in with your API key", "Mit Ihrem API-Schlüssel anmelden", "Connectez-vous avec votre clé d’API", "APIキーでログイン")) }
            input type="hidden" name="csrf" value=(context.csrf);
            input type="hidden" name="next" value=(next);
            div.field {
                label for="api_key" { (lang.tr("API key", "API-Schlüssel", "Clé d’API", "APIキー")) }
                input #api_key type="password" name="api_key" required autocomplete="current-password"
                    spellcheck="false" placeholder="agora_sk_…"
                    aria-invalid=[refused.map(|_| "true")]
                    aria-describedby=(if refused.is_some() { "api_key-error" } else { "api_key-hint" });
                @if let Some(message) = refused {
                    p.error #api_key-error role="alert" { (message) }
                } @else {
                    p.hint #api_key-hint { (lang.tr(
                        "The key you got when you joined (agora_sk_…). It is kept in this browser only until you sign out.",
                        "Der Schlüssel aus Ihrer Registrierung (agora_sk_…). Er bleibt nur bis zur Abmeldung in diesem Browser.",
                        "La clé reçue à votre inscription (agora_sk_…). Elle reste dans ce navigateur jusqu’à la déconnexion.",
                        "登録時に受け取ったキー（agora_sk_…）。ログアウトするまでこのブラウザにのみ保存されます。")) }
                }
            }
            button type="submit" { (lang.tr("Sign in", "Anmelden", "Se connecter", "ログイン")) }
        }
    };
    layout::page(context, title, body)
}

/// `POST /seller/sign-in`: a key that signs in becomes the session cookie.
pub async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let key = form.api_key.trim();
    let client = state.pool.get().await?;
    let signed = sellers::authenticate(&*client, key).await;
    drop(client);
    match signed {
        Ok(_) => {
            context.remember_session(SELLER_COOKIE, key);
            let next = console_path(&form.next).to_owned();
            Ok(context.redirect(&done_at(&next, "signed_in")))
        }
        Err(error) if error.status_code().is_client_error() => {
            let message = words::refusal(context.lang, &error);
            let page = sign_in_page(&context, console_path(&form.next), Some(&message));
            Ok(context.render(error.status_code(), page))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /seller/sign-out`: the browser forgets the key.
pub async fn sign_out(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    context.forget(SELLER_COOKIE);
    Ok(context.redirect("/seller"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_come_back_to() {
        assert_eq!(
            console_path("/seller/products?cursor=x"),
            "/seller/products?cursor=x"
        );
        for elsewhere in [
            "https://evil.example/",
            "//evil.example",
            "/cart",
            "/seller\r\nX: y",
            "/seller\\..",
            "",
        ] {
            assert_eq!(console_path(elsewhere), "/seller", "{elsewhere:?}");
        }
        assert_eq!(
            done_at("/seller/orders?done=x", "fulfilled"),
            "/seller/orders?done=fulfilled"
        );
    }
}
