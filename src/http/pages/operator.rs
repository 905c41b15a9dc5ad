//! The operator console (`/operator`): sign in with the operator token, then the sellers (list,
//! search, suspend, reinstate), the regions (`regions`: create and edit, with tax and
//! shipping) and the live status page (`status`).
//!
//! The browser holds the operator token in an HttpOnly cookie once signed in (as the JSON API
//! takes it as a bearer token); every page compares its digest with `operator.token`'s, so
//! changing the token signs every browser out. With no token configured, nobody is the
//! operator. Every change is a form post with the CSRF token, and runs the same domain
//! functions as the operator's JSON routes.

mod regions;
mod status;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    context::PageContext,
    i18n::{query_value, Lang},
    layout::{self, PageError},
};
use crate::{
    http::auth::OPERATOR_COOKIE,
    sellers::{self, Seller},
    state::AppState,
};

/// Sellers one page of the console lists.
const SELLERS_SHOWN: i64 = 100;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/operator").route(web::get().to(home)))
        .service(web::resource("/operator/sign-in").route(web::post().to(sign_in)))
        .service(web::resource("/operator/sign-out").route(web::post().to(sign_out)))
        .service(web::resource("/operator/sellers").route(web::get().to(sellers_page)))
        .service(
            web::resource("/operator/sellers/{id}/{action}").route(web::post().to(seller_action)),
        )
        .configure(regions::configure)
        .configure(status::configure);
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// The list (with its search) to come back to.
    #[serde(default)]
    back: String,
}

/// Whether `presented` is the configured operator token (compared by digest, so the
/// comparison's timing says nothing about the token, as `OperatorAuth` does).
fn is_operator_token(state: &AppState, presented: &str) -> bool {
    let configured = state.settings.operator.token.expose_secret();
    !configured.is_empty()
        && !presented.is_empty()
        && Sha256::digest(presented.as_bytes()) == Sha256::digest(configured.as_bytes())
}

/// Whether this browser's cookie holds the operator token.
fn is_operator(request: &HttpRequest, state: &AppState) -> bool {
    request
        .cookie(OPERATOR_COOKIE)
        .is_some_and(|cookie| is_operator_token(state, cookie.value()))
}

/// The page's context when this browser is the operator's; else the way to sign in and back
/// (a stale cookie forgotten).
pub(super) fn operator_gate(
    request: &HttpRequest,
    state: &AppState,
    mut context: PageContext,
) -> Result<PageContext, Box<HttpResponse>> {
    if is_operator(request, state) {
        return Ok(context);
    }
    if request.cookie(OPERATOR_COOKIE).is_some() {
        context.forget(OPERATOR_COOKIE);
    }
    let next = if request.method() == actix_web::http::Method::GET {
        layout::encode(&context.here)
    } else {
        "%2Foperator".to_owned()
    };
    Err(Box::new(
        context.redirect(&format!("/operator?next={next}")),
    ))
}

/// The context of a console page, or the redirect to sign in.
pub(super) async fn operator_context(
    request: &HttpRequest,
    state: &AppState,
) -> Result<PageContext, Box<HttpResponse>> {
    let context = PageContext::load(request, state).await;
    operator_gate(request, state, context)
}

/// Where to go after signing in: a local path of the console only.
fn next_page(raw: &str) -> &str {
    if raw.starts_with("/operator") && !raw.starts_with("//") {
        raw
    } else {
        "/operator"
    }
}

