//! Carts: a shopper's basket in one region, its lines held in stock, and its totals.
//!
//! Promises: a cart is only ever seen or changed by the shopper who owns it (others get "not
//! found"); every change locks the cart's row, so tabs, devices and processes acting on one
//! cart take turns and all see the same cart; units added are held through the inventory shards
//! (never more than available) and units removed are released at once, in the same transaction
//! as the line change; totals are computed in the region's currency from explicit or converted
//! prices, with the region's tax (included or added) and the chosen shipping option, every
//! amount rounded to the currency's minor units; its destination is a country (a quote) or a
//! checked address in the region (given, or copied from the address book), with the contact
//! email the order will carry.

pub mod changes;
pub mod live;
mod view;

pub use view::{catalog_line, load, priced, view, CartLine, CartView, Loaded, Shipping, Tax};

use crate::db::PreparedClient;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    addresses::{self, Address, AddressInput},
    error::{Code, Error},
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

/// The variant of a storefront SKU (or of a line the cart has, on sale or not) and the cart's
/// quantity of it so far.
pub async fn line_of(
    client: &impl PreparedClient,
    cart_id: Uuid,
    sku: &str,
) -> Result<(Uuid, String, u32), Error> {
    let row = client
        .query_opt(
            "SELECT v.id, v.sku, coalesce(l.quantity, 0) FROM variants v
             JOIN products p ON p.id = v.product_id
             JOIN sellers s ON s.id = p.seller_id
             LEFT JOIN cart_lines l ON l.cart_id = $1 AND l.variant_id = v.id
             WHERE upper(v.sku) = upper($2)
               AND ((p.status = 'active' AND s.status = 'active') OR l.quantity IS NOT NULL)",
            &[&cart_id, &sku],
        )
        .await?
        .ok_or_else(unknown_sku)?;
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
    /// Whether the SKU is on the storefront now (a line of an archived product or a suspended
    /// seller may still be lowered or removed, never raised).
    pub on_sale: bool,
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
                      WHERE o.cart_id = c.id AND o.variant_id IS DISTINCT FROM v.id),
                    coalesce(p.status = 'active' AND s.status = 'active', false)
             FROM carts c
             LEFT JOIN (variants v
                        JOIN products p ON p.id = v.product_id
                        JOIN sellers s ON s.id = p.seller_id)
                    ON upper(v.sku) = upper($3)
             LEFT JOIN cart_lines l ON l.cart_id = c.id AND l.variant_id = v.id
             WHERE c.id = $1 AND c.shopper_id = $2",
            &[&cart_id, &shopper_id, &sku],
        )
        .await?
        .ok_or(Error::NotFound("cart"))?;
    let quantity = u32::try_from(row.get::<_, i32>(2)).unwrap_or(0);
    let on_sale: bool = row.get(4);
    match row.get::<_, Option<Uuid>>(0) {
        Some(variant_id) if on_sale || quantity > 0 => Ok(PeekedLine {
            variant_id,
            sku: row.get(1),
            quantity,
            other_lines: row.get(3),
            on_sale,
        }),
        _ => Err(unknown_sku()),
    }
}

pub fn unknown_sku() -> Error {
    Error::invalid_field(Code::UnknownSku, "sku", "no such SKU on the storefront")
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
            "UPDATE carts SET updated_at = now(), version = version + 1 WHERE id = $1",
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

/// Where a cart ships to, as the shopper chose it.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Only a country, for a quote: the cart shows tax and shipping, but checkout needs an
    /// address.
    Country(String),
    /// A full address, checked (the region's check comes when it is set).
    Address(Address),
    /// One of the shopper's saved addresses, copied into the cart.
    Saved(Uuid),
}

impl Destination {
    /// Exactly one of `country`, `address` (checked, its errors naming `address.…`) and
    /// `address_id`; the error names the one too many, or `address` when none is given.
    pub fn from_parts(
        country: Option<String>,
        address: Option<AddressInput>,
        address_id: Option<Uuid>,
    ) -> Result<Self, Error> {
        let given = [
            ("country", country.is_some()),
            ("address", address.is_some()),
            ("address_id", address_id.is_some()),
        ];
        if let Some((extra, _)) = given.iter().filter(|(_, is)| *is).nth(1) {
            return Err(Error::invalid_field(
                Code::InvalidField,
                *extra,
                "give one of address, address_id or country",
            ));
        }
        match (country, address, address_id) {
            (Some(country), _, _) => Ok(Self::Country(country.trim().to_ascii_uppercase())),
            (_, Some(address), _) => Ok(Self::Address(address.validate("address.")?)),
            (_, _, Some(id)) => Ok(Self::Saved(id)),
            _ => Err(Error::invalid_field(
                Code::MissingField,
                "address",
                "give the address to ship to (or address_id, or a country for a quote)",
            )),
        }
    }
}

