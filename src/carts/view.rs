//! What a cart shows its owner: its lines priced in the region's currency for the shopper's
//! locales, tax, shipping and totals, read from Postgres in two statements ([`load`]) and
//! computed again from the lines after a change in memory ([`Loaded::reprice`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    addresses::Address,
    configuration::Pricing,
    db::PreparedClient,
    error::Error,
    locale::LocalePreference,
    money::{by_currency, Currency, Price},
    regions::{self, Region},
};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartView {
    pub id: Uuid,
    pub region: String,
    #[schema(example = "EUR")]
    pub currency: &'static str,
    pub lines: Vec<CartLine>,
    pub subtotal: Price,
    pub tax: Tax,
    pub shipping: Option<Shipping>,
    /// Subtotal, plus tax where the region adds it, plus shipping.
    pub total: Price,
    /// Where the order goes; checkout needs it where the region ships.
    pub shipping_address: Option<Address>,
    /// Who hears about the order: the email given with the shipping, else the account's
    /// (a guest's checkout needs one).
    pub contact_email: Option<String>,
    /// Whether the region ships (has shipping options), so checkout needs a destination.
    #[serde(skip)]
    pub needs_shipping: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartLine {
    /// Where the line's order line comes from; not shown to shoppers.
    #[serde(skip)]
    pub variant_id: Uuid,
    #[serde(skip)]
    pub product_id: Uuid,
    #[serde(skip)]
    pub seller_id: Uuid,
    /// Whether its seller may sell now (a suspended one's lines are refused at checkout).
    #[serde(skip)]
    pub seller_active: bool,
    /// Whether its product and seller are on the storefront now (if not, the line may be
    /// lowered or removed, never raised).
    #[serde(skip)]
    pub on_sale: bool,
    /// One unit's weight, for the shipping cost.
    #[serde(skip)]
    pub unit_weight_grams: u32,
    pub sku: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: Price,
    pub line_total: Price,
    /// Units still held for this cart, and until when; fewer than `quantity` once holds expire.
    pub held_quantity: i64,
    pub held_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tax {
    #[schema(value_type = String, example = "0.19")]
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    /// True where prices include tax (the amount is contained in the subtotal).
    pub included: bool,
    pub amount: Price,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Shipping {
    pub option: String,
    pub carrier: String,
    pub amount: Price,
    pub country: String,
}

fn money(amount: Decimal, currency: Currency) -> Price {
    Price {
        amount: currency.round(amount),
        currency: currency.code(),
        converted: false,
    }
}

/// The cart as its owner sees it, priced now; anyone else's cart is "not found".
pub async fn view(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    cart_id: Uuid,
    preference: &LocalePreference,
    pricing: &Pricing,
) -> Result<CartView, Error> {
    Ok(load(client, shopper_id, cart_id, preference, pricing)
        .await?
        .view)
}

/// A cart as [`load`] read it: its view and what repricing it after a change needs.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub view: CartView,
    /// The cart row's version: every change to the cart or its lines raises it.
    pub version: i64,
    pub region: Region,
    pub currency: Currency,
    /// The shipping country and option chosen.
    pub destination: (Option<String>, Option<String>),
}

impl Loaded {
    /// Computes the totals again from the lines (after their quantities changed).
    pub fn reprice(&mut self) {
        let currency = self.currency;
        let (mut subtotal, mut weight) = (Decimal::ZERO, 0_u32);
        for line in &mut self.view.lines {
            let line_total = line.unit_price.amount * Decimal::from(line.quantity);
            line.line_total.amount = currency.round(line_total);
            subtotal += line_total;
            weight = weight.saturating_add(line.unit_weight_grams.saturating_mul(line.quantity));
        }
        let lines = std::mem::take(&mut self.view.lines);
        let mut view = priced(
            self.view.id,
            &self.region,
            currency,
            lines,
            (subtotal, weight),
            self.destination.clone(),
        );
        view.shipping_address = self.view.shipping_address.take();
        view.contact_email = self.view.contact_email.take();
        self.view = view;
    }
}

/// Reads the cart as its owner sees it, priced now, with its version; anyone else's cart is
/// "not found".
pub async fn load(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    cart_id: Uuid,
    preference: &LocalePreference,
    pricing: &Pricing,
) -> Result<Loaded, Error> {
    // The cart with its region in one round trip (a cart's region cannot go: foreign key).
    let cart = client
        .query_opt(
            &format!(
                "SELECT c.shipping_country, c.shipping_option, {},
                        c.shipping_address AS shipping_address,
                        coalesce(c.contact_email, s.email) AS contact_email,
                        c.version AS version
                 FROM carts c JOIN regions r ON r.code = c.region
                 JOIN shoppers s ON s.id = c.shopper_id
                 WHERE c.id = $1 AND c.shopper_id = $2",
                regions::COLUMNS_OF_R
            ),
            &[&cart_id, &shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("cart"))?;
    let region: Region = regions::from_row(&cart)?;
    let currency = region.currency().ok_or_else(|| {
        Error::internal(anyhow::anyhow!("region {} has no currency", region.code))
    })?;
    let lines = priced_lines(client, cart_id, preference, pricing, currency).await?;
    let destination: (Option<String>, Option<String>) = (cart.get(0), cart.get(1));
    let mut loaded = Loaded {
        view: priced(
            cart_id,
            &region,
            currency,
            Vec::new(),
            (Decimal::ZERO, 0),
            (None, None),
        ),
        version: cart.get("version"),
        region,
        currency,
        destination,
    };
    loaded.view.lines = lines;
    loaded.view.shipping_address = cart
        .get::<_, Option<serde_json::Value>>("shipping_address")
        .map(serde_json::from_value)
        .transpose()
        .map_err(Error::internal)?;
    loaded.view.contact_email = cart.get("contact_email");
    loaded.reprice();
    Ok(loaded)
}

/// The cart's lines, each priced in `currency` (its line total not yet computed: see
/// [`Loaded::reprice`]).
async fn priced_lines(
    client: &impl PreparedClient,
    cart_id: Uuid,
    preference: &LocalePreference,
    pricing: &Pricing,
    currency: Currency,
) -> Result<Vec<CartLine>, Error> {
    let chain: Vec<&str> = preference.tags().iter().map(|l| l.as_str()).collect();
    let rows = client
        .query(
            &format!(
                "SELECT {LINE_COLUMNS}
                 FROM cart_lines l
                 JOIN variants v ON v.id = l.variant_id
                 JOIN products p ON p.id = v.product_id
                 CROSS JOIN LATERAL (
                     SELECT coalesce(sum(h.quantity), 0)::int8 AS units, max(h.expires_at) AS until
                     FROM stock_holds h
                     WHERE h.owner = $1::uuid::text AND h.variant_id = v.id
                       AND h.released_at IS NULL AND h.expires_at > now()
                 ) held
                 {TITLE_JOIN}
                 WHERE l.cart_id = $1
                 ORDER BY l.added_at, v.sku"
            ),
            &[&cart_id, &chain],
        )
        .await?;
    rows.iter()
        .map(|row| line_from_row(row, pricing, currency))
        .collect()
}

/// The columns of a priced line, after its `FROM`: every statement that reads lines selects
/// these, in this order ([`line_from_row`]). `$2` is the locale chain.
const LINE_COLUMNS: &str = "v.sku, l.quantity, v.weight_grams, p.base_currency,
    (SELECT coalesce(jsonb_object_agg(vp.currency, vp.amount::text), '{}')
       FROM variant_prices vp WHERE vp.variant_id = v.id),
    held.units, held.until, c.title, v.id, p.id, p.seller_id,
    (SELECT s.status = 'active' FROM sellers s WHERE s.id = p.seller_id),
    p.status = 'active'";

/// The product's title in the first of the `$2` locales it has, else its default locale's.
const TITLE_JOIN: &str = "CROSS JOIN LATERAL (
    SELECT c.title FROM product_content c
    WHERE c.product_id = p.id AND (c.locale = ANY($2::text[]) OR c.locale = p.default_locale)
    ORDER BY coalesce(array_position($2::text[], c.locale), 1000) LIMIT 1
) c";

/// A storefront SKU as a line a cart does not have yet (no units, none held), priced in
/// `currency` for the shopper's locales; `None` when no SKU has that name.
pub async fn catalog_line(
    client: &impl PreparedClient,
    sku: &str,
    preference: &LocalePreference,
    pricing: &Pricing,
    currency: Currency,
) -> Result<Option<CartLine>, Error> {
    let chain: Vec<&str> = preference.tags().iter().map(|l| l.as_str()).collect();
    let row = client
        .query_opt(
            &format!(
                "SELECT {LINE_COLUMNS}
                 FROM variants v
                 JOIN products p ON p.id = v.product_id
                 CROSS JOIN (SELECT 0::int4 AS quantity) l
                 CROSS JOIN (SELECT 0::int8 AS units, NULL::timestamptz AS until) held
                 {TITLE_JOIN}
                 WHERE upper(v.sku) = upper($1)"
            ),
            &[&sku, &chain],
        )
        .await?;
    row.map(|row| line_from_row(&row, pricing, currency))
        .transpose()
}

/// A line from the [`LINE_COLUMNS`] of a row, its unit price in `currency`.
fn line_from_row(
    row: &tokio_postgres::Row,
    pricing: &Pricing,
    currency: Currency,
) -> Result<CartLine, Error> {
    let prices: BTreeMap<String, Decimal> =
        serde_json::from_value(row.get(4)).map_err(Error::internal)?;
    let base = Currency::from_code(row.get::<_, &str>(3).trim())
        .ok_or_else(|| Error::internal(anyhow::anyhow!("unknown base currency")))?;
    let unit = pricing
        .fx
        .price_in(&by_currency(&prices), base, currency)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("a cart line has no price")))?;
    let seller_active: bool = row.get(11);
    Ok(CartLine {
        variant_id: row.get(8),
        product_id: row.get(9),
        seller_id: row.get(10),
        seller_active,
        on_sale: seller_active && row.get::<_, bool>(12),
        unit_weight_grams: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
        sku: row.get(0),
        title: row.get(7),
        quantity: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0),
        line_total: unit.clone(),
        unit_price: unit,
        held_quantity: row.get(5),
        held_until: row.get(6),
    })
}

