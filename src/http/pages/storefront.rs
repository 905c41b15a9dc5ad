//! The storefront: the home page's listing and search, and a product's page with its variants,
//! live stock, the cart form and recommendations.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    context::PageContext,
    i18n::Lang,
    layout::{self, with_param, PageError},
};
use crate::{
    catalog::storefront::{self, Cursor, ListingItem, ListingQuery, Sort, StorefrontProduct},
    error::Error,
    recommendations,
    state::AppState,
};

/// Products on one page of the listing.
const PAGE_SIZE: i64 = 24;
/// Recommendations shown under a product.
const RECOMMENDED: i64 = 4;

/// The listing's filters as the form sends them; each is optional and may be empty.
#[derive(Debug, Default, Deserialize)]
pub struct ListingForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    min_price: String,
    #[serde(default)]
    max_price: String,
    #[serde(default)]
    in_stock: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
    /// Only this seller's products (a seller's shop window).
    #[serde(default)]
    seller: String,
}

/// A filter that could not be read, to show next to its field.
struct FieldError {
    field: &'static str,
    message: String,
}

impl ListingForm {
    fn query(&self, context: &PageContext) -> (ListingQuery, Vec<FieldError>) {
        let mut errors = Vec::new();
        let currency = context.currency;
        let mut price = |field: &'static str, raw: &str| {
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            let parsed = currency.parse_amount(field, raw);
            parsed
                .map_err(|error| {
                    errors.push(FieldError {
                        field,
                        message: error.to_string(),
                    })
                })
                .ok()
        };
        let min_price = price("min_price", &self.min_price);
        let max_price = price("max_price", &self.max_price);
        let q = self.q.trim();
        let q = (!q.is_empty()).then(|| q.chars().take(storefront::MAX_QUERY_CHARS).collect());
        let sort = match self.sort.as_str() {
            "price" => Sort::Price,
            "price_desc" => Sort::PriceDesc,
            _ => Sort::Newest,
        };
        // A cursor of another sort or currency (the filters changed) starts from the top.
        let cursor = Cursor::decode(&self.cursor).ok();
        let query = ListingQuery {
            preference: context.lang.preference(),
            currency,
            seller: self.seller.trim().parse().ok(),
            min_price,
            max_price,
            in_stock: self.in_stock == "true",
            q,
            sort,
            limit: PAGE_SIZE,
            cursor,
        };
        (query, errors)
    }
}