/// The console's own navigation, above each of its pages.
pub(super) fn console_nav(context: &PageContext, current: &str) -> Markup {
    let lang = context.lang;
    let links = [
        (
            "/operator",
            lang.tr("Overview", "Übersicht", "Vue d’ensemble", "概要"),
        ),
        (
            "/operator/sellers",
            lang.tr("Sellers", "Verkäufer", "Vendeurs", "出品者"),
        ),
        (
            "/operator/regions",
            lang.tr("Regions", "Regionen", "Régions", "地域"),
        ),
        (
            "/operator/status",
            lang.tr("Status", "Status", "État", "稼働状況"),
        ),
    ];
    html! {
        nav.console.switch aria-label=(lang.tr("Operator console", "Betreiberkonsole", "Console d’exploitation", "運営コンソール")) {
            @for (href, label) in links {
                @if href == current {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
            form.inline method="post" action="/operator/sign-out" {
                input type="hidden" name="csrf" value=(context.csrf);
                button.secondary type="submit" { (lang.tr("Sign out", "Abmelden", "Se déconnecter", "ログアウト")) }
            }
        }
    }
}

/// `GET /operator`: the console's overview, or the sign-in form.
pub async fn home(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    if !is_operator(&request, &state) {
        if request.cookie(OPERATOR_COOKIE).is_some() {
            context.forget(OPERATOR_COOKIE);
        }
        let next = query_value(&request, "next").unwrap_or_default();
        let configured = !state.settings.operator.token.expose_secret().is_empty();
        let page = sign_in_page(&context, next_page(&next), None, configured);
        return Ok(context.render(StatusCode::OK, page));
    }
    let lang = context.lang;
    let title = lang.tr(
        "Operator console",
        "Betreiberkonsole",
        "Console d’exploitation",
        "運営コンソール",
    );
    let body = html! {
        h1 { (title) }
        (console_nav(&context, "/operator"))
        ul.overview {
            li { a href="/operator/sellers" { (lang.tr("Sellers", "Verkäufer", "Vendeurs", "出品者")) } " — "
                (lang.tr("find, suspend and reinstate sellers", "Verkäufer finden, sperren und wieder zulassen", "trouver, suspendre et rétablir des vendeurs", "出品者の検索・停止・再開")) }
            li { a href="/operator/regions" { (lang.tr("Regions", "Regionen", "Régions", "地域")) } " — "
                (lang.tr("where the store sells: currency, tax and shipping", "wohin der Shop verkauft: Währung, Steuern und Versand", "où la boutique vend : devise, taxes et livraison", "販売地域: 通貨・税・配送")) }
            li { a href="/operator/status" { (lang.tr("Status", "Status", "État", "稼働状況")) } " — "
                (lang.tr("dependencies, open sockets, orders per minute and checkout latency, live", "Abhängigkeiten, offene Sockets, Bestellungen pro Minute und Checkout-Latenz, live", "dépendances, sockets ouverts, commandes par minute et latence de paiement, en direct", "依存サービス・接続数・毎分の注文数・決済レイテンシ(ライブ)")) }
        }
    };
    let page = layout::page(&context, title, body);
    Ok(context.render(StatusCode::OK, page))
}

fn sign_in_page(
    context: &PageContext,
    next: &str,
    error: Option<&str>,
    configured: bool,
) -> Markup {
    let lang = context.lang;
    let title = lang.tr(
        "Operator sign-in",
        "Betreiber-Anmeldung",
        "Connexion opérateur",
        "運営者ログイン",
    );
    let body = html! {
        h1 { (title) }
        @if !configured {
            p.error role="alert" { (lang.tr(
                "The operator console is disabled: no operator token is configured (operator.token).",
                "Die Betreiberkonsole ist deaktiviert: kein Betreiber-Token konfiguriert (operator.token).",
                "La console d’exploitation est désactivée : aucun jeton opérateur n’est configuré (operator.token).",
                "運営コンソールは無効です。運営者トークン(operator.token)が設定されていません。")) }
        }
        form.account method="post" action="/operator/sign-in" {
            input type="hidden" name="csrf" value=(context.csrf);
            input type="hidden" name="next" value=(next);
            div.field {
                label for="operator-token" { (lang.tr("Operator token", "Betreiber-Token", "Jeton opérateur", "運営者トークン")) }
                input #operator-token type="password" name="token" autocomplete="current-password" required
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "operator-token-error")];
                @if let Some(error) = error { p.error #operator-token-error role="alert" { (error) } }
            }
            button type="submit" { (lang.tr("Sign in", "Anmelden", "Se connecter", "ログイン")) }
        }
    };
    layout::page(context, title, body)
}

/// `POST /operator/sign-in`: the token becomes the console's session cookie.
pub async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let token = form.token.trim();
    if is_operator_token(&state, token) {
        context.remember_session(OPERATOR_COOKIE, token);
        return Ok(context.redirect(next_page(&form.next)));
    }
    metrics::counter!("agora_page_operator_sign_in_refusals_total").increment(1);
    let lang = context.lang;
    let error = lang.tr(
        "This is not the operator token.",
        "Das ist nicht das Betreiber-Token.",
        "Ce n’est pas le jeton opérateur.",
        "運営者トークンが正しくありません。",
    );
    let configured = !state.settings.operator.token.expose_secret().is_empty();
    let page = sign_in_page(&context, next_page(&form.next), Some(error), configured);
    Ok(context.render(StatusCode::UNAUTHORIZED, page))
}

/// `POST /operator/sign-out`.
pub async fn sign_out(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    context.forget(OPERATOR_COOKIE);
    Ok(context.redirect("/operator"))
}

