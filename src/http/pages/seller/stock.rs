//! Stock of one of the seller's SKUs: set it to a count, adjust it by a delta with a reason,
//! and read the ledger of every change, through the inventory domain.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::html;
use serde::Deserialize;

use super::{console_page, done_at, field_in, open, open_form, Console, Refusals};
use crate::{
    error::{Code, Error},
    http::pages::layout::{encode, PageError},
    inventory,
    state::AppState,
};

/// Ledger entries shown.
const LEDGER_PAGE: i64 = 50;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/seller/stock/{sku}").route(web::get().to(show)))
        .service(web::resource("/seller/stock/{sku}/set").route(web::post().to(set)))
        .service(web::resource("/seller/stock/{sku}/adjust").route(web::post().to(adjust)));
}

#[derive(Debug, Default, Deserialize)]
pub struct StockForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    stock_on_hand: String,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    reason: String,
}

/// Which of the page's two forms a refusal belongs to, and the values typed in it.
struct Posted<'a> {
    form: &'a str,
    values: &'a StockForm,
    refusals: Refusals,
}

/// `GET /seller/stock/{sku}`.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    sku: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    stock_page(&state, console, &sku, None, StatusCode::OK).await
}

async fn stock_page(
    state: &AppState,
    console: Console,
    sku: &str,
    posted: Option<Posted<'_>>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let client = state.pool.get().await?;
    let ledger = inventory::ledger(&*client, console.seller.id, sku, LEDGER_PAGE).await?;
    // What shoppers can buy now; none while the product is off the storefront.
    let available = match inventory::availability(&*client, sku).await {
        Ok(availability) => Some(availability.available),
        Err(Error::NotFound(_)) => None,
        Err(error) => return Err(error.into()),
    };
    drop(client);
    let context = &console.context;
    let lang = context.lang;
    let on_hand = ledger.first().map(|entry| entry.stock_after).unwrap_or(0);
    let path = format!("/seller/stock/{}", encode(sku));
    let empty = Refusals::default();
    let refusals_of = |form: &str| {
        posted
            .as_ref()
            .filter(|p| p.form == form)
            .map_or(&empty, |p| &p.refusals)
    };
    let value_of = |form: &str, pick: fn(&StockForm) -> &str| {
        posted
            .as_ref()
            .filter(|p| p.form == form)
            .map_or("", |p| pick(p.values))
    };
    let title = lang.tr("Stock", "Bestand", "Stock", "在庫");
    let body = html! {
        p { a href="/seller/products" { "← " (lang.tr("All products", "Alle Produkte", "Tous les produits", "商品一覧")) } }
        h1 { (title) " " code { (sku) } }
        p.status { (lang.tr("On hand:", "Bestand:", "En stock :", "在庫数:")) " " strong #stock-on-hand { (on_hand) }
            @if let Some(available) = available {
                " · " (lang.tr("shoppers can buy now:", "jetzt kaufbar:", "achetables maintenant :", "現在購入可能:")) " " strong #stock-available { (available) }
            } @else {
                " · " (lang.tr("not on the storefront", "nicht im Shop", "absent de la boutique", "ストア非掲載")) }
        }
        div.two {
            form.stock-change method="post" action=(format!("{path}/set")) {
                h2 { (lang.tr("Set a count", "Bestand setzen", "Définir un compte", "在庫数を設定")) }
                input type="hidden" name="csrf" value=(context.csrf);
                (refusals_of("set").summary())
                (field_in("set-", "stock_on_hand", lang.tr("Units on hand", "Einheiten auf Lager", "Unités en stock", "在庫数"), ("number",
                    value_of("set", |v| &v.stock_on_hand)), refusals_of("set"), None))
                (field_in("set-", "reason", lang.tr("Reason (optional)", "Grund (optional)", "Motif (facultatif)", "理由（任意）"), ("text",
                    value_of("set", |v| &v.reason)), refusals_of("set"),
                    Some(lang.tr("e.g. stock-take", "z. B. Inventur", "ex. inventaire", "例: 棚卸し"))))
                button type="submit" { (lang.tr("Set stock", "Bestand setzen", "Définir le stock", "設定する")) }
            }
            form.stock-change method="post" action=(format!("{path}/adjust")) {
                h2 { (lang.tr("Adjust by", "Anpassen um", "Ajuster de", "増減")) }
                input type="hidden" name="csrf" value=(context.csrf);
                (refusals_of("adjust").summary())
                (field_in("adjust-", "delta", lang.tr("Units to add (negative to remove)", "Einheiten hinzufügen (negativ: entfernen)", "Unités à ajouter (négatif pour retirer)", "追加する数（減らす場合は負の数）"), ("number",
                    value_of("adjust", |v| &v.delta)), refusals_of("adjust"), None))
                (field_in("adjust-", "reason", lang.tr("Reason", "Grund", "Motif", "理由"), ("text",
                    value_of("adjust", |v| &v.reason)), refusals_of("adjust"),
                    Some(lang.tr("e.g. damaged in transit", "z. B. beim Transport beschädigt", "ex. abîmé pendant le transport", "例: 輸送中の破損"))))
                button type="submit" { (lang.tr("Adjust stock", "Bestand anpassen", "Ajuster le stock", "調整する")) }
            }
        }
        p { a href=(format!("/seller/flash-sales?sku={}", encode(sku))) { (lang.tr("Schedule a flash sale of this SKU", "Blitzverkauf dieser SKU planen", "Programmer une vente flash de ce SKU", "このSKUのフラッシュセールを登録")) } }
        h2 #ledger-heading { (lang.tr("Ledger", "Bestandsbuch", "Journal", "在庫履歴")) }
        table.lines aria-labelledby="ledger-heading" {
            thead { tr {
                th scope="col" { (lang.tr("When", "Wann", "Quand", "日時")) }
                th scope="col" { (lang.tr("Change", "Änderung", "Variation", "増減")) }
                th scope="col" { (lang.tr("On hand after", "Bestand danach", "Stock après", "変更後の在庫")) }
                th scope="col" { (lang.tr("Reason", "Grund", "Motif", "理由")) }
            } }
            tbody {
                @for entry in &ledger {
                    tr {
                        td { time datetime=(entry.created_at.to_rfc3339()) { (lang.datetime(entry.created_at)) } }
                        td { @if entry.delta > 0 { "+" } (entry.delta) }
                        td { (entry.stock_after) }
                        td { (entry.reason) }
                    }
                }
            }
        }
    };
    let page = console_page(&console, title, body);
    Ok(console.context.render(status, page))
}

