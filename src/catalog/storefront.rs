//! What shoppers see: product pages and listings in their locale and currency.
//!
//! Promises: listings use keyset cursors (a page never repeats or skips a product that
//! existed when the first page was read, however many products are inserted meanwhile);
//! prices are the seller's explicit ones where set, else converted and marked `converted`;
//! each product says which locale it was served in; no stock count is ever rendered here
//! (stock comes live from `/api/v1/inventory/{sku}`).

use std::collections::BTreeMap;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::{types::ToSql, GenericClient};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ProductRecord;
use crate::{
    error::{Code, Error},
    locale::LocalePreference,
    money::{by_currency, Currency, FxRates, Price},
};

/// Products per page when the request names no `limit`, and the most it may name.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;
/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// One product page, rendered for a locale and currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorefrontProduct {
    pub id: Uuid,
    pub seller_id: Uuid,
    /// The locale the content below is in (the best available match of the request).
    #[schema(example = "de")]
    pub locale: String,
    pub available_locales: Vec<String>,
    pub title: String,
    pub description: String,
    #[schema(example = "USD")]
    pub currency: &'static str,
    /// The lowest variant price.
    pub price_from: Price,
    pub variants: Vec<StorefrontVariant>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorefrontVariant {
    pub sku: String,
    pub attributes: BTreeMap<String, String>,
    pub weight_grams: i32,
    pub image_urls: Vec<String>,
    pub price: Price,
    /// Where live stock for this SKU is read.
    #[schema(example = "/api/v1/inventory/JACKET-M-RED")]
    pub inventory_url: String,
}

/// Renders a stored product for a shopper's locale preference and currency.
pub fn render(
    product: &ProductRecord,
    preference: &LocalePreference,
    currency: Currency,
    fx: &FxRates,
) -> Result<StorefrontProduct, Error> {
    let locale = preference.choose(|l| product.content.contains_key(l), &product.default_locale);
    let content = product
        .content
        .get(locale.as_ref())
        .or_else(|| product.content.values().next())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("product {} has no content", product.id)))?;
    let base = Currency::from_code(product.base_currency.trim()).ok_or_else(|| {
        Error::internal(anyhow::anyhow!(
            "product {} has an unknown base currency",
            product.id
        ))
    })?;
    let mut variants = Vec::with_capacity(product.variants.len());
    for variant in &product.variants {
        let price = fx
            .price_in(&by_currency(&variant.prices), base, currency)
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!("variant {} has no base price", variant.sku))
            })?;
        variants.push(StorefrontVariant {
            sku: variant.sku.clone(),
            attributes: variant.attributes.clone(),
            weight_grams: variant.weight_grams,
            image_urls: variant.image_urls.clone(),
            price,
            inventory_url: format!("/api/v1/inventory/{}", variant.sku),
        });
    }
    let price_from = variants
        .iter()
        .map(|v| v.price.clone())
        .min_by(|a, b| a.amount.cmp(&b.amount).then(a.converted.cmp(&b.converted)))
        .ok_or_else(|| {
            Error::internal(anyhow::anyhow!("product {} has no variants", product.id))
        })?;
    Ok(StorefrontProduct {
        id: product.id,
        seller_id: product.seller_id,
        locale: locale.into_owned(),
        available_locales: product.content.keys().cloned().collect(),
        title: content.title.clone(),
        description: content.description.clone(),
        currency: currency.code(),
        price_from,
        variants,
        created_at: product.created_at,
        updated_at: product.updated_at,
    })
}

/// Listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Newest first (the default).
    Newest,
    /// Lowest `price_from` first.
    Price,
    /// Highest `price_from` first.
    PriceDesc,
}

/// A validated listing request.
#[derive(Debug, Clone)]
pub struct ListingQuery {
    pub preference: LocalePreference,
    pub currency: Currency,
    pub seller: Option<Uuid>,
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
    pub in_stock: bool,
    pub q: Option<String>,
    pub sort: Sort,
    pub limit: i64,
    pub cursor: Option<Cursor>,
}

/// Where the previous page ended; opaque to clients (base64url of this JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    sort: Sort,
    currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    price: Option<Decimal>,
    id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(raw: &str) -> Result<Self, Error> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| Error::BadRequest {
                code: Code::InvalidCursor,
                message: "the cursor is not one this API returned".into(),
                field: Some("cursor".into()),
            })
    }
}

/// One product in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListingItem {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub locale: String,
    pub title: String,
    pub price_from: Price,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListingPage {
    pub items: Vec<ListingItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    pub currency: &'static str,
}

