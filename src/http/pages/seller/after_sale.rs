//! After the sale in the seller console, as the order's page shows it: a shipment form
//! (carrier, tracking number, units per line), the shipments and refunds made, and the
//! shopper's returns with their approve, reject and receive buttons (handled in `orders`).

use maud::{html, Markup};
use uuid::Uuid;

use crate::{http::pages::context::PageContext, orders::SellerOrder};

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
