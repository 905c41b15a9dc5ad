//! The seller's products: the list (archived ones too, with stock), archive and restore, and
//! the forms to create and edit a product, through the catalog's service.

use std::collections::BTreeMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use uuid::Uuid;

use super::{
    console_page, done_at, open, open_form,
    product_form::ProductForm,
    product_view::{self, FormFrame},
    Console, CsrfForm, Refusals,
};
use crate::{
    catalog::{self, ProductRecord},
    error::Error,
    http::pages::{
        i18n::{query_value, Lang},
        layout::{encode, PageError},
    },
    money::Currency,
    state::AppState,
};

/// Products on one page of the list.
const LIST_PAGE: i64 = 50;
/// Largest product form accepted: four languages of long descriptions fit.
const MAX_FORM_BYTES: usize = 256 * 1024;

pub fn configure(config: &mut web::ServiceConfig) {
    let form_limit = || web::FormConfig::default().limit(MAX_FORM_BYTES);
    config
        .service(web::resource("/seller/products").route(web::get().to(list)))
        .service(
            web::resource("/seller/products/new")
                .app_data(form_limit())
                .route(web::get().to(new_form))
                .route(web::post().to(create)),
        )
        .service(
            web::resource("/seller/products/{id}")
                .app_data(form_limit())
                .route(web::get().to(edit_form))
                .route(web::post().to(update)),
        )
        .service(web::resource("/seller/products/{id}/archive").route(web::post().to(archive)))
        .service(web::resource("/seller/products/{id}/restore").route(web::post().to(restore)));
}

/// A product's title in the seller's language, else in its default one.
fn title_of(record: &ProductRecord, lang: Lang) -> String {
    record
        .content
        .get(lang.tag())
        .or_else(|| record.content.get(&record.default_locale))
        .or_else(|| record.content.values().next())
        .map(|content| content.title.clone())
        .unwrap_or_default()
}

/// `GET /seller/products`: the seller's products, newest first, with `?cursor=` for older.
pub async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let before = query_value(&request, "cursor").and_then(|raw| raw.parse::<Uuid>().ok());
    let client = state.pool.get().await?;
    let products = catalog::list_own(&*client, console.seller.id, before, LIST_PAGE).await?;
    drop(client);
    let next = (products.len() as i64 == LIST_PAGE)
        .then(|| products.last().map(|p| p.id))
        .flatten();
    let context = &console.context;
    let lang = context.lang;
    let title = lang.tr("Products", "Produkte", "Produits", "商品");
    let body = html! {
        h1 { (title) }
        p { a href="/seller/products/new" { (lang.tr("New product", "Neues Produkt", "Nouveau produit", "新しい商品")) } }
        @if products.is_empty() {
            p.empty { (lang.tr("No products yet.", "Noch keine Produkte.", "Pas encore de produit.", "まだ商品はありません。")) }
        } @else {
            table.lines #products {
                caption.visually-hidden { (title) }
                thead { tr {
                    th scope="col" { (lang.tr("Product", "Produkt", "Produit", "商品")) }
                    th scope="col" { (lang.tr("Status", "Status", "Statut", "状態")) }
                    th scope="col" { (lang.tr("Variants and stock on hand", "Varianten und Bestand", "Variantes et stock", "バリエーションと在庫")) }
                    th scope="col" { (lang.tr("Actions", "Aktionen", "Actions", "操作")) }
                } }
                tbody {
                    @for product in &products { (product_row(&console, product)) }
                }
            }
        }
        @if let Some(next) = next {
            nav.paging aria-label=(lang.tr("Pages", "Seiten", "Pages", "ページ")) {
                a rel="next" href=(format!("/seller/products?cursor={next}")) { (lang.tr("Older products →", "Ältere Produkte →", "Produits plus anciens →", "以前の商品 →")) }
            }
        }
    };
    let page = console_page(&console, title, body);
    Ok(console.context.render(StatusCode::OK, page))
}

