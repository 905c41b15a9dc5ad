//! The shopper's flash-sale page (`/flash-sales/{id}`): the sale's item and price in the
//! visitor's currency, the countdown to its opening, joining its queue, the live position and
//! estimated wait (`flash.js` over the socket's `follow_queue`), the buy form the moment the
//! shopper is admitted, and sold out the moment it happens.
//!
//! Every state is in the page's HTML as the server sees it (a reload shows where the ticket
//! is); `flash.js` only keeps it current. The purchase form carries a fresh idempotency key
//! per rendering, so a double click or a resent form never charges twice.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    cart::region_of,
    context::PageContext,
    delivery::{self, AddressFields},
    i18n::Lang,
    layout::{self, PageError},
    payment::{self, test_cards, Answer},
};
use crate::{
    catalog::storefront,
    error::{Code, Error},
    flash_sales::{
        self, PurchaseRequest, QueueStatus, SaleShipping, SaleState, SaleView, TicketState,
    },
    money::Price,
    regions::{self, Region},
    state::AppState,
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/flash-sales/{id}").route(web::get().to(show)))
        .service(web::resource("/flash-sales/{id}/queue").route(web::post().to(join)))
        .service(web::resource("/flash-sales/{id}/purchase").route(web::post().to(buy)));
}

#[derive(Debug, Deserialize)]
pub struct JoinForm {
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct BuyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    admission_token: String,
    #[serde(default)]
    quantity: String,
    #[serde(default)]
    option: String,
    #[serde(default)]
    card_number: String,
    #[serde(flatten)]
    address: AddressFields,
}

/// A message for the shopper above the queue; a refusal names its form field (and keeps the
/// address typed in the form).
struct Notice {
    field: Option<String>,
    text: String,
    draft: Option<AddressFields>,
}

/// What the page shows of one sale.
struct SalePage {
    sale: SaleView,
    /// The product's title in the visitor's language, and that language (else the SKU).
    title: (String, Option<String>),
    /// The region the visitor buys in (that of its currency, else the first).
    region: Option<Region>,
    /// The sale price in the region's currency, when the sale has one.
    price: Option<Price>,
    ticket: Option<QueueStatus>,
}

/// `GET /flash-sales/{id}`: the sale, and the visitor's place in its queue.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    render_sale(&state, context, id.into_inner(), None, StatusCode::OK).await
}