/// Searches the planner expects to match at most this many content rows are answered from
/// their matches (fetch all, then sort the few); broader ones walk the requested order and test
/// each product, which stops as soon as the page is full.
const NARROW_SEARCH_ROWS: f64 = 3000.0;

/// The planner's estimate of the content rows a search matches (one planning round trip).
async fn estimated_matches(
    client: &impl GenericClient,
    chain: &[&str],
    config: &str,
    q: &str,
) -> Result<f64, Error> {
    let row = client
        .query_one(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM product_content sc
             WHERE sc.locale = ANY($1::text[])
               AND sc.search @@ websearch_to_tsquery($2::text::regconfig, $3)",
            &[&chain, &config, &q],
        )
        .await?;
    let plan: serde_json::Value = row.get(0);
    Ok(plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(f64::MAX))
}

/// Runs a storefront listing: filters, search, sort and keyset pagination in one query.
pub async fn list(client: &impl GenericClient, query: &ListingQuery) -> Result<ListingPage, Error> {
    let currency = query.currency.code();
    let chain: Vec<&str> = query.preference.tags().iter().map(|l| l.as_str()).collect();
    let mut sql = ListingSql::new(currency, chain.clone());
    sql.filter(query);
    if let Some(q) = &query.q {
        sql.search(client, query, &chain, q).await?;
    }
    if let Some(cursor) = &query.cursor {
        sql.continue_after(query, cursor, currency)?;
    }
    let statement = sql.page_statement(query);
    let rows = client.query(&statement, &sql.param_refs()).await?;
    Ok(page_of(query, currency, &rows))
}

/// A listing's statement as it is built: its numbered parameters, its conditions on the
/// listing rows (`lp`), and what those rows are chosen from.
struct ListingSql<'a> {
    params: Vec<Box<dyn ToSql + Sync + Send + 'a>>,
    conditions: Vec<String>,
    from: String,
}

impl<'a> ListingSql<'a> {
    /// Starts with what every listing has: its currency (`$1`) and the shopper's locale
    /// chain (`$2`), and only listed products.
    fn new(currency: &'static str, chain: Vec<&'a str>) -> Self {
        Self {
            params: vec![Box::new(currency), Box::new(chain)],
            conditions: vec!["lp.currency = $1".to_owned(), "lp.listed".to_owned()],
            from: "product_listing_prices lp".to_owned(),
        }
    }

    /// Adds a parameter; answers its number.
    fn push(&mut self, value: Box<dyn ToSql + Sync + Send + 'a>) -> usize {
        self.params.push(value);
        self.params.len()
    }

    /// Adds the seller, price range and in-stock filters the query names.
    fn filter(&mut self, query: &ListingQuery) {
        if let Some(seller) = query.seller {
            let n = self.push(Box::new(seller));
            self.conditions.push(format!("lp.seller_id = ${n}"));
        }
        if let Some(min) = query.min_price {
            let n = self.push(Box::new(min));
            self.conditions.push(format!("lp.amount >= ${n}"));
        }
        if let Some(max) = query.max_price {
            let n = self.push(Box::new(max));
            self.conditions.push(format!("lp.amount <= ${n}"));
        }
        if query.in_stock {
            self.conditions.push(
                "EXISTS (SELECT 1 FROM variants v WHERE v.product_id = lp.product_id AND v.stock_on_hand > 0)"
                    .into(),
            );
        }
    }

    /// Adds the full-text search for `q` in the shopper's locales. How depends on the
    /// planner's estimate of its matches (see [`NARROW_SEARCH_ROWS`]).
    async fn search(
        &mut self,
        client: &impl GenericClient,
        query: &ListingQuery,
        chain: &[&str],
        q: &str,
    ) -> Result<(), Error> {
        let config = query
            .preference
            .primary()
            .map_or("simple", |l| l.search_config());
        let matches = estimated_matches(client, chain, config, q).await?;
        let text = self.push(Box::new(q.to_owned()));
        let config = self.push(Box::new(config.to_owned()));
        let matching = format!(
            "SELECT sc.product_id FROM product_content sc
             WHERE sc.locale = ANY($2::text[])
               AND sc.search @@ websearch_to_tsquery(${config}::text::regconfig, ${text})"
        );
        if matches <= NARROW_SEARCH_ROWS {
            // Few matches: fetch them all, then filter and sort just those; newest-first comes
            // straight from the sorted ids, so only the page's rows are joined.
            let newest_first = if query.sort == Sort::Newest {
                "ORDER BY product_id DESC"
            } else {
                ""
            };
            self.from = format!(
                "(SELECT DISTINCT product_id FROM ({matching}) m0 {newest_first}) m
                 JOIN product_listing_prices lp ON lp.product_id = m.product_id"
            );
        } else {
            // Many matches: walk the requested order and test each product (from the index
            // alone) until the page is full.
            self.conditions.push(format!(
                "EXISTS ({matching} AND sc.product_id = lp.product_id)"
            ));
        }
        Ok(())
    }