fn product_row(console: &Console, product: &ProductRecord) -> Markup {
    let context = &console.context;
    let lang = context.lang;
    let title = title_of(product, lang);
    let archived = product.status == "archived";
    let (action, label) = if archived {
        (
            "restore",
            lang.tr("Restore", "Wiederherstellen", "Restaurer", "復元"),
        )
    } else {
        (
            "archive",
            lang.tr("Archive", "Archivieren", "Archiver", "アーカイブ"),
        )
    };
    html! {
        tr data-product=(product.id) {
            th scope="row" { a href=(format!("/seller/products/{}", product.id)) { (title) } }
            td {
                @if archived { (lang.tr("Archived", "Archiviert", "Archivé", "アーカイブ済み")) }
                @else { (lang.tr("On sale", "Im Verkauf", "En vente", "販売中")) }
            }
            td {
                ul.skus {
                    @for variant in &product.variants {
                        li {
                            a href=(format!("/seller/stock/{}", encode(&variant.sku))) { code { (variant.sku) } }
                            ": " (variant.stock_on_hand.unwrap_or_default())
                        }
                    }
                }
            }
            td {
                form.inline method="post" action=(format!("/seller/products/{}/{action}", product.id)) {
                    input type="hidden" name="csrf" value=(context.csrf);
                    input type="hidden" name="back" value=(context.here);
                    button type="submit" .secondary { (label) span.visually-hidden { ": " (title) } }
                }
                @if !archived {
                    a href=(format!("/products/{}", product.id)) { (lang.tr("View in store", "Im Shop ansehen", "Voir en boutique", "ストアで見る")) span.visually-hidden { ": " (title) } }
                }
            }
        }
    }
}

/// `POST /seller/products/{id}/archive`.
pub async fn archive(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_status(&state, &request, id.into_inner(), &form, "archived").await
}

/// `POST /seller/products/{id}/restore`.
pub async fn restore(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_status(&state, &request, id.into_inner(), &form, "active").await
}

async fn set_status(
    state: &AppState,
    request: &HttpRequest,
    id: Uuid,
    form: &CsrfForm,
    status: &str,
) -> Result<HttpResponse, PageError> {
    let back = if form.back.is_empty() {
        "/seller/products"
    } else {
        super::console_path(&form.back)
    };
    let console = match open_form(request, state, &form.csrf, back).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    state
        .catalog
        .set_status(console.seller.id, id, status)
        .await?;
    let done = if status == "archived" {
        "archived"
    } else {
        "restored"
    };
    Ok(console.context.redirect(&done_at(back, done)))
}

fn currencies(state: &AppState) -> Vec<Currency> {
    state.pricing.fx.currencies().collect()
}

/// `GET /seller/products/new`.
pub async fn new_form(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let form = ProductForm::blank(console.context.lang);
    Ok(form_page(
        &state,
        console,
        &form,
        None,
        &Refusals::default(),
        StatusCode::OK,
    ))
}