/// `POST /flash-sales/{id}/queue`: joins the queue (as a guest when nobody is signed in) and
/// shows the page with the ticket.
pub async fn join(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<JoinForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let sale_id = id.into_inner();
    let shopper_id = context.ensure_shopper(&state).await?.shopper.id;
    let joined = async {
        flash_sales::check_rate(&state.flash_sales, shopper_id, "join").await?;
        flash_sales::join(&state.flash_sales, sale_id, shopper_id).await
    }
    .await;
    match joined {
        Ok(_) => Ok(context.redirect(&format!("/flash-sales/{sale_id}"))),
        Err(error) if refusable(&error) => {
            let notice = refusal(context.lang, &error);
            let status = crate::http::error::status_of(error.code());
            render_sale(&state, context, sale_id, Some(notice), status).await
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /flash-sales/{id}/purchase`: buys with the admission; the order page when paid, the
/// sale's page with the reason otherwise.
pub async fn buy(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<BuyForm>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let sale_id = id.into_inner();
    let Some(shopper_id) = context.shopper.as_ref().map(|s| s.shopper.id) else {
        return Ok(context.redirect(&format!("/flash-sales/{sale_id}")));
    };
    let bought = async {
        let request = purchase_request(&state, &context, sale_id, shopper_id, &form).await?;
        flash_sales::check_rate(&state.flash_sales, shopper_id, "purchase").await?;
        flash_sales::purchase(&state.flash_sales, request, &context.lang.preference()).await
    }
    .await;
    let refused = match payment::answer(bought, refusable)? {
        Answer::Paid(order) => return Ok(context.redirect(&order)),
        Answer::Refused(error) => error,
    };
    let status = crate::http::error::status_of(refused.code());
    let mut notice = refusal(context.lang, &refused);
    notice.draft = Some(form.into_inner().address);
    render_sale(&state, context, sale_id, Some(notice), status).await
}

/// The purchase the form asks for, its fields checked (each refusal names its field).
async fn purchase_request(
    state: &AppState,
    context: &PageContext,
    sale_id: Uuid,
    shopper_id: Uuid,
    form: &BuyForm,
) -> Result<PurchaseRequest, Error> {
    let key = payment::idempotency_key(&form.idempotency_key)?;
    let quantity = match form.quantity.trim() {
        "" => 1,
        raw => raw
            .parse::<u32>()
            .ok()
            .filter(|q| (1..=crate::carts::MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                Error::invalid_field(Code::InvalidQuantity, "quantity", "a whole number of units")
            })?,
    };
    let card = payment::card(&form.card_number)?;
    let client = state.pool.get().await?;
    let regions = regions::list(&*client).await?;
    drop(client);
    let region = region_of(&regions, context)
        .ok_or_else(|| Error::Unavailable("the store has no region to sell in yet".into()))?;
    let shipping = match region.details.shipping_options.is_empty() {
        true => None,
        false => Some(SaleShipping {
            address: Some(form.address.input().validate("shipping.address.")?),
            country: None,
            option: form.option.trim().to_owned(),
        }),
    };
    let email = form.address.email()?;
    Ok(PurchaseRequest {
        sale_id,
        shopper_id,
        key: key.to_owned(),
        token: form.admission_token.trim().to_owned(),
        quantity,
        region: region.code.clone(),
        shipping,
        email,
        card,
    })
}

/// Whether a refusal is the shopper's to read on the page (a missing sale is a 404 page).
fn refusable(error: &Error) -> bool {
    error.status_code().is_client_error() && !matches!(error, Error::NotFound(_))
}

/// The sale price in `region`'s currency, when the sale names one.
fn price_in(sale: &SaleView, region: &Region) -> Option<Price> {
    let currency = region.currency()?;
    let amount = sale
        .prices
        .get(currency.code())
        .and_then(|raw| Decimal::from_str_exact(raw).ok())?;
    Some(Price {
        amount: currency.round(amount),
        currency: currency.code(),
        converted: false,
    })
}

/// The words for a refusal: payment outcomes and the queue's in the page's language, else the
/// domain's message.
fn refusal(lang: Lang, error: &Error) -> Notice {
    let text = match error.code() {
        Code::PaymentDeclined => lang.tr(
            "Your card was declined. Nothing was charged; you can try another card while your turn lasts.",
            "Ihre Karte wurde abgelehnt. Es wurde nichts belastet; Sie können eine andere Karte versuchen, solange Sie dran sind.",
            "Votre carte a été refusée. Rien n’a été débité ; vous pouvez essayer une autre carte tant que c’est votre tour.",
            "カードが拒否されました。請求は行われていません。順番が有効な間は別のカードをお試しいただけます。",
        ),
        Code::PaymentTimeout => lang.tr(
            "The payment did not go through in time. Nothing was charged; please try again.",
            "Die Zahlung kam nicht rechtzeitig zustande. Es wurde nichts belastet; bitte erneut versuchen.",
            "Le paiement n’a pas abouti à temps. Rien n’a été débité ; veuillez réessayer.",
            "支払いが時間内に完了しませんでした。請求は行われていません。もう一度お試しください。",
        ),
        Code::SoldOut => lang.tr("Sold out.", "Ausverkauft.", "Épuisé.", "売り切れです。"),
        Code::SaleClosed => lang.tr(
            "This sale has ended.",
            "Dieser Verkauf ist beendet.",
            "Cette vente est terminée.",
            "このセールは終了しました。",
        ),
        Code::AdmissionExpired => lang.tr(
            "Your turn has passed: the unit went to the next shopper in the queue.",
            "Ihre Zeit ist abgelaufen: die Einheit ging an den Nächsten in der Warteschlange.",
            "Votre tour est passé : l’article est allé à la personne suivante.",
            "購入期限が過ぎたため、商品は次の方に渡りました。",
        ),
        Code::RateLimited => lang.tr(
            "Too many attempts; please wait a few seconds and try again.",
            "Zu viele Versuche; bitte warten Sie einige Sekunden.",
            "Trop de tentatives ; patientez quelques secondes.",
            "試行回数が多すぎます。数秒待ってからお試しください。",
        ),
        code => delivery::words(lang, code).unwrap_or(""),
    };
    Notice {
        field: error.field().map(str::to_owned),
        text: if text.is_empty() {
            error.to_string()
        } else {
            text.to_owned()
        },
        draft: None,
    }
}

async fn load_sale(
    state: &AppState,
    context: &PageContext,
    sale_id: Uuid,
) -> Result<SalePage, Error> {
    let client = state.pool.get().await?;
    let sale = flash_sales::get(&*client, sale_id).await?;
    let product_id = flash_sales::product_of(&*client, sale_id).await?;
    let ticket = match &context.shopper {
        Some(signed_in) => {
            let key = &state.flash_sales.admission_key;
            match flash_sales::status(&*client, key, sale_id, signed_in.shopper.id).await {
                Ok(ticket) => Some(ticket),
                Err(Error::NotFound(_)) => None,
                Err(error) => return Err(error),
            }
        }
        None => None,
    };
    let regions = regions::list(&*client).await?;
    drop(client);
    let region = region_of(&regions, context).cloned();
    let price = region.as_ref().and_then(|region| price_in(&sale, region));
    let title = match state.catalog.storefront_product(product_id).await {
        Ok(record) => {
            let preference = context.lang.preference();
            let product =
                storefront::render(&record, &preference, context.currency, &state.pricing.fx)?;
            (product.title, Some(product.locale))
        }
        // The product left the storefront: the sale is still shown, by its SKU.
        Err(Error::NotFound(_)) => (sale.sku.clone(), None),
        Err(error) => return Err(error),
    };
    Ok(SalePage {
        sale,
        title,
        region,
        price,
        ticket,
    })
}

async fn render_sale(
    state: &AppState,
    context: PageContext,
    sale_id: Uuid,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let page = load_sale(state, &context, sale_id).await?;
    let sandbox = state.checkout.payments.provider_name() == "sandbox";
    let body = sale_body(&context, &page, notice.as_ref(), sandbox);
    let html = layout::page_with_script(&context, &page.title.0, body, Some("flash.js"));
    Ok(context.render(status, html))
}

/// A queue state as the shopper reads it.
fn state_words(lang: Lang, state: &str) -> &'static str {
    match state {
        "waiting" => lang.tr(
            "Waiting in the queue",
            "In der Warteschlange",
            "En file d’attente",
            "順番待ち中",
        ),
        "admitted" => lang.tr(
            "It’s your turn: buy now",
            "Sie sind dran: jetzt kaufen",
            "C’est votre tour : achetez maintenant",
            "あなたの番です。今すぐ購入できます",
        ),
        "purchased" => lang.tr("You bought it", "Gekauft", "Vous l’avez acheté", "購入済み"),
        "sold_out" => lang.tr("Sold out", "Ausverkauft", "Épuisé", "売り切れ"),
        "admission_expired" => lang.tr(
            "Your turn has passed",
            "Ihre Zeit ist abgelaufen",
            "Votre tour est passé",
            "購入期限が過ぎました",
        ),
        "closed" => lang.tr(
            "The sale has ended",
            "Der Verkauf ist beendet",
            "La vente est terminée",
            "セールは終了しました",
        ),
        _ => lang.tr(
            "You are not in the queue yet",
            "Sie sind noch nicht in der Warteschlange",
            "Vous n’êtes pas encore dans la file",
            "まだ列に並んでいません",
        ),
    }
}

/// The words `flash.js` writes, in the page's language (`{n}`, `{s}` and `{t}` are filled in).
fn script_words(lang: Lang) -> String {
    let mut words = serde_json::Map::new();
    for state in [
        "waiting",
        "admitted",
        "purchased",
        "sold_out",
        "closed",
        "admission_expired",
    ] {
        words.insert(state.into(), state_words(lang, state).into());
    }
    for (key, text) in [
        ("position", position_words(lang)),
        ("wait", wait_words(lang)),
        (
            "opens",
            lang.tr(
                "Opens in {t}",
                "Öffnet in {t}",
                "Ouvre dans {t}",
                "開始まで{t}",
            ),
        ),
        (
            "open",
            lang.tr("Open now", "Jetzt geöffnet", "Ouverte", "開催中"),
        ),
    ] {
        words.insert(key.into(), text.into());
    }
    serde_json::Value::Object(words).to_string()
}

fn position_words(lang: Lang) -> &'static str {
    lang.tr(
        "Your place in the queue: {n}",
        "Ihr Platz in der Warteschlange: {n}",
        "Votre place dans la file : {n}",
        "あなたの順番: {n}番目",
    )
}

fn wait_words(lang: Lang) -> &'static str {
    lang.tr(
        "Estimated wait: about {s} s",
        "Geschätzte Wartezeit: etwa {s} s",
        "Attente estimée : environ {s} s",
        "予想待ち時間: 約{s}秒",
    )
}

/// The raw state the page shows: the ticket's, else the sale's when it is over, else `none`.
fn shown_state(page: &SalePage) -> &'static str {
    match &page.ticket {
        Some(ticket) if ticket.reason == Some("admission_expired") => "admission_expired",
        Some(ticket) => ticket.state.as_str(),
        None => match page.sale.state {
            SaleState::SoldOut => "sold_out",
            SaleState::Closed => "closed",
            _ if page.sale.ends_at <= Utc::now() => "closed",
            _ => "none",
        },
    }
}

fn sale_body(
    context: &PageContext,
    page: &SalePage,
    notice: Option<&Notice>,
    sandbox: bool,
) -> Markup {
    let lang = context.lang;
    let sale = &page.sale;
    let (title, title_lang) = &page.title;
    // A refusal naming a field of the purchase form is shown next to it, while it is shown.
    let admitted = page
        .ticket
        .as_ref()
        .is_some_and(|t| t.state == TicketState::Admitted);
    let in_form = |notice: &&Notice| admitted && notice.field.as_deref().is_some_and(in_buy_form);
    let (form_notice, page_notice) = match notice {
        Some(notice) if in_form(&notice) => (Some(notice), None),
        other => (None, other),
    };
    html! {
        article.flash-sale {
            h1 lang=[title_lang.as_deref()] { (title) }
            p.price {
                (lang.tr("Sale price:", "Aktionspreis:", "Prix de vente flash :", "セール価格:")) " "
                @match &page.price {
                    Some(price) => strong { (lang.money(price)) },
                    None => span.hint { (lang.tr("not sold in your currency; choose another", "nicht in Ihrer Währung erhältlich; wählen Sie eine andere", "non vendu dans votre devise ; choisissez-en une autre", "お選びの通貨では販売していません。別の通貨を選んでください")) },
                }
            }
            p {
                (lang.tr("Units left:", "Verbleibende Stück:", "Articles restants :", "残り数量:")) " "
                strong #units-left { (sale.remaining) } " / " (sale.quantity)
                " · " (lang.tr("at most", "höchstens", "au plus", "お一人様")) " " (sale.per_shopper_limit) " "
                (lang.tr("per shopper", "pro Person", "par personne", "点まで"))
            }
            @if sale.state == SaleState::Scheduled && sale.starts_at > Utc::now() {
                p #countdown .countdown data-opens-at=(sale.starts_at.to_rfc3339()) aria-live="off" {
                    (lang.tr("Opens", "Öffnet", "Ouvre le", "開始")) " "
                    time datetime=(sale.starts_at.to_rfc3339()) { (lang.datetime(sale.starts_at)) }
                }
            } @else if !sale.state.is_over() {
                p #countdown .countdown {
                    (lang.tr("Open now, until", "Jetzt geöffnet, bis", "Ouverte jusqu’au", "開催中、終了:")) " "
                    time datetime=(sale.ends_at.to_rfc3339()) { (lang.datetime(sale.ends_at)) }
                }
            }
            div #flash-notice role="alert" {
                @if let Some(notice) = page_notice {
                    p.error data-field=[notice.field.as_deref()] { (notice.text) }
                }
            }
            (queue_section(context, page))
            (buy_form(context, page, form_notice, sandbox))
        }
    }
}

fn queue_section(context: &PageContext, page: &SalePage) -> Markup {
    let lang = context.lang;
    let sale = &page.sale;
    let state = shown_state(page);
    let ticket = page.ticket.as_ref();
    let position = ticket
        .filter(|t| t.state == TicketState::Waiting)
        .and_then(|t| t.position);
    let wait = ticket
        .filter(|t| t.state == TicketState::Waiting)
        .and_then(|t| t.estimated_wait_secs);
    html! {
        section #queue .queue data-sale=(sale.id) data-ticket=[ticket.map(|t| t.ticket)]
            data-words=(script_words(lang)) aria-labelledby="queue-heading" {
            h2 #queue-heading { (lang.tr("Queue", "Warteschlange", "File d’attente", "順番待ち")) }
            p #queue-state .queue-state data-state=(state) aria-live="polite" {
                strong { (state_words(lang, state)) }
            }
            p #queue-position aria-live="polite" {
                @if let Some(position) = position {
                    span #queue-place data-position=(position) { (position_words(lang).replace("{n}", &position.to_string())) }
                    @if let Some(wait) = wait {
                        " · " span #queue-wait data-wait=(wait) { (wait_words(lang).replace("{s}", &wait.to_string())) }
                    }
                }
            }
            @if ticket.is_none() && state == "none" {
                form.join method="post" action=(format!("/flash-sales/{}/queue", sale.id)) {
                    input type="hidden" name="csrf" value=(context.csrf);
                    button #join type="submit" { (lang.tr("Join the queue", "In die Warteschlange", "Rejoindre la file", "列に並ぶ")) }
                    p.hint { (lang.tr("You can join before the sale opens; places are kept in the order shoppers join.", "Sie können sich schon vor Beginn anstellen; die Reihenfolge ist die der Anmeldung.", "Vous pouvez rejoindre la file avant l’ouverture ; l’ordre d’arrivée est respecté.", "開始前から並べます。並んだ順に購入できます。")) }
                }
            }
            @if state == "waiting" {
                p.hint.js-hidden { a href=(format!("/flash-sales/{}", sale.id)) { (lang.tr("Refresh your place", "Platz aktualisieren", "Actualiser ma place", "順番を更新")) } }
            }
        }
    }
}

/// The purchase form's own fields: a refusal naming one is shown next to it.
const BUY_FIELDS: [&str; 8] = [
    "quantity",
    "shipping",
    "shipping.country",
    "shipping.option",
    "shipping.address",
    "email",
    "card_number",
    "region",
];

/// Whether a refusal names a field of the purchase form.
fn in_buy_form(field: &str) -> bool {
    BUY_FIELDS.contains(&field) || field.starts_with("shipping.address.")
}

fn buy_form(
    context: &PageContext,
    page: &SalePage,
    notice: Option<&Notice>,
    sandbox: bool,
) -> Markup {
    let lang = context.lang;
    let sale = &page.sale;
    let ticket = page.ticket.as_ref();
    let admitted = ticket.is_some_and(|t| t.state == TicketState::Admitted);
    let token = ticket
        .and_then(|t| t.admission_token.as_deref())
        .unwrap_or_default();
    // Only a waiting or admitted ticket may come to buy; flash.js shows the form on admission.
    if !ticket.is_some_and(|t| matches!(t.state, TicketState::Waiting | TicketState::Admitted)) {
        return html! {};
    }
    let error_for = |fields: &[&str]| {
        notice
            .filter(|n| n.field.as_deref().is_some_and(|f| fields.contains(&f)))
            .map(|n| n.text.as_str())
    };
    let field_error = |id: &str, error: Option<&str>| {
        html! { @if let Some(error) = error { p.error id=(format!("{id}-error")) { (error) } } }
    };
    let region = page.region.as_ref();
    let ships = region.is_some_and(|r| !r.details.shipping_options.is_empty());
    let guest = context.shopper.as_ref().is_none_or(|s| s.shopper.guest);
    let draft = notice.and_then(|n| n.draft.clone()).unwrap_or_default();
    let refused = notice.and_then(|n| Some((n.field.as_deref()?, n.text.as_str())));
    html! {
        form #buy-form .buy method="post" action=(format!("/flash-sales/{}/purchase", sale.id)) hidden[!admitted] {
            input type="hidden" name="csrf" value=(context.csrf);
            input type="hidden" name="idempotency_key" value=(Uuid::now_v7());
            input #admission-token type="hidden" name="admission_token" value=(token);
            h2 { (lang.tr("Buy", "Kaufen", "Acheter", "購入")) }
            @if let Some(expires) = ticket.and_then(|t| t.admission_expires_at) {
                p.hint #admission-expires { (lang.tr("Your turn lasts until", "Sie sind dran bis", "Votre tour dure jusqu’au", "購入期限:")) " " time datetime=(expires.to_rfc3339()) { (lang.datetime(expires)) } }
            }
            @let quantity_error = error_for(&["quantity"]);
            div.field {
                label for="quantity" { (lang.tr("Quantity", "Menge", "Quantité", "数量")) }
                input #quantity type="number" name="quantity" min="1" max=(sale.per_shopper_limit) value="1" required
                    aria-invalid=[quantity_error.map(|_| "true")] aria-describedby=[quantity_error.map(|_| "quantity-error")];
                (field_error("quantity", quantity_error))
            }
            @if let (true, Some(region)) = (ships, region) {
                (delivery::fields(lang, region, &draft, guest, refused))
                @let option_error = error_for(&["shipping.option"]);
                div.field {
                    label for="option" { (lang.tr("Shipping option", "Versandart", "Mode de livraison", "配送方法")) }
                    select #option name="option" required aria-invalid=[option_error.map(|_| "true")] aria-describedby=[option_error.map(|_| "option-error")] {
                        @for option in &region.details.shipping_options { option value=(option.id) { (option.name) " (" (option.carrier) ")" } }
                    }
                    (field_error("option", option_error))
                }
            }
            @let card_error = error_for(&["card_number", "region"]);
            div.field {
                label for="card_number" { (lang.tr("Card number", "Kartennummer", "Numéro de carte", "カード番号")) }
                input #card_number name="card_number" inputmode="numeric" autocomplete="cc-number" required
                    aria-invalid=[card_error.map(|_| "true")] aria-describedby=[card_error.map(|_| "card_number-error")];
                (field_error("card_number", card_error))
            }
            @if sandbox {
                p.hint { (lang.tr("Test cards:", "Testkarten:", "Cartes de test :", "テストカード:")) " "
                    @for (number, what) in test_cards(lang) { code { (number) } " (" (what) ") " } }
            }
            button #buy type="submit" disabled[page.price.is_none()] {
                (lang.tr("Buy now", "Jetzt kaufen", "Acheter maintenant", "今すぐ購入"))
                @if let Some(price) = &page.price { " · " (lang.money(price)) }
            }
        }
    }
}
