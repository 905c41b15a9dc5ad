//! The shopper's order page (`/orders/{id}`): its status live, each line's progress, the
//! delivery address, shipments with their tracking, refunds and returns; a button to cancel it
//! while nothing has shipped, and a form to send shipped units back.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    cart::status_words,
    context::PageContext,
    i18n::Lang,
    layout::{self, PageError},
};
use crate::{
    error::Error,
    http::AppState,
    orders::{self, returns::ReturnLineRequest, OrderStatus, OrderView},
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/orders/{id}").route(web::get().to(show)))
        .service(web::resource("/orders/{id}/cancel").route(web::post().to(cancel)))
        .service(web::resource("/orders/{id}/returns").route(web::post().to(send_back)));
}

/// `GET /orders/{id}`: one of the signed-in shopper's orders.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    page(&state, context, id.into_inner(), None, StatusCode::OK).await
}

async fn page(
    state: &AppState,
    context: PageContext,
    order_id: Uuid,
    refusal: Option<(String, Option<String>)>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let Some(signed_in) = &context.shopper else {
        let next = layout::encode(&context.here);
        return Ok(context.redirect(&format!("/account?next={next}")));
    };
    let client = state.pool.get().await?;
    let order = orders::view(&*client, order_id, Some(signed_in.shopper.id))
        .await?
        .ok_or(Error::NotFound("order"))?;
    drop(client);
    let lang = context.lang;
    let title = lang.tr("Your order", "Ihre Bestellung", "Votre commande", "ご注文");
    let body = html! {
        h1 { (title) }
        p { (lang.tr("Order", "Bestellung", "Commande", "注文番号")) " " code { (order.id) } " · " (lang.datetime(order.created_at)) }
        p.status { (lang.tr("Status:", "Status:", "Statut :", "状況:")) " "
            strong #order-status data-order=(order.id) aria-live="polite" { (status_words(lang, order.status)) } }
        @if let Some((text, field)) = &refusal {
            p.error role="alert" data-field=[field.as_deref()] { (text) }
        }
        (lines(lang, &order))
        dl.totals {
            dt { (lang.tr("Tax", "Steuer", "TVA", "税")) } dd { (lang.money(&order.tax.amount)) }
            @if let Some(shipping) = &order.shipping { dt { (lang.tr("Shipping", "Versand", "Livraison", "送料")) } dd { (lang.money(&shipping.amount)) } }
            dt { (lang.tr("Total", "Gesamt", "Total", "合計")) } dd { strong { (lang.money(&order.total)) } }
            @if !order.payment.refunded.amount.is_zero() {
                dt { (lang.tr("Refunded", "Erstattet", "Remboursé", "返金額")) } dd { (lang.money(&order.payment.refunded)) }
            }
        }
        @if let Some(address) = &order.shipping_address {
            h2 { (lang.tr("Delivery address", "Lieferadresse", "Adresse de livraison", "お届け先")) }
            address.delivery {
                (address.name) br;
                (address.line1) br;
                @if let Some(line2) = &address.line2 { (line2) br; }
                (address.postal_code) " " (address.city) br;
                @if let Some(region) = &address.region { (region) br; }
                (address.country)
            }
        }
        (after_sale(lang, &order))
        (actions(&context, &order))
        p.hint { (lang.tr("Paid with the card ending in", "Bezahlt mit der Karte mit Endziffern", "Payé avec la carte se terminant par", "お支払いカード末尾")) " " (order.payment.card_last4) }
    };
    let page = layout::page(&context, title, body);
    Ok(context.render(status, page))
}

fn lines(lang: Lang, order: &OrderView) -> Markup {
    html! {
        table.lines {
            thead { tr {
                th scope="col" { (lang.tr("Item", "Artikel", "Article", "商品")) }
                th scope="col" { (lang.tr("Quantity", "Menge", "Quantité", "数量")) }
                th scope="col" { (lang.tr("Price", "Preis", "Prix", "価格")) }
                th scope="col" { (lang.tr("Progress", "Stand", "Suivi", "状況")) }
            } }
            tbody { @for line in &order.lines { tr {
                th scope="row" { (line.title) }
                td { (line.quantity) }
                td { (lang.money(&line.line_total)) }
                td.progress {
                    @if line.progress.shipped > 0 { (line.progress.shipped) " " (lang.tr("shipped", "versandt", "expédié(s)", "発送済み")) " " }
                    @if line.progress.cancelled > 0 { (line.progress.cancelled) " " (lang.tr("cancelled", "storniert", "annulé(s)", "キャンセル")) " " }
                    @if line.progress.returned > 0 { (line.progress.returned) " " (lang.tr("returned", "zurückgeschickt", "retourné(s)", "返品済み")) " " }
                    @if line.progress.refunded > 0 { (line.progress.refunded) " " (lang.tr("refunded", "erstattet", "remboursé(s)", "返金済み")) }
                }
            } } }
        }
    }
}

fn after_sale(lang: Lang, order: &OrderView) -> Markup {
    let shipments = &order.after_sale.shipments;
    let refunds = &order.after_sale.refunds;
    let returns = &order.after_sale.returns;
    html! {
        @if !shipments.is_empty() {
            h2 { (lang.tr("Shipments", "Sendungen", "Envois", "発送")) }
            ul.shipments { @for shipment in shipments { li {
                (lang.datetime(shipment.created_at)) ": "
                @for (i, line) in shipment.lines.iter().enumerate() { @if i > 0 { ", " } (line.quantity) " × " (line.sku) }
                @if let (Some(carrier), Some(number)) = (&shipment.carrier, &shipment.tracking_number) {
                    " · " (carrier) " " code.tracking { (number) }
                }
            } } }
        }
        @if !refunds.is_empty() {
            h2 { (lang.tr("Refunds", "Erstattungen", "Remboursements", "返金")) }
            ul.refunds { @for refund in refunds { li {
                (lang.datetime(refund.created_at)) ": " strong { (lang.money(&refund.amount)) }
            } } }
        }
        @if !returns.is_empty() {
            h2 { (lang.tr("Returns", "Rücksendungen", "Retours", "返品")) }
            ul.returns { @for asked in returns { li {
                @for (i, line) in asked.lines.iter().enumerate() { @if i > 0 { ", " } (line.quantity) " × " (line.sku) }
                " · " (return_words(lang, asked.status.as_str()))
            } } }
        }
    }
}

fn return_words(lang: Lang, status: &str) -> &'static str {
    match status {
        "requested" => lang.tr("asked for", "angefragt", "demandé", "申請中"),
        "approved" => lang.tr(
            "approved: please send it",
            "genehmigt: bitte zurücksenden",
            "accepté : à renvoyer",
            "承認済み: 返送してください",
        ),
        "rejected" => lang.tr(
            "declined by the seller",
            "vom Verkäufer abgelehnt",
            "refusé par le vendeur",
            "出品者が却下",
        ),
        _ => lang.tr(
            "received and refunded",
            "erhalten und erstattet",
            "reçu et remboursé",
            "受領・返金済み",
        ),
    }
}