/// A cart's totals from its priced lines (their subtotal and weight), in the region's
/// currency: tax by the shipping country's rate (included or added) and the chosen shipping
/// option's cost. Shared by flash-sale purchases, which price one line the same way.
pub fn priced(
    id: Uuid,
    region: &Region,
    currency: Currency,
    lines: Vec<CartLine>,
    (subtotal, weight): (Decimal, u32),
    (country, option): (Option<String>, Option<String>),
) -> CartView {
    let rate = region
        .tax_rate(country.as_deref().unwrap_or("default"))
        .unwrap_or(Decimal::ZERO);
    let included = region.details.tax_inclusive;
    let tax = if included {
        subtotal - subtotal / (Decimal::ONE + rate)
    } else {
        subtotal * rate
    };
    let tax = currency.round(tax);
    let shipping = match (option, country) {
        (Some(option), Some(country)) if !lines.is_empty() => region
            .details
            .shipping_options
            .iter()
            .find(|o| o.id == option)
            .and_then(|o| {
                Some(Shipping {
                    option: o.id.clone(),
                    carrier: o.carrier.clone(),
                    amount: money(o.cost(weight)?, currency),
                    country,
                })
            }),
        _ => None,
    };
    let mut total = subtotal;
    if !included {
        total += tax;
    }
    if let Some(shipping) = &shipping {
        total += shipping.amount.amount;
    }
    CartView {
        id,
        region: region.code.clone(),
        currency: currency.code(),
        lines,
        subtotal: money(subtotal, currency),
        tax: Tax {
            rate,
            included,
            amount: money(tax, currency),
        },
        shipping,
        total: money(total, currency),
        shipping_address: None,
        contact_email: None,
        needs_shipping: !region.details.shipping_options.is_empty(),
    }
}