/// The product form's page: new (`record` none) or editing `record`.
fn form_page(
    state: &AppState,
    console: Console,
    form: &ProductForm,
    record: Option<&ProductRecord>,
    refusals: &Refusals,
    status: StatusCode,
) -> HttpResponse {
    let lang = console.context.lang;
    let currencies = currencies(state);
    let stock: BTreeMap<String, i32> = record
        .map(|record| {
            record
                .variants
                .iter()
                .map(|v| (v.sku.clone(), v.stock_on_hand.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let (title, action) = match record {
        Some(record) => (
            lang.tr(
                "Edit product",
                "Produkt bearbeiten",
                "Modifier le produit",
                "商品を編集",
            ),
            format!("/seller/products/{}", record.id),
        ),
        None => (
            lang.tr(
                "New product",
                "Neues Produkt",
                "Nouveau produit",
                "新しい商品",
            ),
            "/seller/products/new".to_owned(),
        ),
    };
    let frame = FormFrame {
        context: &console.context,
        action: &action,
        currencies: &currencies,
        stock: &stock,
        refusals,
    };
    let body = html! {
        p { a href="/seller/products" { "← " (lang.tr("All products", "Alle Produkte", "Tous les produits", "商品一覧")) } }
        h1 { (title) }
        @if let Some(record) = record {
            @if record.status == "active" {
                p { a href=(format!("/products/{}", record.id)) { (lang.tr("View in store", "Im Shop ansehen", "Voir en boutique", "ストアで見る")) } }
            } @else {
                p.hint { (lang.tr("Archived: not on the storefront.", "Archiviert: nicht im Shop.", "Archivé : absent de la boutique.", "アーカイブ済み: ストアには表示されません。")) }
            }
        }
        (product_view::render(form, &frame))
    };
    let page = console_page(&console, title, body);
    console.context.render(status, page)
}

/// The posted form's CSRF token.
fn csrf_of(pairs: &[(String, String)]) -> &str {
    pairs
        .iter()
        .find(|(name, _)| name == "csrf")
        .map_or("", |(_, value)| value.as_str())
}

fn wants_another_row(pairs: &[(String, String)]) -> bool {
    pairs.iter().any(|(name, _)| name == "add_variant")
}

/// `POST /seller/products/new`: creates the product, or shows the form with the refusal
/// next to its input.
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    posted: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let back = "/seller/products/new";
    let console = match open_form(&request, &state, csrf_of(&posted), back).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let mut form = ProductForm::posted(&posted);
    if wants_another_row(&posted) {
        form.variants.push(Default::default());
        let refusals = Refusals::default();
        return Ok(form_page(
            &state,
            console,
            &form,
            None,
            &refusals,
            StatusCode::OK,
        ));
    }
    let created = match form.new_product() {
        Ok((product, rows)) => state
            .catalog
            .create_product(console.seller.id, &product)
            .await
            .map_err(|error| (error, rows)),
        Err(error) => Err((error, Vec::new())),
    };
    match created {
        Ok(product) => {
            let to = done_at(&format!("/seller/products/{}", product.id), "created");
            Ok(console.context.redirect(&to))
        }
        Err((error, rows)) if error.status_code().is_client_error() => {
            let status = error.status_code();
            let refusals = refused(&state, &console, &form, &error, &rows);
            Ok(form_page(&state, console, &form, None, &refusals, status))
        }
        Err((error, _)) => Err(error.into()),
    }
}

fn refused(
    state: &AppState,
    console: &Console,
    form: &ProductForm,
    error: &Error,
    rows: &[usize],
) -> Refusals {
    // A page-side refusal already names its form row.
    let rows: Vec<usize> = if rows.is_empty() {
        (0..form.variants.len()).collect()
    } else {
        rows.to_vec()
    };
    form.refusals(console.context.lang, error, &rows, &currencies(state))
}

/// The seller's own product, with stock; another seller's is "not found".
async fn own_product(
    state: &AppState,
    console: &Console,
    id: Uuid,
) -> Result<ProductRecord, Error> {
    let client = state.pool.get().await?;
    catalog::load_own(&*client, console.seller.id, id).await
}

/// `GET /seller/products/{id}`: the form to edit one of the seller's products.
pub async fn edit_form(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let console = match open(&request, &state).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let record = own_product(&state, &console, id.into_inner()).await?;
    let form = ProductForm::of(&record);
    let refusals = Refusals::default();
    Ok(form_page(
        &state,
        console,
        &form,
        Some(&record),
        &refusals,
        StatusCode::OK,
    ))
}

/// `POST /seller/products/{id}`: saves the changes, or shows the form with the refusal next
/// to its input.
pub async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    posted: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let back = format!("/seller/products/{id}");
    let console = match open_form(&request, &state, csrf_of(&posted), &back).await? {
        Ok(console) => console,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let record = own_product(&state, &console, id).await?;
    let mut form = ProductForm::posted(&posted);
    if wants_another_row(&posted) {
        form.variants.push(Default::default());
        let refusals = Refusals::default();
        return Ok(form_page(
            &state,
            console,
            &form,
            Some(&record),
            &refusals,
            StatusCode::OK,
        ));
    }
    let updated = match form.patch(&record) {
        Ok((patch, rows)) => state
            .catalog
            .update_product(console.seller.id, id, &patch)
            .await
            .map_err(|error| (error, rows)),
        Err(error) => Err((error, Vec::new())),
    };
    match updated {
        Ok(_) => Ok(console.context.redirect(&done_at(&back, "saved"))),
        Err((Error::NotFound(what), _)) => Err(Error::NotFound(what).into()),
        Err((error, rows)) if error.status_code().is_client_error() => {
            let status = error.status_code();
            let refusals = refused(&state, &console, &form, &error, &rows);
            Ok(form_page(
                &state,
                console,
                &form,
                Some(&record),
                &refusals,
                status,
            ))
        }
        Err((error, _)) => Err(error.into()),
    }
}
