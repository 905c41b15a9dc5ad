//! Carts: a shopper's basket in one region, its lines held in stock, and its totals.
//!
//! Promises: a cart is only ever seen or changed by the shopper who owns it (others get "not
//! found"); every change locks the cart's row, so tabs, devices and processes acting on one
//! cart take turns and all see the same cart; units added are held through the inventory shards
//! (never more than available) and units removed are released at once, in the same transaction
//! as the line change; totals are computed in the region's currency from explicit or converted
//! prices, with the region's tax (included or added) and the chosen shipping option, every
//! amount rounded to the currency's minor units.

pub mod changes;

use std::collections::BTreeMap;

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    configuration::Pricing,
    error::{Code, Error},
    locale::LocalePreference,
    money::{by_currency, Currency, Price},
    regions::{self, Region},
};

/// Most lines one cart may have, and most units of one line.
pub const MAX_LINES: i64 = 100;
pub const MAX_QUANTITY: u32 = 1000;

/// A cart row, locked for a change.
pub struct LockedCart {
    pub id: Uuid,
    pub region: String,
}

pub async fn create(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    region: &str,
) -> Result<Uuid, Error> {
    let region = regions::named_in_request(client, region).await?;
    let id = Uuid::now_v7();
    client
        .execute(
            "INSERT INTO carts (id, shopper_id, region) VALUES ($1, $2, $3)",
            &[&id, &shopper_id, &region.code],
        )
        .await?;
    Ok(id)
}