/// `POST /seller/stock/{sku}/set`.
pub async fn set(
    state: web::Data<AppState>,
    request: HttpRequest,
    sku: web::Path<String>,
    form: web::Form<StockForm>,
) -> Result<HttpResponse, PageError> {
    change(&state, &request, &sku, &form, "set").await
}

/// `POST /seller/stock/{sku}/adjust`.
pub async fn adjust(
    state: web::Data<AppState>,
    request: HttpRequest,
    sku: web::Path<String>,
    form: web::Form<StockForm>,
) -> Result<HttpResponse, PageError> {
    change(&state, &request, &sku, &form, "adjust").await
}

fn number<T: std::str::FromStr>(field: &str, raw: &str) -> Result<T, Error> {
    raw.trim()
        .parse::<T>()
        .map_err(|_| Error::invalid_field(Code::InvalidField, field, "must be a whole number"))
}

async fn change(
    state: &AppState,
    request: &HttpRequest,
    sku: &str,
    form: &StockForm,
    which: &str,
) -> Result<HttpResponse, PageError> {
    let back = format!("/seller/stock/{}", encode(sku));
    let console = match open_form(request, state, &form.csrf, &back).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let (pool, counters, seller) = (&state.pool, &state.counters, console.seller.id);
    let changed = if which == "set" {
        async {
            let reason = Some(form.reason.trim()).filter(|r| !r.is_empty());
            let reason = inventory::parse_reason(reason, "stock set")?;
            let count: u32 = number("stock_on_hand", &form.stock_on_hand)?;
            inventory::set_stock(pool, counters, seller, sku, count, &reason).await
        }
        .await
    } else {
        async {
            let delta: i32 = number("delta", &form.delta)?;
            let reason = inventory::parse_reason(Some(&form.reason), "")?;
            inventory::adjust_stock(pool, counters, seller, sku, delta, &reason).await
        }
        .await
    };
    match changed {
        Ok(_) => {
            let done = if which == "set" {
                "stock_set"
            } else {
                "stock_adjusted"
            };
            Ok(console.context.redirect(&done_at(&back, done)))
        }
        Err(Error::NotFound(what)) => Err(Error::NotFound(what).into()),
        Err(error) if error.status_code().is_client_error() => {
            let message = super::words::refusal(console.context.lang, &error);
            let mut refusals = Refusals::default();
            match error.field() {
                Some(name @ ("stock_on_hand" | "delta" | "reason")) => {
                    refusals.by_field.push((name.to_owned(), message))
                }
                _ => refusals.general.push(message),
            }
            let posted = Posted {
                form: which,
                values: form,
                refusals,
            };
            let status = error.status_code();
            stock_page(state, console, sku, Some(posted), status).await
        }
        Err(error) => Err(error.into()),
    }
}
