//! The seller's orders: the live feed of its parts of paid orders, newest first, each order's
//! detail, its fulfil and refund buttons, shipments by line and the returns' steps (through the
//! orders domain, scoped by seller).

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use uuid::Uuid;

use super::{console_page, console_path, done_at, open, open_form, words, Console, CsrfForm};
use crate::{
    error::Error,
    http::pages::{
        context::PageContext,
        i18n::query_value,
        layout::{encode, PageError},
    },
    orders::{self, fulfillments::ShipmentRequest, units::LineRequest, OrderStatus, SellerOrder},
    state::AppState,
};

/// Orders on one page of the feed.
const FEED_PAGE: i64 = 20;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/seller/orders").route(web::get().to(orders_page)))
        .service(web::resource("/seller/orders/{id}").route(web::get().to(order_page)))
        .service(web::resource("/seller/orders/{id}/fulfil").route(web::post().to(fulfil)))
        .service(web::resource("/seller/orders/{id}/refund").route(web::post().to(refund)))
        .service(web::resource("/seller/orders/{id}/shipments").route(web::post().to(ship)))
        .service(
            web::resource("/seller/orders/{id}/returns/{return_id}/{step}")
                .route(web::post().to(return_step)),
        );
}

/// `GET /seller/orders`: the feed, with `?cursor=` for older orders.
pub async fn orders_page(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    // A cursor that is not an order id shows the newest orders.
    let before = query_value(&request, "cursor").and_then(|raw| raw.parse::<Uuid>().ok());
    feed(&state, console, before).await
}

/// The seller's parts of paid orders, newest first; live on the first page.
pub(super) async fn feed(
    state: &AppState,
    console: Console,
    before: Option<Uuid>,
) -> Result<HttpResponse, PageError> {
    let client = state.pool.get().await?;
    let page = orders::seller_orders(&*client, console.seller.id, before, FEED_PAGE).await?;
    drop(client);
    let context = &console.context;
    let lang = context.lang;
    let title = lang.tr("Orders", "Bestellungen", "Commandes", "注文");
    let body = html! {
        h1 { (title) }
        p.hint { (lang.tr(
            "New orders appear here as they are paid.",
            "Neue Bestellungen erscheinen hier, sobald sie bezahlt sind.",
            "Les nouvelles commandes apparaissent ici dès leur paiement.",
            "新しい注文は支払い完了と同時にここに表示されます。")) }
        p #feed-announcer .visually-hidden aria-live="polite" {}
        ul #order-feed .feed data-live=[before.is_none().then_some("true")]
            aria-label=(lang.tr("Orders, newest first", "Bestellungen, neueste zuerst", "Commandes, les plus récentes d’abord", "注文（新しい順）")) {
            @for order in &page.orders { (order_row(context, order)) }
        }
        @if page.orders.is_empty() {
            p.empty #feed-empty { (lang.tr("No orders yet.", "Noch keine Bestellungen.", "Pas encore de commande.", "まだ注文はありません。")) }
        }
        @if let Some(next) = &page.next_cursor {
            nav.paging aria-label=(lang.tr("Pages", "Seiten", "Pages", "ページ")) {
                a rel="next" href=(format!("/seller/orders?cursor={}", encode(next))) { (lang.tr("Older orders →", "Ältere Bestellungen →", "Commandes plus anciennes →", "以前の注文 →")) }
            }
        }
    };
    let page = console_page(&console, title, body);
    Ok(console.context.render(StatusCode::OK, page))
}

/// One order of the feed: what was bought, when, its status, and the button to ship it.
fn order_row(context: &PageContext, order: &SellerOrder) -> Markup {
    let lang = context.lang;
    let href = format!("/seller/orders/{}", order.order_id);
    html! {
        li.card data-order=(order.order_id) data-status=(order.status) {
            p {
                a href=(href) { (lang.tr("Order", "Bestellung", "Commande", "注文")) " " code { (short_id(order.order_id)) } }
                " · " time datetime=(order.created_at.to_rfc3339()) { (lang.datetime(order.created_at)) }
                " · " strong.order-status { (crate::http::pages::cart::status_words(lang, order.status)) }
            }
            p.lines-summary {
                @for (i, line) in order.lines.iter().enumerate() {
                    @if i > 0 { br; }
                    (line.quantity) " × " (line.title) " " small { "(" (line.sku) ")" }
                }
            }
            p.price { (lang.money(&order.subtotal)) }
            @if order.status == OrderStatus::Paid {
                (action_form(context, order.order_id, "fulfil", "/seller/orders"))
            }
        }
    }
}

/// The last twelve hex digits of an order id: enough to tell orders apart at a glance.
fn short_id(id: Uuid) -> String {
    let simple = id.simple().to_string();
    simple[simple.len().saturating_sub(12)..].to_owned()
}

/// The fulfil or refund button of an order, coming back to `back`.
fn action_form(context: &PageContext, id: Uuid, action: &str, back: &str) -> Markup {
    let lang = context.lang;
    let (label, class) = if action == "fulfil" {
        (
            lang.tr(
                "Fulfil (mark shipped)",
                "Versenden (als versandt markieren)",
                "Expédier (marquer expédiée)",
                "発送済みにする",
            ),
            "",
        )
    } else {
        (
            lang.tr("Refund", "Erstatten", "Rembourser", "返金する"),
            "secondary",
        )
    };
    html! {
        form.inline method="post" action=(format!("/seller/orders/{id}/{action}")) {
            input type="hidden" name="csrf" value=(context.csrf);
            input type="hidden" name="back" value=(back);
            button type="submit" class=(class) data-action=(action) { (label) }
        }
    }
}

