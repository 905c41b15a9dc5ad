//! The shopper's account: sign up, sign in (coming back to the page that asked), sign out,
//! ask for a password-reset link (`password_reset`); a guest keeps browsing without one.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    context::{PageContext, CART_COOKIE, SHOPPER_COOKIE},
    i18n::{query_value, Lang},
    layout::{self, PageError},
};
use crate::{
    error::{Code, Error},
    sellers::Email,
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// A form's refusal, shown next to the field it names.
struct FieldError {
    field: String,
    message: String,
}

impl FieldError {
    /// The refusal in the page's language where the page knows the case, else the domain's
    /// own words.
    fn of(lang: Lang, error: &Error) -> Self {
        let known = match error.code() {
            Code::Unauthorized => Some(lang.tr(
                "The email or the password is wrong.",
                "E-Mail-Adresse oder Passwort ist falsch.",
                "L’e-mail ou le mot de passe est incorrect.",
                "メールアドレスまたはパスワードが違います。",
            )),
            code @ (Code::InvalidEmail | Code::InvalidPassword) => {
                super::password_reset::credential_words(lang, code)
            }
            Code::RateLimited => Some(lang.tr(
                "Too many failed sign-ins: please wait a few minutes and try again.",
                "Zu viele fehlgeschlagene Anmeldungen: bitte einige Minuten warten.",
                "Trop de connexions échouées : patientez quelques minutes.",
                "ログインの失敗が多すぎます。数分待ってからお試しください。",
            )),
            Code::EmailTaken => Some(lang.tr(
                "An account with this email exists: sign in instead.",
                "Zu dieser E-Mail-Adresse gibt es ein Konto: bitte anmelden.",
                "Un compte existe avec cet e-mail : connectez-vous.",
                "このメールアドレスのアカウントは既にあります。ログインしてください。",
            )),
            _ => None,
        };
        Self {
            field: error.field().unwrap_or("email").to_owned(),
            message: known.map_or_else(|| error.to_string(), str::to_owned),
        }
    }
}

/// Where to go after signing in: a local path only.
fn next_page(raw: &str) -> &str {
    if raw.starts_with('/') && !raw.starts_with("//") {
        raw
    } else {
        "/"
    }
}

/// `GET /account`: who is signed in, or the forms to sign in or up.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    let next = query_value(&request, "next").unwrap_or_default();
    let page = account_page(&context, next_page(&next), None, "");
    Ok(context.render(StatusCode::OK, page))
}

/// `POST /account/sign-in`.
pub async fn sign_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<AccountForm>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let signed_in = async {
        let email = Email::parse("email", &form.email)?;
        let address = request
            .peer_addr()
            .map(|peer| peer.ip().to_string())
            .unwrap_or_default();
        state
            .accounts
            .sign_in(&email, &form.password, &address)
            .await
    }
    .await;
    let session = signed_in.map(|session| session.token);
    answer(context, &form, "sign-in", session)
}

/// `POST /account/sign-up`.
pub async fn sign_up(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<AccountForm>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let signed_up = async {
        let email = Email::parse("email", &form.email)?;
        let locale = context.lang.preference().tags().first().cloned();
        state
            .accounts
            .sign_up(&email, &form.password, locale.as_ref())
            .await
    }
    .await;
    let session = signed_up.map(|(_, session)| session.token);
    answer(context, &form, "sign-up", session)
}

