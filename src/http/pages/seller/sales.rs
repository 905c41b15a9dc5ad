//! The seller's flash sales: the form to schedule one, the list, and the live view of a sale
//! (its state, queue, admissions, units sold and left), which `seller.js` refreshes from
//! this page while the sale runs.

use std::collections::BTreeMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use chrono::{DateTime, Duration, NaiveDateTime, Timelike, Utc};
use maud::{html, Markup};
use uuid::Uuid;

use super::{console_page, done_at, field, open, open_form, words, Console, Refusals};
use crate::{
    error::{Code, Error},
    flash_sales::{self, NewSale, SaleProgress},
    http::pages::{i18n::query_value, layout::PageError},
    money::Price,
    state::AppState,
};

/// Sales shown in the list.
const LIST_SIZE: i64 = 50;
/// How the form's date inputs write a moment (`datetime-local`, read as UTC).
const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M";

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/seller/flash-sales")
                .route(web::get().to(list))
                .route(web::post().to(schedule)),
        )
        .service(web::resource("/seller/flash-sales/{id}").route(web::get().to(show)));
}

/// The schedule form's values, as typed.
#[derive(Debug, Default, Clone)]
struct SaleForm {
    sku: String,
    quantity: String,
    prices: BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    per_shopper_limit: String,
}

impl SaleForm {
    /// A sale starting at the next full quarter hour (at least ten minutes away), for an hour.
    fn blank(sku: String) -> Self {
        let soon = Utc::now() + Duration::minutes(10);
        let start = soon
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .map(|t| t + Duration::minutes(i64::from((15 - t.minute() % 15) % 15)))
            .unwrap_or(soon);
        Self {
            sku,
            quantity: "10".into(),
            prices: BTreeMap::new(),
            starts_at: start.format(LOCAL_FORMAT).to_string(),
            ends_at: (start + Duration::hours(1))
                .format(LOCAL_FORMAT)
                .to_string(),
            per_shopper_limit: "1".into(),
        }
    }

    fn posted(pairs: &[(String, String)]) -> Self {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        Self {
            sku: get("sku"),
            quantity: get("quantity"),
            prices: pairs
                .iter()
                .filter_map(|(key, value)| {
                    let code = key.strip_prefix("prices.")?;
                    Some((code.to_owned(), value.clone()))
                })
                .collect(),
            starts_at: get("starts_at"),
            ends_at: get("ends_at"),
            per_shopper_limit: get("per_shopper_limit"),
        }
    }

    /// The sale the catalog of flash sales is asked to schedule.
    fn sale(&self, state: &AppState) -> Result<NewSale, Error> {
        let quantity = whole("quantity", &self.quantity)?;
        let limit = whole("per_shopper_limit", &self.per_shopper_limit)?;
        let window = (
            moment("starts_at", &self.starts_at)?,
            moment("ends_at", &self.ends_at)?,
        );
        let prices: BTreeMap<String, String> = self
            .prices
            .iter()
            .filter(|(_, amount)| !amount.trim().is_empty())
            .map(|(code, amount)| (code.clone(), amount.trim().to_owned()))
            .collect();
        NewSale::parse(
            &state.pricing,
            self.sku.trim(),
            quantity,
            &prices,
            window,
            limit,
        )
    }
}

fn whole(field: &str, raw: &str) -> Result<i64, Error> {
    raw.trim()
        .parse()
        .map_err(|_| Error::invalid_field(Code::InvalidField, field, "must be a whole number"))
}

/// A `datetime-local` value, read as UTC.
fn moment(field: &str, raw: &str) -> Result<DateTime<Utc>, Error> {
    let raw = raw.trim();
    NaiveDateTime::parse_from_str(raw, LOCAL_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .map(|naive| naive.and_utc())
        .map_err(|_| {
            Error::invalid_field(
                Code::InvalidWindow,
                field,
                "must be a date and time such as 2026-12-24T18:00",
            )
        })
}

/// `GET /seller/flash-sales`: the schedule form (`?sku=` fills it in) and the seller's sales.
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let form = SaleForm::blank(query_value(&request, "sku").unwrap_or_default());
    list_page(&state, console, &form, &Refusals::default(), StatusCode::OK).await
}