/// Locks the shopper's own cart; any other cart is "not found".
pub async fn lock_own(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    cart_id: Uuid,
) -> Result<LockedCart, Error> {
    let row = client
        .query_opt(
            "SELECT id, region FROM carts WHERE id = $1 AND shopper_id = $2 FOR UPDATE",
            &[&cart_id, &shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("cart"))?;
    Ok(LockedCart {
        id: row.get(0),
        region: row.get(1),
    })
}

/// The variant of a storefront SKU and the cart's quantity of it so far.
pub async fn line_of(
    client: &impl PreparedClient,
    cart_id: Uuid,
    sku: &str,
) -> Result<(Uuid, String, u32), Error> {
    let row = client
        .query_opt(
            "SELECT v.id, v.sku, coalesce(l.quantity, 0) FROM variants v
             JOIN products p ON p.id = v.product_id AND p.status = 'active'
             JOIN sellers s ON s.id = p.seller_id AND s.status = 'active'
             LEFT JOIN cart_lines l ON l.cart_id = $1 AND l.variant_id = v.id
             WHERE upper(v.sku) = upper($2)",
            &[&cart_id, &sku],
        )
        .await?
        .ok_or_else(|| {
            Error::invalid_field(Code::UnknownSku, "sku", "no such SKU on the storefront")
        })?;
    let quantity: i32 = row.get(2);
    Ok((row.get(0), row.get(1), u32::try_from(quantity).unwrap_or(0)))
}

/// A line as a change finds it before taking the cart's lock.
pub struct PeekedLine {
    pub variant_id: Uuid,
    /// The SKU as the seller wrote it.
    pub sku: String,
    pub quantity: u32,
    /// The cart's other lines.
    pub other_lines: i64,
}

/// The shopper's own cart's line of a storefront SKU, read in one statement without a lock
/// (what a change that adds units needs before it holds stock; the line itself is then
/// written under the cart's lock). A missing cart is "not found", an unknown SKU the field's
/// error.
pub async fn peek_line(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    cart_id: Uuid,
    sku: &str,
) -> Result<PeekedLine, Error> {
    let row = client
        .query_opt(
            "SELECT v.id, v.sku, coalesce(l.quantity, 0),
                    (SELECT count(*) FROM cart_lines o
                      WHERE o.cart_id = c.id AND o.variant_id IS DISTINCT FROM v.id)
             FROM carts c
             LEFT JOIN (variants v
                        JOIN products p ON p.id = v.product_id AND p.status = 'active'
                        JOIN sellers s ON s.id = p.seller_id AND s.status = 'active')
                    ON upper(v.sku) = upper($3)
             LEFT JOIN cart_lines l ON l.cart_id = c.id AND l.variant_id = v.id
             WHERE c.id = $1 AND c.shopper_id = $2",
            &[&cart_id, &shopper_id, &sku],
        )
        .await?
        .ok_or(Error::NotFound("cart"))?;
    let Some(variant_id) = row.get::<_, Option<Uuid>>(0) else {
        return Err(Error::invalid_field(
            Code::UnknownSku,
            "sku",
            "no such SKU on the storefront",
        ));
    };
    Ok(PeekedLine {
        variant_id,
        sku: row.get(1),
        quantity: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
        other_lines: row.get(3),
    })
}

/// Refuses a new line beyond [`MAX_LINES`] (checked before any stock is held for it).
pub async fn check_room(
    client: &impl PreparedClient,
    cart_id: Uuid,
    variant_id: Uuid,
) -> Result<(), Error> {
    let lines: i64 = client
        .query_one(
            "SELECT count(*) FROM cart_lines WHERE cart_id = $1 AND variant_id <> $2",
            &[&cart_id, &variant_id],
        )
        .await?
        .get(0);
    refuse_beyond_max_lines(lines)
}

/// Refuses one more line next to `other_lines`, beyond [`MAX_LINES`].
pub fn refuse_beyond_max_lines(other_lines: i64) -> Result<(), Error> {
    if other_lines >= MAX_LINES {
        return Err(Error::invalid_field(
            Code::TooManyLines,
            "sku",
            format!("a cart holds at most {MAX_LINES} lines"),
        ));
    }
    Ok(())
}

/// Sets a line's quantity (0 removes it).
pub async fn set_line(
    client: &impl PreparedClient,
    cart_id: Uuid,
    variant_id: Uuid,
    quantity: u32,
) -> Result<(), Error> {
    if quantity == 0 {
        client
            .execute(
                "DELETE FROM cart_lines WHERE cart_id = $1 AND variant_id = $2",
                &[&cart_id, &variant_id],
            )
            .await?;
    } else {
        client
            .execute(
                "INSERT INTO cart_lines (cart_id, variant_id, quantity) VALUES ($1, $2, $3)
                 ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = EXCLUDED.quantity",
                &[
                    &cart_id,
                    &variant_id,
                    &i32::try_from(quantity).unwrap_or(i32::MAX),
                ],
            )
            .await?;
    }
    client
        .execute(
            "UPDATE carts SET updated_at = now() WHERE id = $1",
            &[&cart_id],
        )
        .await?;
    Ok(())
}

/// Returns `units` of the cart's live holds on a variant to stock, newest holds first.
pub async fn release(
    client: &impl PreparedClient,
    cart_id: Uuid,
    variant_id: Uuid,
    units: u32,
) -> Result<(), Error> {
    let holds = client
        .query(
            "SELECT id, quantity FROM stock_holds
             WHERE owner = $1 AND variant_id = $2 AND released_at IS NULL
             ORDER BY created_at DESC FOR UPDATE",
            &[&cart_id.to_string(), &variant_id],
        )
        .await?;
    let mut left = i64::from(units);
    let mut released = 0_i64;
    for hold in holds {
        if left == 0 {
            break;
        }
        let (id, quantity): (Uuid, i32) = (hold.get(0), hold.get(1));
        let take = left.min(i64::from(quantity));
        if take == i64::from(quantity) {
            client
                .execute(
                    "UPDATE stock_holds SET released_at = now() WHERE id = $1",
                    &[&id],
                )
                .await?;
        } else {
            client
                .execute(
                    "UPDATE stock_holds SET quantity = quantity - $2 WHERE id = $1",
                    &[&id, &i32::try_from(take).unwrap_or(0)],
                )
                .await?;
        }
        left -= take;
        released += take;
    }
    if released > 0 {
        client
            .execute(
                "UPDATE variants SET held = held - $2 WHERE id = $1",
                &[&variant_id, &i32::try_from(released).unwrap_or(0)],
            )
            .await?;
    }
    Ok(())
}

pub async fn set_shipping(
    client: &impl PreparedClient,
    cart: &LockedCart,
    country: &str,
    option: &str,
) -> Result<(), Error> {
    let region = regions::get(client, &cart.region).await?;
    check_shipping(&region, country, option, "")?;
    client
        .execute(
            "UPDATE carts SET shipping_country = $2, shipping_option = $3, updated_at = now() WHERE id = $1",
            &[&cart.id, &country, &option],
        )
        .await?;
    Ok(())
}

/// Refuses a destination outside `region` or a shipping option it does not offer; the
/// error names `{field_prefix}country` or `{field_prefix}option`.
pub fn check_shipping(
    region: &Region,
    country: &str,
    option: &str,
    field_prefix: &str,
) -> Result<(), Error> {
    if !region.details.countries.iter().any(|c| c == country) {
        return Err(Error::invalid_field(
            Code::CountryOutsideRegion,
            format!("{field_prefix}country"),
            format!(
                "region {} ships to {}",
                region.code,
                region.details.countries.join(", ")
            ),
        ));
    }
    if !region
        .details
        .shipping_options
        .iter()
        .any(|o| o.id == option)
    {
        return Err(Error::invalid_field(
            Code::UnknownShippingOption,
            format!("{field_prefix}option"),
            format!("no such shipping option in region {}", region.code),
        ));
    }
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
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
    /// Whether the region ships (has shipping options), so checkout needs a destination.
    #[serde(skip)]
    pub needs_shipping: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CartLine {
    /// Where the line's order line comes from; not shown to shoppers.
    #[serde(skip)]
    pub variant_id: Uuid,
    #[serde(skip)]
    pub product_id: Uuid,
    #[serde(skip)]
    pub seller_id: Uuid,
    pub sku: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: Price,
    pub line_total: Price,
    /// Units still held for this cart, and until when; fewer than `quantity` once holds expire.
    pub held_quantity: i64,
    pub held_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tax {
    #[schema(value_type = String, example = "0.19")]
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    /// True where prices include tax (the amount is contained in the subtotal).
    pub included: bool,
    pub amount: Price,
}

#[derive(Debug, Serialize, ToSchema)]
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
    // The cart with its region in one round trip (a cart's region cannot go: foreign key).
    let cart = client
        .query_opt(
            &format!(
                "SELECT c.shipping_country, c.shipping_option, {}
                 FROM carts c JOIN regions r ON r.code = c.region
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
    let chain: Vec<&str> = preference.tags().iter().map(|l| l.as_str()).collect();
    let rows = client
        .query(
            "SELECT v.sku, l.quantity, v.weight_grams, p.base_currency,
                    (SELECT coalesce(jsonb_object_agg(vp.currency, vp.amount::text), '{}')
                       FROM variant_prices vp WHERE vp.variant_id = v.id),
                    (SELECT coalesce(sum(h.quantity), 0) FROM stock_holds h
                      WHERE h.owner = $1::uuid::text AND h.variant_id = v.id
                        AND h.released_at IS NULL AND h.expires_at > now()),
                    (SELECT max(h.expires_at) FROM stock_holds h
                      WHERE h.owner = $1::uuid::text AND h.variant_id = v.id
                        AND h.released_at IS NULL AND h.expires_at > now()),
                    c.title, v.id, p.id, p.seller_id
             FROM cart_lines l
             JOIN variants v ON v.id = l.variant_id
             JOIN products p ON p.id = v.product_id
             CROSS JOIN LATERAL (
                 SELECT c.title FROM product_content c
                 WHERE c.product_id = p.id AND (c.locale = ANY($2::text[]) OR c.locale = p.default_locale)
                 ORDER BY coalesce(array_position($2::text[], c.locale), 1000) LIMIT 1
             ) c
             WHERE l.cart_id = $1
             ORDER BY l.added_at, v.sku",
            &[&cart_id, &chain],
        )
        .await?;
    let mut lines = Vec::with_capacity(rows.len());
    let (mut subtotal, mut weight) = (Decimal::ZERO, 0_u32);
    for row in &rows {
        let quantity = u32::try_from(row.get::<_, i32>(1)).unwrap_or(0);
        let prices: BTreeMap<String, Decimal> =
            serde_json::from_value(row.get(4)).map_err(Error::internal)?;
        let base = Currency::from_code(row.get::<_, &str>(3).trim())
            .ok_or_else(|| Error::internal(anyhow::anyhow!("unknown base currency")))?;
        let unit = pricing
            .fx
            .price_in(&by_currency(&prices), base, currency)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("a cart line has no price")))?;
        let line_total = unit.amount * Decimal::from(quantity);
        subtotal += line_total;
        weight = weight.saturating_add(
            u32::try_from(row.get::<_, i32>(2))
                .unwrap_or(0)
                .saturating_mul(quantity),
        );
        lines.push(CartLine {
            variant_id: row.get(8),
            product_id: row.get(9),
            seller_id: row.get(10),
            sku: row.get(0),
            title: row.get(7),
            quantity,
            line_total: Price {
                amount: currency.round(line_total),
                ..unit.clone()
            },
            unit_price: unit,
            held_quantity: row.get(5),
            held_until: row.get(6),
        });
    }
    Ok(priced(
        cart_id,
        &region,
        currency,
        lines,
        (subtotal, weight),
        (cart.get(0), cart.get(1)),
    ))
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
        needs_shipping: !region.details.shipping_options.is_empty(),
    }
}