/// Sets where the cart ships, by which option, and (when given) the contact email; the
/// destination replaces the one before (a country alone clears the address). A saved address
/// is copied into the cart; it must be in the cart's region as any address.
pub async fn set_shipping(
    client: &impl PreparedClient,
    cart: &LockedCart,
    shopper_id: Uuid,
    destination: Destination,
    option: &str,
    email: Option<&str>,
) -> Result<(), Error> {
    let region = regions::get(client, &cart.region).await?;
    let (country, address) = match destination {
        Destination::Country(country) => {
            check_country(&region, &country, "country")?;
            (country, None)
        }
        Destination::Address(address) => {
            check_country(&region, &address.country, "address.country")?;
            (address.country.clone(), Some(address))
        }
        Destination::Saved(id) => {
            let address = addresses::book::get(client, shopper_id, id)
                .await?
                .ok_or_else(|| {
                    Error::invalid_field(
                        Code::UnknownAddress,
                        "address_id",
                        "no such address in your address book",
                    )
                })?;
            check_country(&region, &address.country, "address_id")?;
            (address.country.clone(), Some(address))
        }
    };
    check_option(&region, option, "option")?;
    let address = address
        .map(|a| serde_json::to_value(a).map_err(Error::internal))
        .transpose()?;
    client
        .execute(
            "UPDATE carts SET shipping_country = $2, shipping_option = $3, shipping_address = $4,
                    contact_email = coalesce($5, contact_email), updated_at = now(),
                    version = version + 1
             WHERE id = $1",
            &[&cart.id, &country, &option, &address, &email],
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
    check_country(region, country, &format!("{field_prefix}country"))?;
    check_option(region, option, &format!("{field_prefix}option"))
}

/// Refuses a destination country outside `region`, naming `field`.
pub fn check_country(region: &Region, country: &str, field: &str) -> Result<(), Error> {
    if !region.details.countries.iter().any(|c| c == country) {
        return Err(Error::invalid_field(
            Code::CountryOutsideRegion,
            field,
            format!(
                "region {} ships to {}",
                region.code,
                region.details.countries.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Refuses a shipping option `region` does not offer, naming `field`.
pub fn check_option(region: &Region, option: &str, field: &str) -> Result<(), Error> {
    if !region
        .details
        .shipping_options
        .iter()
        .any(|o| o.id == option)
    {
        return Err(Error::invalid_field(
            Code::UnknownShippingOption,
            field,
            format!("no such shipping option in region {}", region.code),
        ));
    }
    Ok(())
}

/// Most carts one page of a shopper's list returns.
pub const MAX_CART_PAGE: i64 = 100;

/// One of the shopper's carts, in short.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartSummary {
    pub id: Uuid,
    pub region: String,
    pub line_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CartSummaryPage {
    pub carts: Vec<CartSummary>,
    /// Pass as `?cursor=` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The shopper's carts, newest first, from before `before` (a cart id: ids are time-ordered).
/// Nobody else's.
pub async fn shopper_carts(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<CartSummaryPage, Error> {
    let limit = limit.clamp(1, MAX_CART_PAGE);
    let rows = client
        .query(
            "SELECT c.id, c.region, c.created_at, c.updated_at,
                    (SELECT count(*) FROM cart_lines l WHERE l.cart_id = c.id)
             FROM carts c
             WHERE c.shopper_id = $1 AND ($2::uuid IS NULL OR c.id < $2)
             ORDER BY c.id DESC LIMIT $3",
            &[&shopper_id, &before, &(limit + 1)],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let carts: Vec<CartSummary> = rows
        .iter()
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|row| CartSummary {
            id: row.get(0),
            region: row.get(1),
            created_at: row.get(2),
            updated_at: row.get(3),
            line_count: row.get(4),
        })
        .collect();
    let next_cursor = more
        .then(|| carts.last().map(|c| c.id.to_string()))
        .flatten();
    Ok(CartSummaryPage { carts, next_cursor })
}
