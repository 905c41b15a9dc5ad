//! Forgotten passwords in the browser: asking for a reset link (from the account page) and the
//! page the mailed link opens (`/password-resets/{token}`), where a new password is set. Both
//! go through `Accounts` as the JSON API does; the token stays in the path (the pages'
//! `Referrer-Policy: same-origin` keeps it from other sites) and is never stored by the page.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::{
    context::PageContext,
    i18n::Lang,
    layout::{self, PageError},
};
use crate::{
    error::{Code, Error},
    sellers::Email,
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

#[derive(Debug, Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

/// What is wrong with an email or password a form gave, in the page's language (the account
/// page's forms and this page's say it alike).
pub(super) fn credential_words(lang: Lang, code: Code) -> Option<&'static str> {
    match code {
        Code::InvalidEmail => Some(lang.tr(
            "This is not an email address.",
            "Das ist keine E-Mail-Adresse.",
            "Ce n’est pas une adresse e-mail.",
            "メールアドレスの形式ではありません。",
        )),
        Code::InvalidPassword => Some(lang.tr(
            "A password has 8 to 128 characters.",
            "Ein Passwort hat 8 bis 128 Zeichen.",
            "Un mot de passe compte de 8 à 128 caractères.",
            "パスワードは8〜128文字です。",
        )),
        _ => None,
    }
}

/// The refusal of a reset in the page's language.
fn refusal(lang: Lang, error: &Error) -> String {
    let known = match error.code() {
        Code::InvalidEmail | Code::InvalidPassword => credential_words(lang, error.code()),
        Code::InvalidResetToken => Some(lang.tr(
            "This link is unknown, used or expired: ask for a new one on the account page.",
            "Dieser Link ist unbekannt, benutzt oder abgelaufen: fordern Sie auf der Kontoseite einen neuen an.",
            "Ce lien est inconnu, déjà utilisé ou expiré : demandez-en un nouveau sur la page du compte.",
            "このリンクは無効か、使用済みか、期限切れです。アカウントページで再度お申し込みください。",
        )),
        Code::RateLimited => Some(lang.tr(
            "Too many reset links asked for: please wait and try again.",
            "Zu viele Links angefordert: bitte warten und erneut versuchen.",
            "Trop de liens demandés : patientez puis réessayez.",
            "リクエストが多すぎます。しばらくしてからお試しください。",
        )),
        _ => None,
    };
    known.map_or_else(|| error.to_string(), str::to_owned)
}

/// A refusal the shopper can act on is shown on the page; anything else is an error page.
fn shown(error: Error) -> Result<(StatusCode, Error), PageError> {
    let status = crate::http::error::status_of(error.code());
    if status.is_client_error() {
        Ok((status, error))
    } else {
        Err(error.into())
    }
}

/// `POST /account/password-reset`: mails a reset link if an account has the address; the
/// page says the same either way.
pub async fn ask(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<ForgotForm>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let address = request
        .peer_addr()
        .map(|peer| peer.ip().to_string())
        .unwrap_or_default();
    let asked = async {
        let email = Email::parse("email", &form.email)?;
        state
            .accounts
            .request_password_reset(&email, &address)
            .await
    }
    .await;
    let lang = context.lang;
    let title = lang.tr(
        "Reset your password",
        "Passwort zurücksetzen",
        "Réinitialiser le mot de passe",
        "パスワードの再設定",
    );
    let (status, body) = match asked {
        Ok(()) => (
            StatusCode::ACCEPTED,
            html! {
                h1 { (title) }
                p { (lang.tr(
                    "If an account has this address, a link to set a new password is on its way. It works once, for 30 minutes.",
                    "Wenn zu dieser Adresse ein Konto gehört, ist ein Link zum Setzen eines neuen Passworts unterwegs. Er funktioniert einmal, 30 Minuten lang.",
                    "Si un compte a cette adresse, un lien pour choisir un nouveau mot de passe est en route. Il fonctionne une fois, pendant 30 minutes.",
                    "このアドレスのアカウントがあれば、新しいパスワードを設定するリンクをお送りしました。リンクは30分間、一度だけ使えます。",
                )) }
            },
        ),
        Err(error) => {
            let (status, error) = shown(error)?;
            (
                status,
                html! { h1 { (title) } p.error { (refusal(lang, &error)) } p { a href="/account" { (lang.tr("Back", "Zurück", "Retour", "戻る")) } } },
            )
        }
    };
    let page = layout::page(&context, title, body);
    Ok(context.render(status, page))
}

/// `GET /password-resets/{token}`: the form for the new password.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    let page = new_password_page(&context, &token, None);
    Ok(context.render(StatusCode::OK, page))
}

/// `POST /password-resets/{token}`: sets the password; every session, this browser's too,
/// is revoked, so the shopper signs in again.
pub async fn set(
    state: web::Data<AppState>,
    request: HttpRequest,
    token: web::Path<String>,
    form: web::Form<NewPasswordForm>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    match state.accounts.reset_password(&token, &form.password).await {
        Ok(()) => {
            let lang = context.lang;
            let title = lang.tr(
                "Your password is set",
                "Ihr Passwort ist gesetzt",
                "Votre mot de passe est enregistré",
                "パスワードを設定しました",
            );
            let body = html! {
                h1 { (title) }
                p { a href="/account" { (lang.tr("Sign in with it", "Damit anmelden", "Se connecter avec", "ログインする")) } }
            };
            let page = layout::page(&context, title, body);
            Ok(context.render(StatusCode::OK, page))
        }
        Err(error) => {
            let (status, error) = shown(error)?;
            let page = new_password_page(&context, &token, Some(&error));
            Ok(context.render(status, page))
        }
    }
}

fn new_password_page(context: &PageContext, token: &str, refused: Option<&Error>) -> Markup {
    let lang = context.lang;
    let title = lang.tr(
        "Choose a new password",
        "Neues Passwort wählen",
        "Choisir un nouveau mot de passe",
        "新しいパスワードの設定",
    );
    let error = refused.map(|error| refusal(lang, error));
    let body = html! {
        h1 { (title) }
        form.account method="post" action=(format!("/password-resets/{token}")) {
            input type="hidden" name="csrf" value=(context.csrf);
            div.field {
                label for="new-password" { (lang.tr("New password", "Neues Passwort", "Nouveau mot de passe", "新しいパスワード")) }
                input id="new-password" type="password" name="password" autocomplete="new-password" required
                    aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| "new-password-error")];
                @if let Some(error) = &error { p.error id="new-password-error" { (error) } }
            }
            button type="submit" { (lang.tr("Set password", "Passwort setzen", "Enregistrer", "設定する")) }
        }
    };
    layout::page(context, title, body)
}

/// The "forgot your password?" form of the account page.
pub fn forgot_form(context: &PageContext) -> Markup {
    let lang = context.lang;
    html! {
        form.account method="post" action="/account/password-reset" {
            h2 { (lang.tr("Forgot your password?", "Passwort vergessen?", "Mot de passe oublié ?", "パスワードをお忘れですか？")) }
            input type="hidden" name="csrf" value=(context.csrf);
            div.field {
                label for="forgot-email" { (lang.tr("Email", "E-Mail", "E-mail", "メールアドレス")) }
                input id="forgot-email" type="email" name="email" autocomplete="email" required;
            }
            button type="submit" { (lang.tr("Mail me a link", "Link zusenden", "Recevoir un lien", "リンクを送る")) }
        }
    }
}
