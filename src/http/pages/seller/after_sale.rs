//! After the sale in the seller console: on an order's page, each line's progress, a shipment
//! form (carrier, tracking number, units per line), the shipments and refunds made, and the
//! shopper's returns with their approve, reject and receive buttons.

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use uuid::Uuid;

use super::{open_form, orders::show_order, words};
use crate::{
    error::Error,
    http::pages::{context::PageContext, layout::PageError},
    orders::{fulfillments::ShipmentRequest, units::LineRequest, SellerOrder},
    state::AppState,
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/seller/orders/{id}/shipments").route(web::post().to(ship)))
        .service(
            web::resource("/seller/orders/{id}/returns/{return_id}/{step}")
                .route(web::post().to(return_step)),
        );
}

/// The order page's part after the sale.
pub fn section(context: &PageContext, order: &SellerOrder) -> Markup {
    let lang = context.lang;
    let id = order.order_id;
    let open: Vec<(&str, u32)> = order
        .lines
        .iter()
        .map(|line| {
            let p = &line.progress;
            (
                line.sku.as_str(),
                line.quantity.saturating_sub(p.shipped + p.cancelled),
            )
        })
        .filter(|(_, units)| *units > 0)
        .collect();
    let after_sale = order.after_sale.as_ref();
    html! {
        @if !open.is_empty() {
            h2 { (lang.tr("Ship", "Versenden", "Expédier", "発送")) }
            form #shipment-form method="post" action=(format!("/seller/orders/{id}/shipments")) {
                input type="hidden" name="csrf" value=(context.csrf);
                label { (lang.tr("Carrier", "Versanddienst", "Transporteur", "配送業者")) " "
                    input type="text" name="carrier" maxlength="100" required; }
                label { (lang.tr("Tracking number", "Sendungsnummer", "Numéro de suivi", "追跡番号")) " "
                    input type="text" name="tracking_number" maxlength="100" required; }
                @for (sku, units) in &open {
                    label { code { (sku) } " "
                        select name=(format!("quantity.{sku}")) {
                            @for n in (0..=*units).rev() { option value=(n) { (n) } }
                        }
                    }
                }
                button type="submit" { (lang.tr("Record the shipment", "Sendung erfassen", "Enregistrer l’envoi", "発送を登録")) }
            }
        }
        @if let Some(after_sale) = after_sale {
            @if !after_sale.shipments.is_empty() {
                h2 { (lang.tr("Shipments", "Sendungen", "Envois", "発送")) }
                ul.shipments { @for shipment in &after_sale.shipments { li {
                    (lang.datetime(shipment.created_at)) ": "
                    @for (i, line) in shipment.lines.iter().enumerate() { @if i > 0 { ", " } (line.quantity) " × " code { (line.sku) } }
                    @if let (Some(carrier), Some(number)) = (&shipment.carrier, &shipment.tracking_number) {
                        " · " (carrier) " " code.tracking { (number) }
                    }
                } } }
            }
            @if !after_sale.refunds.is_empty() {
                h2 { (lang.tr("Refunds", "Erstattungen", "Remboursements", "返金")) }
                ul.refunds { @for refund in &after_sale.refunds { li {
                    (lang.datetime(refund.created_at)) ": " strong { (lang.money(&refund.amount)) } " · " (refund.kind.as_str())
                } } }
            }
            @if !after_sale.returns.is_empty() {
                h2 { (lang.tr("Returns", "Rücksendungen", "Retours", "返品")) }
                ul.returns { @for asked in &after_sale.returns { li data-return=(asked.id) {
                    @for (i, line) in asked.lines.iter().enumerate() {
                        @if i > 0 { "; " } (line.quantity) " × " code { (line.sku) } " — “" (line.reason) "”"
                    }
                    " · " strong { (asked.status.as_str()) }
                    @match asked.status.as_str() {
                        "requested" => {
                            (step_form(context, id, asked.id, "approve", lang.tr("Approve", "Genehmigen", "Accepter", "承認")))
                            (step_form(context, id, asked.id, "reject", lang.tr("Reject", "Ablehnen", "Refuser", "却下")))
                        }
                        "approved" => {
                            form.inline method="post" action=(format!("/seller/orders/{id}/returns/{}/receive", asked.id)) {
                                input type="hidden" name="csrf" value=(context.csrf);
                                label { input type="checkbox" name="restock" value="true" checked; " " (lang.tr("back in stock", "wieder auf Lager", "remettre en stock", "在庫に戻す")) }
                                button type="submit" data-action="receive" { (lang.tr("Received: refund", "Erhalten: erstatten", "Reçu : rembourser", "受領して返金")) }
                            }
                        }
                        _ => {}
                    }
                } } }
            }
        }
    }
}

fn step_form(context: &PageContext, order: Uuid, asked: Uuid, step: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/seller/orders/{order}/returns/{asked}/{step}")) {
            input type="hidden" name="csrf" value=(context.csrf);
            button type="submit" data-action=(step) { (label) }
        }
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_default()
}

/// `POST /seller/orders/{id}/shipments`: `carrier`, `tracking_number`, `quantity.<sku>`.
pub async fn ship(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let order_id = id.into_inner();
    let lines: Vec<LineRequest> = form
        .iter()
        .filter_map(|(key, value)| {
            let sku = key.strip_prefix("quantity.")?;
            let quantity: i32 = value.trim().parse().unwrap_or(-1);
            (quantity != 0).then(|| LineRequest {
                sku: sku.to_owned(),
                quantity,
            })
        })
        .collect();
    let shipped = ShipmentRequest::tracked(
        field(&form, "carrier"),
        field(&form, "tracking_number"),
        Some(lines),
    );
    change(&state, &request, order_id, field(&form, "csrf"), |seller| {
        let state = state.clone();
        async move {
            state
                .after_sale
                .ship(order_id, seller, shipped?)
                .await
                .map(drop)
        }
    })
    .await
}

/// `POST /seller/orders/{id}/returns/{return_id}/{step}`: approve, reject or receive.
pub async fn return_step(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(Uuid, Uuid, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (order_id, return_id, step) = path.into_inner();
    let restock = field(&form, "restock") == "true";
    change(&state, &request, order_id, field(&form, "csrf"), |seller| {
        let state = state.clone();
        async move {
            let after_sale = &state.after_sale;
            match step.as_str() {
                "approve" | "reject" => after_sale
                    .decide_return(order_id, seller, return_id, step == "approve")
                    .await
                    .map(drop),
                "receive" => after_sale
                    .receive_return(order_id, seller, return_id, restock)
                    .await
                    .map(drop),
                _ => Err(Error::NotFound("route")),
            }
        }
    })
    .await
}

/// Runs `change` for the signed-in seller, then back to the order; a refusal is shown on it.
async fn change<F, Fut>(
    state: &AppState,
    request: &HttpRequest,
    order_id: Uuid,
    csrf: &str,
    change: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce(Uuid) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let here = format!("/seller/orders/{order_id}");
    let console = match open_form(request, state, csrf, &here).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    match change(console.seller.id).await {
        Ok(()) => Ok(console.context.redirect(&here)),
        Err(Error::NotFound(what)) => Err(Error::NotFound(what).into()),
        Err(error) if error.status_code().is_client_error() => {
            let message = words::refusal(console.context.lang, &error);
            let status = error.status_code();
            show_order(state, console, order_id, Some(message), status).await
        }
        Err(error) => Err(error.into()),
    }
}