/// `GET /`: the store's products, newest first, with search, price range, stock and sort.
pub async fn home(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Query<ListingForm>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    let (query, errors) = form.query(&context);
    let client = state.pool.get().await?;
    let listing = match storefront::list(&**client, &query).await {
        Ok(listing) => Some(listing),
        // A stale or foreign cursor: show the first page instead.
        Err(Error::BadRequest { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    let listing = match listing {
        Some(listing) => listing,
        None => {
            let first = ListingQuery {
                cursor: None,
                ..query
            };
            storefront::list(&**client, &first).await?
        }
    };
    drop(client);
    let lang = context.lang;
    let title = lang.tr("Shop", "Shop", "Boutique", "ショップ");
    let body = html! {
        h1 { (match form.q.trim() { "" => title.to_owned(), q => format!("{} “{q}”", lang.tr("Results for", "Ergebnisse für", "Résultats pour", "検索結果:")) }) }
        (filters(&context, &form, &errors))
        @if listing.items.is_empty() {
            p.empty { (lang.tr("No products match.", "Keine passenden Produkte.", "Aucun produit ne correspond.", "該当する商品はありません。")) }
        } @else {
            ul.grid aria-label=(lang.tr("Products", "Produkte", "Produits", "商品")) {
                @for item in &listing.items { (listing_item(lang, item)) }
            }
        }
        @if let Some(next) = &listing.next_cursor {
            nav.paging aria-label=(lang.tr("Pages", "Seiten", "Pages", "ページ")) {
                a rel="next" href=(with_param(&context.here, "cursor", next)) { (lang.tr("More products →", "Weitere Produkte →", "Plus de produits →", "さらに表示 →")) }
            }
        }
    };
    let page = layout::page(&context, title, body);
    Ok(context.render(StatusCode::OK, page))
}

fn filters(context: &PageContext, form: &ListingForm, errors: &[FieldError]) -> Markup {
    let lang = context.lang;
    let error_of = |field: &str| {
        errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.clone())
    };
    let price_field = |field: &'static str, label: &str, value: &str| {
        let error = error_of(field);
        html! {
            div.field {
                label for=(field) { (label) " (" (context.currency.code()) ")" }
                input #(field) name=(field) inputmode="decimal" value=(value)
                    aria-invalid=[error.as_ref().map(|_| "true")]
                    aria-describedby=[error.as_ref().map(|_| format!("{field}-error"))];
                @if let Some(error) = error { p.error id=(format!("{field}-error")) { (error) } }
            }
        }
    };
    html! {
        form.filters method="get" action="/" {
            div.field {
                label for="q" { (lang.tr("Search", "Suche", "Recherche", "検索")) }
                input #q type="search" name="q" value=(form.q);
            }
            (price_field("min_price", lang.tr("Price from", "Preis ab", "Prix min.", "最低価格"), &form.min_price))
            (price_field("max_price", lang.tr("Price to", "Preis bis", "Prix max.", "最高価格"), &form.max_price))
            div.field {
                label for="sort" { (lang.tr("Sort", "Sortierung", "Tri", "並べ替え")) }
                select #sort name="sort" {
                    option value="newest" selected[form.sort.is_empty() || form.sort == "newest"] { (lang.tr("Newest", "Neueste", "Nouveautés", "新着順")) }
                    option value="price" selected[form.sort == "price"] { (lang.tr("Price, low to high", "Preis aufsteigend", "Prix croissant", "価格の安い順")) }
                    option value="price_desc" selected[form.sort == "price_desc"] { (lang.tr("Price, high to low", "Preis absteigend", "Prix décroissant", "価格の高い順")) }
                }
            }
            div.field.check {
                input #in_stock type="checkbox" name="in_stock" value="true" checked[form.in_stock == "true"];
                label for="in_stock" { (lang.tr("In stock only", "Nur verfügbare", "En stock uniquement", "在庫ありのみ")) }
            }
            button type="submit" { (lang.tr("Show", "Anzeigen", "Afficher", "表示")) }
        }
    }
}

fn listing_item(lang: Lang, item: &ListingItem) -> Markup {
    html! {
        li.card {
            a href=(format!("/products/{}", item.id)) lang=(item.locale) { (item.title) }
            p.price {
                (lang.tr("from ", "ab ", "à partir de ", "")) (lang.money(&item.price_from))
                @if lang == Lang::Ja { "から" }
            }
        }
    }
}

/// `GET /products/{id}`: one product in the visitor's language and currency.
pub async fn product(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    let id = id.into_inner();
    let record = state.catalog.storefront_product(id).await?;
    let product = storefront::render(
        &record,
        &context.lang.preference(),
        context.currency,
        &state.pricing.fx,
    )?;
    if let Some(signed_in) = &context.shopper {
        let signal = recommendations::Signal::Viewed { product: id };
        recommendations::note(&state.pool, signed_in.shopper.id, signal).await;
    }
    let client = state.pool.get().await?;
    let mut stock = Vec::with_capacity(product.variants.len());
    for variant in &product.variants {
        stock.push(
            crate::inventory::availability(&*client, &variant.sku)
                .await?
                .available,
        );
    }
    let together = recommended(&state, &*client, &context, id).await;
    let for_you = for_you(&*client, &context, id).await;
    drop(client);
    let body = product_page(&context, &product, &stock, &together, &for_you);
    let page = layout::page(&context, &product.title, body);
    Ok(context.render(StatusCode::OK, page))
}

/// "Bought together" for the product; nothing when they cannot be read now (the page is still
/// worth showing).
async fn recommended(
    state: &AppState,
    client: &impl crate::db::PreparedClient,
    context: &PageContext,
    id: Uuid,
) -> Vec<recommendations::Recommended> {
    let locale = context.lang.tag();
    let found = async {
        let neighbours = recommendations::bought_together(client, &state.hot, id).await?;
        recommendations::render(
            client,
            &neighbours,
            &[id],
            &[locale],
            context.currency,
            RECOMMENDED,
            false,
        )
        .await
    };
    found.await.unwrap_or_else(|error| {
        tracing::warn!(%error, "recommendations for a product page failed");
        Vec::new()
    })
}