/// A signed-in or signed-up browser keeps its session and goes where it came from (a guest
/// cart of before is no longer its own); a refusal shows the form again, next to its field.
fn answer(
    mut context: PageContext,
    form: &AccountForm,
    which: &str,
    session: Result<String, Error>,
) -> Result<HttpResponse, PageError> {
    match session {
        Ok(token) => {
            context.remember_session(SHOPPER_COOKIE, &token);
            context.forget(CART_COOKIE);
            Ok(context.redirect(next_page(&form.next)))
        }
        Err(error) if error.status_code().is_client_error() => {
            let refusal = FieldError::of(context.lang, &error);
            let next = next_page(&form.next);
            let page = account_page(&context, next, Some((which, refusal)), &form.email);
            Ok(context.render(error.status_code(), page))
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /account/sign-out`: ends the session here and for the API.
pub async fn sign_out(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<SignOutForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    if let Some(signed_in) = &context.shopper {
        state.accounts.sign_out(&signed_in.token).await?;
    }
    context.forget(SHOPPER_COOKIE);
    context.forget(CART_COOKIE);
    Ok(context.redirect("/"))
}

fn account_page(
    context: &PageContext,
    next: &str,
    refused: Option<(&str, FieldError)>,
    email: &str,
) -> maud::Markup {
    let lang = context.lang;
    let title = lang.tr("Your account", "Ihr Konto", "Votre compte", "アカウント");
    let body = html! {
        h1 { (title) }
        @match &context.shopper {
            Some(signed_in) if !signed_in.shopper.guest => {
                p { (lang.tr("Signed in as", "Angemeldet als", "Connecté en tant que", "ログイン中:")) " " strong { (signed_in.shopper.email.as_deref().unwrap_or_default()) } }
                form method="post" action="/account/sign-out" {
                    input type="hidden" name="csrf" value=(context.csrf);
                    button type="submit" { (lang.tr("Sign out", "Abmelden", "Se déconnecter", "ログアウト")) }
                }
            }
            _ => {
                div.two {
                    (account_form(context, "sign-in", next, refused.as_ref().filter(|(form, _)| *form == "sign-in").map(|(_, e)| e), email))
                    (account_form(context, "sign-up", next, refused.as_ref().filter(|(form, _)| *form == "sign-up").map(|(_, e)| e), email))
                }
                (super::password_reset::forgot_form(context))
                p.hint { (lang.tr("No account needed to shop: your cart is kept as a guest.", "Kein Konto nötig: Ihr Warenkorb bleibt auch als Gast erhalten.", "Pas besoin de compte : votre panier est conservé en tant qu’invité.", "アカウントなしでも買い物できます。カートはゲストとして保持されます。")) }
            }
        }
    };
    layout::page(context, title, body)
}

fn account_form(
    context: &PageContext,
    which: &str,
    next: &str,
    refused: Option<&FieldError>,
    email: &str,
) -> Markup {
    let lang = context.lang;
    let (heading, button) = if which == "sign-in" {
        (
            lang.tr("Sign in", "Anmelden", "Se connecter", "ログイン"),
            lang.tr("Sign in", "Anmelden", "Se connecter", "ログイン"),
        )
    } else {
        (
            lang.tr(
                "Create an account",
                "Konto anlegen",
                "Créer un compte",
                "アカウント作成",
            ),
            lang.tr(
                "Create account",
                "Konto anlegen",
                "Créer le compte",
                "作成する",
            ),
        )
    };
    let error_for = |field: &str| {
        refused
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
    };
    let field = |name: &str, kind: &str, label: &str, value: &str, autocomplete: &str| {
        let id = format!("{which}-{name}");
        let error = error_for(name);
        html! {
            div.field {
                label for=(id) { (label) }
                input id=(id) type=(kind) name=(name) value=(value) autocomplete=(autocomplete) required
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| format!("{id}-error"))];
                @if let Some(error) = error { p.error id=(format!("{id}-error")) { (error) } }
            }
        }
    };
    let password_autocomplete = if which == "sign-in" {
        "current-password"
    } else {
        "new-password"
    };
    html! {
        form.account method="post" action=(format!("/account/{which}")) {
            h2 { (heading) }
            input type="hidden" name="csrf" value=(context.csrf);
            input type="hidden" name="next" value=(next);
            (field("email", "email", lang.tr("Email", "E-Mail", "E-mail", "メールアドレス"), email, "email"))
            (field("password", "password", lang.tr("Password", "Passwort", "Mot de passe", "パスワード"), "", password_autocomplete))
            button type="submit" { (button) }
        }
    }
}
