//! A registered shopper's address book: at most [`MAX_ADDRESSES`] saved addresses, exactly one
//! of them the default whenever there is any.
//!
//! Promises: the first address saved is the default; saving or changing one with
//! `default: true` moves the default to it; deleting the default promotes the most recently
//! saved other one. Every change locks the shopper's row first, so two tabs adding at once
//! can neither pass the limit nor leave two defaults (and a partial unique index refuses two
//! defaults whatever happens). Guests have no address book (403 `account_required`). A saved
//! address used for a cart is copied into it: later changes of the book leave carts and orders
//! as they were.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Address, AddressInput};
use crate::{
    db::PreparedClient,
    error::{Code, Error},
};

/// Most addresses one shopper may save.
pub const MAX_ADDRESSES: i64 = 20;

/// A saved address.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SavedAddress {
    pub id: Uuid,
    /// Exactly one saved address is the default.
    pub default: bool,
    #[serde(flatten)]
    pub address: Address,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new saved address: the address's fields, and whether it becomes the default (the first
/// one always does).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAddress {
    #[schema(example = "Erika Mustermann")]
    pub name: String,
    #[schema(example = "Heidestraße 17")]
    pub line1: String,
    pub line2: Option<String>,
    #[schema(example = "Köln")]
    pub city: String,
    #[schema(example = "51147")]
    pub postal_code: String,
    pub region: Option<String>,
    #[schema(example = "DE")]
    pub country: String,
    pub phone: Option<String>,
    #[serde(default)]
    pub default: bool,
}

impl NewAddress {
    fn input(&self) -> AddressInput {
        AddressInput {
            name: self.name.clone(),
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            region: self.region.clone(),
            country: self.country.clone(),
            phone: self.phone.clone(),
        }
    }
}

/// `Some(value)` for a field that is present, even as `null` (which clears an optional one).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A change of a saved address: the fields given replace the saved ones (`null` or `""`
/// clears an optional one); `default: true` makes it the default.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressPatch {
    pub name: Option<String>,
    pub line1: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub line2: Option<Option<String>>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub region: Option<Option<String>>,
    pub country: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    pub default: Option<bool>,
}

impl AddressPatch {
    /// `saved` with the given fields replaced.
    fn apply(&self, saved: Address) -> AddressInput {
        let mut input = AddressInput::from(saved);
        let replace = |field: &mut String, given: &Option<String>| {
            if let Some(value) = given {
                field.clone_from(value);
            }
        };
        replace(&mut input.name, &self.name);
        replace(&mut input.line1, &self.line1);
        replace(&mut input.city, &self.city);
        replace(&mut input.postal_code, &self.postal_code);
        replace(&mut input.country, &self.country);
        for (field, given) in [
            (&mut input.line2, &self.line2),
            (&mut input.region, &self.region),
            (&mut input.phone, &self.phone),
        ] {
            if let Some(value) = given {
                field.clone_from(value);
            }
        }
        input
    }
}

/// Refuses a guest: only registered shoppers keep an address book.
pub fn require_account(guest: bool) -> Result<(), Error> {
    if guest {
        return Err(Error::Forbidden {
            code: Code::AccountRequired,
            message: "guests have no address book: register or sign in first".into(),
        });
    }
    Ok(())
}

const COLUMNS: &str = "id, is_default, address, created_at, updated_at";

fn saved_of(row: &tokio_postgres::Row) -> Result<SavedAddress, Error> {
    Ok(SavedAddress {
        id: row.get(0),
        default: row.get(1),
        address: serde_json::from_value(row.get(2)).map_err(Error::internal)?,
        created_at: row.get(3),
        updated_at: row.get(4),
    })
}

/// The shopper's saved addresses: the default first, then the newest.
pub async fn list(
    client: &impl PreparedClient,
    shopper_id: Uuid,
) -> Result<Vec<SavedAddress>, Error> {
    client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM shopper_addresses WHERE shopper_id = $1
                 ORDER BY is_default DESC, created_at DESC, id DESC LIMIT $2"
            ),
            &[&shopper_id, &MAX_ADDRESSES],
        )
        .await?
        .iter()
        .map(saved_of)
        .collect()
}

/// One of the shopper's saved addresses; anyone else's is `None`.
pub async fn get(
    client: &impl PreparedClient,
    shopper_id: Uuid,
    id: Uuid,
) -> Result<Option<Address>, Error> {
    let row = client
        .query_opt(
            "SELECT address FROM shopper_addresses WHERE id = $1 AND shopper_id = $2",
            &[&id, &shopper_id],
        )
        .await?;
    row.map(|row| serde_json::from_value(row.get(0)).map_err(Error::internal))
        .transpose()
}