/// `GET /operator/sellers?q=`: sellers, newest first, searched by name or email.
pub async fn sellers_page(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let context = match operator_context(&request, &state).await {
        Ok(context) => context,
        Err(sign_in) => return Ok(*sign_in),
    };
    let query = query_value(&request, "q").unwrap_or_default();
    let changed: Option<Uuid> = query_value(&request, "changed").and_then(|id| id.parse().ok());
    let client = state.pool.get().await?;
    let found = sellers::list(&*client, Some(&query), SELLERS_SHOWN).await?;
    drop(client);
    let lang = context.lang;
    let title = lang.tr("Sellers", "Verkäufer", "Vendeurs", "出品者");
    let changed = changed.and_then(|id| found.iter().find(|seller| seller.id == id));
    let body = html! {
        h1 { (title) }
        (console_nav(&context, "/operator/sellers"))
        div #seller-notice role="status" {
            @if let Some(seller) = changed {
                p.ok { (seller.name) ": " (status_words(lang, &seller.status)) }
            }
        }
        form.filters role="search" method="get" action="/operator/sellers" {
            div.field {
                label for="seller-q" { (lang.tr("Name or email", "Name oder E-Mail", "Nom ou e-mail", "名前またはメール")) }
                input #seller-q type="search" name="q" value=(query);
            }
            button type="submit" { (lang.tr("Search", "Suchen", "Rechercher", "検索")) }
        }
        @if found.is_empty() {
            p.empty { (lang.tr("No seller matches.", "Kein passender Verkäufer.", "Aucun vendeur ne correspond.", "該当する出品者はいません。")) }
        } @else {
            (sellers_table(&context, &found))
            @if found.len() as i64 >= SELLERS_SHOWN {
                p.hint { (lang.tr("Only the newest are shown: narrow the search.", "Nur die neuesten werden gezeigt: verfeinern Sie die Suche.", "Seuls les plus récents sont affichés : affinez la recherche.", "新しい順に一部のみ表示しています。検索を絞り込んでください。")) }
            }
        }
    };
    let page = layout::page(&context, title, body);
    Ok(context.render(StatusCode::OK, page))
}

fn status_words(lang: Lang, status: &str) -> &'static str {
    match status {
        "active" => lang.tr("active", "aktiv", "actif", "有効"),
        "suspended" => lang.tr("suspended", "gesperrt", "suspendu", "停止中"),
        _ => lang.tr("unknown", "unbekannt", "inconnu", "不明"),
    }
}

fn sellers_table(context: &PageContext, found: &[Seller]) -> Markup {
    let lang = context.lang;
    html! {
        table.lines #sellers {
            caption.visually-hidden { (lang.tr("Sellers", "Verkäufer", "Vendeurs", "出品者")) }
            thead { tr {
                th scope="col" { (lang.tr("Name", "Name", "Nom", "名前")) }
                th scope="col" { (lang.tr("Email", "E-Mail", "E-mail", "メール")) }
                th scope="col" { (lang.tr("Since", "Seit", "Depuis", "登録日")) }
                th scope="col" { (lang.tr("Status", "Status", "Statut", "状態")) }
                th scope="col" { (lang.tr("Action", "Aktion", "Action", "操作")) }
            } }
            tbody {
                @for seller in found {
                    @let active = seller.status == "active";
                    tr data-seller=(seller.id) data-status=(seller.status) {
                        th scope="row" { (seller.name) }
                        td { (seller.email) }
                        td { (lang.datetime(seller.created_at)) }
                        td.status { (status_words(lang, &seller.status)) }
                        td {
                            form.inline method="post" action=(format!("/operator/sellers/{}/{}", seller.id, if active { "suspend" } else { "reinstate" })) {
                                input type="hidden" name="csrf" value=(context.csrf);
                                input type="hidden" name="back" value=(context.here);
                                @if active {
                                    button.secondary type="submit" { (lang.tr("Suspend", "Sperren", "Suspendre", "停止")) span.visually-hidden { " " (seller.name) } }
                                } @else {
                                    button type="submit" { (lang.tr("Reinstate", "Wieder zulassen", "Rétablir", "再開")) span.visually-hidden { " " (seller.name) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /operator/sellers/{id}/suspend` and `…/reinstate`: back to the list, which says what
/// changed.
pub async fn seller_action(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(Uuid, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let context = match operator_gate(&request, &state, context) {
        Ok(context) => context,
        Err(sign_in) => return Ok(*sign_in),
    };
    let (id, action) = path.into_inner();
    let seller = match action.as_str() {
        "suspend" => sellers::suspend(&state.pool, &state.hot, &state.credentials, id).await?,
        "reinstate" => sellers::reinstate(&state.pool, &state.hot, &state.credentials, id).await?,
        _ => return Err(crate::error::Error::NotFound("page").into()),
    };
    let back = if form.back.starts_with("/operator/sellers") {
        form.back.as_str()
    } else {
        "/operator/sellers"
    };
    let back = layout::with_param(back, "changed", &seller.id.to_string());
    Ok(context.redirect(&back))
}