/// Units of a line that may still be sent back: shipped, not refunded, not in an open return.
fn returnable(order: &OrderView, index: usize) -> u32 {
    let line = &order.lines[index];
    let progress = &line.progress;
    let kept = progress
        .shipped
        .saturating_sub(progress.refunded.saturating_sub(progress.cancelled));
    let open: u32 = order
        .after_sale
        .returns
        .iter()
        .filter(|asked| matches!(asked.status.as_str(), "requested" | "approved"))
        .flat_map(|asked| &asked.lines)
        .filter(|returned| returned.sku == line.sku)
        .map(|returned| returned.quantity)
        .sum();
    kept.saturating_sub(open)
}

fn actions(context: &PageContext, order: &OrderView) -> Markup {
    let lang = context.lang;
    let nothing_shipped = order.lines.iter().all(|line| line.progress.shipped == 0);
    let cancellable = order.status == OrderStatus::Paid && nothing_shipped;
    let returnable: Vec<(usize, u32)> = (0..order.lines.len())
        .map(|index| (index, returnable(order, index)))
        .filter(|(_, units)| *units > 0)
        .collect();
    html! {
        @if cancellable {
            form.inline method="post" action=(format!("/orders/{}/cancel", order.id)) {
                input type="hidden" name="csrf" value=(context.csrf);
                button #cancel-order type="submit" { (lang.tr("Cancel this order", "Diese Bestellung stornieren", "Annuler cette commande", "この注文をキャンセル")) }
            }
        }
        @if !returnable.is_empty() {
            h2 { (lang.tr("Send items back", "Artikel zurücksenden", "Renvoyer des articles", "返品する")) }
            form #return-form method="post" action=(format!("/orders/{}/returns", order.id)) {
                input type="hidden" name="csrf" value=(context.csrf);
                @for (index, units) in &returnable {
                    @let line = &order.lines[*index];
                    label { (line.title) " (" (line.sku) ") "
                        select name=(format!("quantity.{}", line.sku)) {
                            @for n in 0..=*units { option value=(n) { (n) } }
                        }
                    }
                }
                label { (lang.tr("Why?", "Warum?", "Pourquoi ?", "理由")) " "
                    input type="text" name="reason" maxlength="500" required;
                }
                button type="submit" { (lang.tr("Ask to return", "Rücksendung anfragen", "Demander le retour", "返品を申請")) }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// `POST /orders/{id}/cancel`: cancels the order, then shows it (or why it could not be).
pub async fn cancel(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let order_id = id.into_inner();
    let shopper = shopper_of(&context)?;
    let cancelled = state.after_sale.cancel_order(order_id, shopper).await;
    answer(&state, context, order_id, cancelled.map(drop)).await
}

/// `POST /orders/{id}/returns`: `quantity.<sku>` per line and one `reason`.
pub async fn send_back(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_default()
    };
    context.check_csrf(&request, field("csrf"))?;
    let order_id = id.into_inner();
    let shopper = shopper_of(&context)?;
    let reason = field("reason").to_owned();
    let mut lines = Vec::new();
    for (key, value) in form.iter() {
        let Some(sku) = key.strip_prefix("quantity.") else {
            continue;
        };
        let quantity: i32 = value.trim().parse().unwrap_or(-1);
        if quantity != 0 {
            lines.push(ReturnLineRequest {
                sku: sku.to_owned(),
                quantity,
                reason: reason.clone(),
            });
        }
    }
    let asked = state
        .after_sale
        .request_return(order_id, shopper, lines)
        .await;
    answer(&state, context, order_id, asked.map(drop)).await
}

fn shopper_of(context: &PageContext) -> Result<Uuid, Error> {
    context
        .shopper
        .as_ref()
        .map(|signed_in| signed_in.shopper.id)
        .ok_or(Error::Unauthorized("sign in first"))
}

/// Back to the order after a change; a refusal is shown on it, in the page's language.
async fn answer(
    state: &AppState,
    context: PageContext,
    order_id: Uuid,
    changed: Result<(), Error>,
) -> Result<HttpResponse, PageError> {
    match changed {
        Ok(()) => Ok(context.redirect(&format!("/orders/{order_id}"))),
        Err(Error::NotFound(what)) => Err(Error::NotFound(what).into()),
        Err(error) if error.status_code().is_client_error() => {
            let text = super::cart::refusal(context.lang, &error).text;
            let field = error.field().map(str::to_owned);
            let status = error.status_code();
            page(state, context, order_id, Some((text, field)), status).await
        }
        Err(error) => Err(error.into()),
    }
}