async fn list_page(
    state: &AppState,
    console: Console,
    form: &SaleForm,
    refusals: &Refusals,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let client = state.pool.get().await?;
    let sales = flash_sales::list_own(&*client, console.seller.id, LIST_SIZE).await?;
    drop(client);
    let lang = console.context.lang;
    let title = lang.tr(
        "Flash sales",
        "Blitzverkäufe",
        "Ventes flash",
        "フラッシュセール",
    );
    let body = html! {
        h1 { (title) }
        (schedule_form(state, &console, form, refusals))
        h2 #sales-heading { (lang.tr("Your sales", "Ihre Verkäufe", "Vos ventes", "あなたのセール")) }
        @if sales.is_empty() {
            p.empty { (lang.tr("No flash sales yet.", "Noch keine Blitzverkäufe.", "Pas encore de vente flash.", "まだフラッシュセールはありません。")) }
        } @else {
            table.lines aria-labelledby="sales-heading" {
                thead { tr {
                    th scope="col" { "SKU" }
                    th scope="col" { (lang.tr("State", "Zustand", "État", "状態")) }
                    th scope="col" { (lang.tr("Starts", "Beginn", "Début", "開始")) }
                    th scope="col" { (lang.tr("Left of", "Übrig von", "Restant sur", "残り／数量")) }
                } }
                tbody {
                    @for sale in &sales {
                        tr {
                            th scope="row" { a href=(format!("/seller/flash-sales/{}", sale.id)) { code { (sale.sku) } } }
                            td { (words::sale_state(lang, sale.state)) }
                            td { time datetime=(sale.starts_at.to_rfc3339()) { (lang.datetime(sale.starts_at)) } }
                            td { (sale.remaining) " / " (sale.quantity) }
                        }
                    }
                }
            }
        }
    };
    let page = console_page(&console, title, body);
    Ok(console.context.render(status, page))
}

fn schedule_form(
    state: &AppState,
    console: &Console,
    form: &SaleForm,
    refusals: &Refusals,
) -> Markup {
    let context = &console.context;
    let lang = context.lang;
    html! {
        form.sale method="post" action="/seller/flash-sales" novalidate {
            h2 { (lang.tr("Schedule a flash sale", "Blitzverkauf planen", "Programmer une vente flash", "フラッシュセールを登録")) }
            input type="hidden" name="csrf" value=(context.csrf);
            (refusals.summary())
            (field("sku", "SKU", "text", &form.sku, refusals, Some(lang.tr(
                "One of your products' SKUs; its units leave normal stock when the sale opens.",
                "Eine SKU Ihrer Produkte; ihre Einheiten verlassen den normalen Bestand, wenn der Verkauf beginnt.",
                "Un SKU de vos produits ; ses unités quittent le stock normal à l’ouverture de la vente.",
                "あなたの商品のSKU。セール開始時に通常在庫から引き当てられます。"))))
            (field("quantity", lang.tr("Units for the sale", "Einheiten im Verkauf", "Unités en vente", "セール数量"), "number", &form.quantity, refusals, None))
            (field("per_shopper_limit", lang.tr("Most units per shopper", "Höchstens pro Kunde", "Maximum par client", "1人あたりの上限"), "number", &form.per_shopper_limit, refusals, None))
            fieldset {
                legend { (lang.tr("Sale price (at least one currency)", "Verkaufspreis (mindestens eine Währung)", "Prix de vente (au moins une devise)", "セール価格（1通貨以上）")) }
                @if let Some(error) = refusals.of("prices") { p.error role="alert" { (error) } }
                div.two {
                    @for currency in state.pricing.fx.currencies() {
                        @let name = format!("prices.{}", currency.code());
                        (field(&name, currency.code(), "text", form.prices.get(currency.code()).map(String::as_str).unwrap_or_default(), refusals, None))
                    }
                }
            }
            (field("starts_at", lang.tr("Starts (UTC)", "Beginn (UTC)", "Début (UTC)", "開始（UTC）"), "datetime-local", &form.starts_at, refusals, None))
            (field("ends_at", lang.tr("Ends (UTC)", "Ende (UTC)", "Fin (UTC)", "終了（UTC）"), "datetime-local", &form.ends_at, refusals, None))
            button type="submit" { (lang.tr("Schedule", "Planen", "Programmer", "登録する")) }
        }
    }
}