/// "For you", for a signed-in shopper (this product left out); nothing for a visitor or when
/// they cannot be read now.
async fn for_you(
    client: &impl crate::db::PreparedClient,
    context: &PageContext,
    id: Uuid,
) -> Vec<recommendations::Recommended> {
    let Some(signed_in) = &context.shopper else {
        return Vec::new();
    };
    let locale = context.lang.tag();
    let shopper = signed_in.shopper.id;
    let found = recommendations::for_shopper(
        client,
        shopper,
        None,
        &[locale],
        context.currency,
        RECOMMENDED + 1,
    )
    .await;
    match found {
        Ok((items, _)) => items
            .into_iter()
            .filter(|item| item.id != id)
            .take(RECOMMENDED as usize)
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "recommendations for a shopper failed");
            Vec::new()
        }
    }
}

/// What a shopper reads of a SKU's stock: in stock, only a few left, or sold out.
pub fn stock_words(lang: Lang, available: i64) -> String {
    match available {
        n if n <= 0 => lang
            .tr("Sold out", "Ausverkauft", "Épuisé", "売り切れ")
            .to_owned(),
        n if n <= 5 => match lang {
            Lang::En => format!("Only {n} left"),
            Lang::De => format!("Nur noch {n} verfügbar"),
            Lang::Fr => format!("Plus que {n} en stock"),
            Lang::Ja => format!("残り{n}点"),
        },
        _ => lang
            .tr("In stock", "Auf Lager", "En stock", "在庫あり")
            .to_owned(),
    }
}

fn product_page(
    context: &PageContext,
    product: &StorefrontProduct,
    stock: &[i64],
    together: &[recommendations::Recommended],
    for_you: &[recommendations::Recommended],
) -> Markup {
    let lang = context.lang;
    let skus: Vec<&str> = product.variants.iter().map(|v| v.sku.as_str()).collect();
    html! {
        article.product data-product=(product.id) data-follow-skus=(skus.join(",")) {
            h1 lang=(product.locale) { (product.title) }
            @if let Some(image) = product.variants.iter().flat_map(|v| v.image_urls.first()).next() {
                img.hero src=(image) alt=(product.title) loading="lazy";
            }
            p.description lang=(product.locale) { (product.description) }
            form.buy method="post" action="/cart/items" {
                input type="hidden" name="csrf" value=(context.csrf);
                input type="hidden" name="back" value=(context.here);
                fieldset {
                    legend { (lang.tr("Choose a variant", "Variante wählen", "Choisir une variante", "バリエーションを選択")) }
                    @for (i, variant) in product.variants.iter().enumerate() {
                        @let available = stock.get(i).copied().unwrap_or(0);
                        div.variant {
                            input type="radio" name="sku" id=(format!("sku-{i}")) value=(variant.sku) checked[i == 0] disabled[available <= 0];
                            label for=(format!("sku-{i}")) {
                                span.attributes {
                                    @for (name, value) in &variant.attributes { (name) ": " (value) " " }
                                    @if variant.attributes.is_empty() { (variant.sku) }
                                }
                                " — " strong { (lang.money(&variant.price)) }
                                @if variant.price.converted { small { " (" (lang.tr("converted", "umgerechnet", "converti", "換算")) ")" } }
                                " · "
                                span.stock data-stock-sku=(variant.sku) aria-live="polite" { (stock_words(lang, available)) }
                            }
                        }
                    }
                }
                div.field {
                    label for="quantity" { (lang.tr("Quantity", "Menge", "Quantité", "数量")) }
                    input #quantity type="number" name="quantity" min="1" max="99" value="1" required;
                }
                button type="submit" { (lang.tr("Add to cart", "In den Warenkorb", "Ajouter au panier", "カートに入れる")) }
            }
            (recommendations_section(lang, "together", lang.tr("Bought together", "Oft zusammen gekauft", "Souvent achetés ensemble", "一緒に購入されている商品"), together))
            (recommendations_section(lang, "for-you", lang.tr("For you", "Für Sie", "Pour vous", "あなたへのおすすめ"), for_you))
        }
    }
}

fn recommendations_section(
    lang: Lang,
    id: &str,
    heading: &str,
    items: &[recommendations::Recommended],
) -> Markup {
    html! {
        @if !items.is_empty() {
            section.recommendations aria-labelledby=(id) {
                h2 id=(id) { (heading) }
                ul.grid {
                    @for item in items {
                        li.card {
                            a href=(format!("/products/{}", item.id)) lang=(item.locale) { (item.title) }
                            p.price { (lang.money(&item.price_from)) }
                        }
                    }
                }
            }
        }
    }
}