/// `GET /seller/orders/{id}`: the seller's part of one order; another seller's is 404.
pub async fn order_page(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    show_order(&state, console, id.into_inner(), None, StatusCode::OK).await
}

async fn show_order(
    state: &AppState,
    console: Console,
    id: Uuid,
    refused: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let client = state.pool.get().await?;
    let order = orders::seller_order(&*client, console.seller.id, id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    drop(client);
    let context = &console.context;
    let lang = context.lang;
    let title = lang.tr("Order", "Bestellung", "Commande", "注文");
    let here = format!("/seller/orders/{id}");
    let body = html! {
        p { a href="/seller/orders" { "← " (lang.tr("All orders", "Alle Bestellungen", "Toutes les commandes", "注文一覧")) } }
        h1 { (title) " " code { (short_id(id)) } }
        @if let Some(message) = &refused { p.error role="alert" { (message) } }
        p { (lang.tr("Order", "Bestellung", "Commande", "注文番号")) " " code { (id) } " · "
            time datetime=(order.created_at.to_rfc3339()) { (lang.datetime(order.created_at)) } }
        p.status { (lang.tr("Status:", "Status:", "Statut :", "状況:")) " "
            strong #order-status data-order=(id) data-status=(order.status) aria-live="polite" { (crate::http::pages::cart::status_words(lang, order.status)) } }
        table.lines {
            caption.visually-hidden { (lang.tr("Your items in this order", "Ihre Artikel in dieser Bestellung", "Vos articles dans cette commande", "この注文のあなたの商品")) }
            thead { tr {
                th scope="col" { (lang.tr("Item", "Artikel", "Article", "商品")) }
                th scope="col" { "SKU" }
                th scope="col" { (lang.tr("Quantity", "Menge", "Quantité", "数量")) }
                th scope="col" { (lang.tr("Unit price", "Stückpreis", "Prix unitaire", "単価")) }
                th scope="col" { (lang.tr("Total", "Gesamt", "Total", "合計")) }
            } }
            tbody {
                @for line in &order.lines {
                    tr {
                        th scope="row" { (line.title) }
                        td { code { (line.sku) } }
                        td { (line.quantity) }
                        td { (lang.money(&line.unit_price)) }
                        td { (lang.money(&line.line_total)) }
                    }
                }
            }
        }
        dl.totals {
            dt { (lang.tr("Your subtotal", "Ihre Zwischensumme", "Votre sous-total", "小計")) } dd { (lang.money(&order.subtotal)) }
            dt { (lang.tr("Tax", "Steuer", "TVA", "税")) } dd { (lang.money(&order.tax)) }
            @if let Some(shipping) = &order.shipping {
                dt { (lang.tr("Ship to", "Versand nach", "Livraison vers", "配送先")) } dd { (shipping.country) " · " (shipping.carrier) }
            }
        }
        (super::after_sale::section(context, &order))
        div #order-actions {
            @if matches!(order.status, OrderStatus::Paid | OrderStatus::PartiallyFulfilled) { (action_form(context, id, "fulfil", &here)) }
            @if matches!(order.status, OrderStatus::Paid | OrderStatus::PartiallyFulfilled | OrderStatus::Fulfilled) { (action_form(context, id, "refund", &here)) }
        }
    };
    let page = console_page(&console, title, body);
    Ok(console.context.render(status, page))
}

/// `POST /seller/orders/{id}/fulfil`.
pub async fn fulfil(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    change_order(&state, &request, id.into_inner(), &form, "fulfil").await
}

/// `POST /seller/orders/{id}/refund`.
pub async fn refund(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    change_order(&state, &request, id.into_inner(), &form, "refund").await
}

/// Fulfils or refunds the seller's part, then back to the page the button was on; a refusal
/// is shown on the order's page, in the page's language.
async fn change_order(
    state: &AppState,
    request: &HttpRequest,
    id: Uuid,
    form: &CsrfForm,
    action: &str,
) -> Result<HttpResponse, PageError> {
    let detail = format!("/seller/orders/{id}");
    let back = if form.back.is_empty() {
        detail.as_str()
    } else {
        console_path(&form.back)
    };
    let console = match open_form(request, state, &form.csrf, back).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let seller = console.seller.id;
    let (changed, done) = if action == "fulfil" {
        let request = orders::fulfillments::ShipmentRequest::default();
        let fulfilled = state.after_sale.ship(id, seller, request).await.map(drop);
        (fulfilled, "fulfilled")
    } else {
        let rest = orders::cancellations::PartRefund::Rest;
        let refunded = state.after_sale.refund_part(id, seller, rest, None).await;
        (refunded.map(drop), "refunded")
    };
    match changed {
        Ok(()) => Ok(console.context.redirect(&done_at(back, done))),
        Err(Error::NotFound(what)) => Err(Error::NotFound(what).into()),
        Err(error) if error.status_code().is_client_error() => {
            let message = words::refusal(console.context.lang, &error);
            let status = error.status_code();
            show_order(state, console, id, Some(message), status).await
        }
        Err(error) => Err(error.into()),
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