/// `POST /seller/flash-sales`: schedules the sale and shows it, or the form with the
/// refusal next to its input.
pub async fn schedule(
    state: web::Data<AppState>,
    request: HttpRequest,
    posted: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let csrf = posted
        .iter()
        .find(|(name, _)| name == "csrf")
        .map_or("", |(_, value)| value.as_str());
    let console = match open_form(&request, &state, csrf, "/seller/flash-sales").await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let form = SaleForm::posted(&posted);
    let scheduled = async {
        let sale = form.sale(&state)?;
        let mut client = state.pool.get().await?;
        flash_sales::create(&mut client, console.seller.id, &sale).await
    }
    .await;
    match scheduled {
        Ok(view) => {
            let to = done_at(&format!("/seller/flash-sales/{}", view.id), "scheduled");
            Ok(console.context.redirect(&to))
        }
        Err(error) if error.status_code().is_client_error() => {
            let message = words::refusal(console.context.lang, &error);
            let mut refusals = Refusals::default();
            match error.field() {
                Some(name) => refusals.by_field.push((name.to_owned(), message)),
                None => refusals.general.push(message),
            }
            let status = error.status_code();
            list_page(&state, console, &form, &refusals, status).await
        }
        Err(error) => Err(error.into()),
    }
}

/// `GET /seller/flash-sales/{id}`: one of the seller's sales as it runs; another seller's
/// is 404.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let client = state.pool.get().await?;
    let progress = flash_sales::progress(&*client, console.seller.id, id.into_inner()).await?;
    drop(client);
    let lang = console.context.lang;
    let title = lang.tr(
        "Flash sale",
        "Blitzverkauf",
        "Vente flash",
        "フラッシュセール",
    );
    let sale = &progress.sale;
    let body = html! {
        p { a href="/seller/flash-sales" { "← " (lang.tr("All flash sales", "Alle Blitzverkäufe", "Toutes les ventes flash", "セール一覧")) } }
        h1 { (title) " " code { (sale.sku) } }
        p {
            time datetime=(sale.starts_at.to_rfc3339()) { (lang.datetime(sale.starts_at)) }
            " – "
            time datetime=(sale.ends_at.to_rfc3339()) { (lang.datetime(sale.ends_at)) }
        }
        p { a href=(format!("/flash-sales/{}", sale.id)) { (lang.tr("The sale's page for shoppers", "Die Seite des Verkaufs für Kunden", "La page de la vente pour les clients", "購入者向けのセールページ")) } }
        (progress_view(&console, &progress))
        h2 { (lang.tr("Sale prices", "Verkaufspreise", "Prix de vente", "セール価格")) }
        ul {
            @for (code, amount) in &sale.prices {
                li { (sale_price(lang, code, amount)) }
            }
        }
        p.hint { (lang.tr("Most units per shopper:", "Höchstens pro Kunde:", "Maximum par client :", "1人あたりの上限:")) " " (sale.per_shopper_limit) }
    };
    let page = console_page(&console, title, body);
    Ok(console.context.render(StatusCode::OK, page))
}

fn sale_price(lang: crate::http::pages::i18n::Lang, code: &str, amount: &str) -> String {
    let currency = crate::money::Currency::from_code(code.trim());
    match (currency, amount.parse()) {
        (Some(currency), Ok(amount)) => lang.money(&Price {
            amount: currency.round(amount),
            currency: currency.code(),
            converted: false,
        }),
        _ => format!("{code} {amount}"),
    }
}

/// The figures `seller.js` refreshes while the sale runs (`data-live`).
fn progress_view(console: &Console, progress: &SaleProgress) -> Markup {
    let lang = console.context.lang;
    let sale = &progress.sale;
    html! {
        section #sale-progress aria-labelledby="progress-heading"
            data-live=[(!sale.state.is_over()).then_some("true")] {
            h2 #progress-heading { (lang.tr("Now", "Jetzt", "En ce moment", "現在")) }
            dl.totals aria-live="polite" {
                dt { (lang.tr("State", "Zustand", "État", "状態")) }
                dd #sale-state data-state=(sale.state) { strong { (words::sale_state(lang, sale.state)) } }
                dt { (lang.tr("In the queue", "In der Warteschlange", "Dans la file", "待機中")) }
                dd #sale-waiting { (progress.waiting) }
                dt { (lang.tr("Admitted", "Zugelassen", "Admis", "入場済み")) }
                dd #sale-admitted { (progress.admitted) }
                dt { (lang.tr("Sold", "Verkauft", "Vendus", "販売数")) }
                dd #sale-sold { (progress.sold) }
                dt { (lang.tr("Remaining", "Übrig", "Restants", "残り")) }
                dd #sale-remaining { (sale.remaining) " / " (sale.quantity) }
            }
        }
    }
}