/// Locks the shopper's row: the book's changes take turns. A guest is refused.
async fn lock_book(tx: &impl PreparedClient, shopper_id: Uuid) -> Result<(), Error> {
    let row = tx
        .query_opt(
            "SELECT email IS NULL FROM shoppers WHERE id = $1 FOR NO KEY UPDATE",
            &[&shopper_id],
        )
        .await?
        .ok_or(Error::Unauthorized("no such shopper"))?;
    require_account(row.get(0))
}

/// Makes `id` the shopper's only default.
async fn make_default(tx: &impl PreparedClient, shopper_id: Uuid, id: Uuid) -> Result<(), Error> {
    tx.execute(
        "UPDATE shopper_addresses SET is_default = false, updated_at = now()
         WHERE shopper_id = $1 AND is_default AND id <> $2",
        &[&shopper_id, &id],
    )
    .await?;
    tx.execute(
        "UPDATE shopper_addresses SET is_default = true, updated_at = now()
         WHERE id = $1 AND NOT is_default",
        &[&id],
    )
    .await?;
    Ok(())
}

async fn load(tx: &impl PreparedClient, shopper_id: Uuid, id: Uuid) -> Result<SavedAddress, Error> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM shopper_addresses WHERE id = $1 AND shopper_id = $2"),
            &[&id, &shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("address"))?;
    saved_of(&row)
}

/// Saves an address (in a transaction: `tx`); the first one, or one with `default`, becomes
/// the default. 409 `too_many_addresses` beyond [`MAX_ADDRESSES`].
pub async fn create(
    tx: &impl PreparedClient,
    shopper_id: Uuid,
    new: &NewAddress,
) -> Result<SavedAddress, Error> {
    let address = new.input().validate("")?;
    lock_book(tx, shopper_id).await?;
    let saved: i64 = tx
        .query_one(
            "SELECT count(*) FROM shopper_addresses WHERE shopper_id = $1",
            &[&shopper_id],
        )
        .await?
        .get(0);
    if saved >= MAX_ADDRESSES {
        return Err(Error::Conflict {
            code: Code::TooManyAddresses,
            message: format!(
                "an address book holds at most {MAX_ADDRESSES} addresses; delete one first"
            ),
            field: None,
        });
    }
    let id = Uuid::now_v7();
    let json = serde_json::to_value(&address).map_err(Error::internal)?;
    tx.execute(
        "INSERT INTO shopper_addresses (id, shopper_id, address, is_default)
         VALUES ($1, $2, $3, false)",
        &[&id, &shopper_id, &json],
    )
    .await?;
    if saved == 0 || new.default {
        make_default(tx, shopper_id, id).await?;
    }
    load(tx, shopper_id, id).await
}

/// Changes a saved address (in a transaction: `tx`); another shopper's is "not found".
pub async fn update(
    tx: &impl PreparedClient,
    shopper_id: Uuid,
    id: Uuid,
    patch: &AddressPatch,
) -> Result<SavedAddress, Error> {
    lock_book(tx, shopper_id).await?;
    let saved = load(tx, shopper_id, id).await?;
    let address = patch.apply(saved.address.clone()).validate("")?;
    if patch.default == Some(false) && saved.default {
        return Err(Error::invalid_field(
            Code::InvalidField,
            "default",
            "one address is always the default: make another one the default instead",
        ));
    }
    if address != saved.address {
        let json = serde_json::to_value(&address).map_err(Error::internal)?;
        tx.execute(
            "UPDATE shopper_addresses SET address = $2, updated_at = now() WHERE id = $1",
            &[&id, &json],
        )
        .await?;
    }
    if patch.default == Some(true) {
        make_default(tx, shopper_id, id).await?;
    }
    load(tx, shopper_id, id).await
}

/// Deletes a saved address (in a transaction: `tx`); deleting the default promotes the most
/// recently saved other one. Another shopper's is "not found".
pub async fn delete(tx: &impl PreparedClient, shopper_id: Uuid, id: Uuid) -> Result<(), Error> {
    lock_book(tx, shopper_id).await?;
    let was_default: bool = tx
        .query_opt(
            "DELETE FROM shopper_addresses WHERE id = $1 AND shopper_id = $2 RETURNING is_default",
            &[&id, &shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("address"))?
        .get(0);
    if was_default {
        tx.execute(
            "UPDATE shopper_addresses SET is_default = true, updated_at = now()
             WHERE id = (SELECT id FROM shopper_addresses WHERE shopper_id = $1
                         ORDER BY created_at DESC, id DESC LIMIT 1)",
            &[&shopper_id],
        )
        .await?;
    }
    Ok(())
}