    /// Starts the page after the previous page's last product, refusing a cursor made for
    /// another sort or currency.
    fn continue_after(
        &mut self,
        query: &ListingQuery,
        cursor: &Cursor,
        currency: &str,
    ) -> Result<(), Error> {
        if cursor.sort != query.sort || cursor.currency != currency {
            return Err(Error::BadRequest {
                code: Code::InvalidCursor,
                message: "the cursor belongs to another sort or currency".into(),
                field: Some("cursor".into()),
            });
        }
        let id = self.push(Box::new(cursor.id));
        match query.sort {
            Sort::Newest => self.conditions.push(format!("lp.product_id < ${id}")),
            Sort::Price | Sort::PriceDesc => {
                let price = self.push(Box::new(cursor.price.unwrap_or_default()));
                let op = if query.sort == Sort::Price { ">" } else { "<" };
                self.conditions
                    .push(format!("(lp.amount, lp.product_id) {op} (${price}, ${id})"));
            }
        }
        Ok(())
    }

    /// The whole statement, asking for one row beyond the page to tell whether another
    /// follows.
    fn page_statement(&mut self, query: &ListingQuery) -> String {
        let (order, page_order) = match query.sort {
            Sort::Newest => ("lp.product_id DESC", "page.product_id DESC"),
            Sort::Price => (
                "lp.amount ASC, lp.product_id ASC",
                "page.amount ASC, page.product_id ASC",
            ),
            Sort::PriceDesc => (
                "lp.amount DESC, lp.product_id DESC",
                "page.amount DESC, page.product_id DESC",
            ),
        };
        let limit = self.push(Box::new(query.limit + 1));
        let from = &self.from;
        // The page is chosen from the listing table alone; only its rows join their product and
        // content.
        format!(
            "SELECT page.product_id, p.seller_id, p.created_at, page.amount, page.converted, c.locale, c.title
         FROM (
             SELECT lp.product_id, lp.amount, lp.converted
             FROM {from}
             WHERE {}
             ORDER BY {order}
             LIMIT ${limit}
         ) page
         JOIN products p ON p.id = page.product_id
         CROSS JOIN LATERAL (
             SELECT c.locale, c.title FROM product_content c
             WHERE c.product_id = p.id AND (c.locale = ANY($2::text[]) OR c.locale = p.default_locale)
             ORDER BY coalesce(array_position($2::text[], c.locale), 1000) LIMIT 1
         ) c
         ORDER BY {page_order}",
            self.conditions.join(" AND ")
        )
    }

    /// The parameters, in order, as the client takes them.
    fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The page from the listing's rows (at most one beyond the page), with a cursor to the next
/// page when there is one.
fn page_of(
    query: &ListingQuery,
    currency: &'static str,
    rows: &[tokio_postgres::Row],
) -> ListingPage {
    let has_more = rows.len() as i64 > query.limit;
    let items: Vec<ListingItem> = rows
        .iter()
        .take(usize::try_from(query.limit).unwrap_or(0))
        .map(|row| ListingItem {
            id: row.get(0),
            seller_id: row.get(1),
            created_at: row.get(2),
            price_from: Price {
                amount: query.currency.round(row.get(3)),
                currency,
                converted: row.get(4),
            },
            locale: row.get(5),
            title: row.get(6),
        })
        .collect();
    let next_cursor = match items.last() {
        Some(last) if has_more => Some(
            Cursor {
                sort: query.sort,
                currency: currency.to_owned(),
                price: (query.sort != Sort::Newest).then_some(last.price_from.amount),
                id: last.id,
            }
            .encode(),
        ),
        _ => None,
    };
    ListingPage {
        items,
        next_cursor,
        currency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            sort: Sort::Price,
            currency: "EUR".into(),
            price: Some(Decimal::new(1250, 2)),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).expect("decodes"), cursor);
        assert_eq!(
            Cursor::decode("not-a-cursor").expect_err("refused").code(),
            "invalid_cursor"
        );
    }
}
