//! Carts: a shopper's own baskets, with stock held for every unit in them.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use agora_actors::inventory::ReserveStock;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::Code;
use crate::{
    carts::{self, CartView, MAX_QUANTITY},
    http::{
        auth::ShopperAuth,
        error::{error_chain, ApiError, ErrorBody},
        extract::ApiJson,
        negotiation, AppState,
    },
    inventory,
    locale::LocalePreference,
    realtime,
};

/// Attempts to give back a hold whose cart line could not be written (e.g. no pooled
/// connection was free), 100 ms apart, before leaving it to expire.
const UNWRITTEN_HOLD_RELEASE_ATTEMPTS: u32 = 3;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/carts").route(web::post().to(create)))
        .service(web::resource("/carts/{id}").route(web::get().to(show)))
        .service(web::resource("/carts/{id}/items").route(web::post().to(add_item)))
        .service(
            web::resource("/carts/{id}/items/{sku}")
                .route(web::patch().to(change_item))
                .route(web::delete().to(remove_item)),
        )
        .service(web::resource("/carts/{id}/shipping").route(web::put().to(set_shipping)));
}

async fn render(
    state: &AppState,
    shopper_id: Uuid,
    cart_id: Uuid,
    preference: &LocalePreference,
) -> Result<CartView, ApiError> {
    let client = state.pool.get().await?;
    crate::db::timed(
        "cart_view",
        carts::view(&*client, shopper_id, cart_id, preference, &state.pricing),
    )
    .await
}

/// The shopper's chosen locale, else the browser's Accept-Language.
fn preference(
    state: &AppState,
    request: &HttpRequest,
    shopper: &ShopperAuth,
) -> Result<LocalePreference, ApiError> {
    negotiation::locale_preference(request, shopper.shopper.locale.as_deref(), state)
}

/// The cart after a change, shown to every socket following it, on every process.
async fn announce(
    state: &AppState,
    shopper_id: Uuid,
    cart_id: Uuid,
    preference: &LocalePreference,
) -> Result<CartView, ApiError> {
    let cart = render(state, shopper_id, cart_id, preference).await?;
    if let Ok(rendered) = serde_json::to_value(&cart) {
        realtime::publish(
            &state.hot,
            &realtime::Notice::Cart {
                cart_id,
                cart: rendered,
            },
        )
        .await;
    }
    Ok(cart)
}

/// Runs `change` on the cart's actor, then renders and announces the cart there too: one
/// cart's changes in this process run one at a time, and their announcements go out in the
/// order the changes were made. Answers the cart.
pub async fn change_and_announce<F, Fut>(
    state: &web::Data<AppState>,
    request: &HttpRequest,
    shopper: &ShopperAuth,
    cart_id: Uuid,
    change: F,
) -> Result<CartView, ApiError>
where
    F: FnOnce(web::Data<AppState>, Uuid) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let preference = preference(state, request, shopper)?;
    let (owner, shopper_id) = (state.clone(), shopper.shopper.id);
    state
        .carts
        .change(cart_id, async move {
            change(owner.clone(), shopper_id).await?;
            announce(&owner, shopper_id, cart_id, &preference).await
        })
        .await?
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCart {
    #[schema(example = "EU")]
    region: String,
}

/// Open a cart in a region (shopper).
#[utoipa::path(post, path = "/api/v1/carts", tag = "carts", request_body = NewCart,
    responses((status = 201, body = CartView), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    body: ApiJson<NewCart>,
) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let id = carts::create(&*client, shopper.shopper.id, &body.0.region).await?;
    drop(client);
    let cart = render(
        &state,
        shopper.shopper.id,
        id,
        &preference(&state, &request, &shopper)?,
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/carts/{id}"),
        ))
        .json(cart))
}

/// The shopper's cart with its totals; another shopper's cart is "not found".
#[utoipa::path(get, path = "/api/v1/carts/{id}", tag = "carts", params(("id" = Uuid, Path)),
    responses((status = 200, body = CartView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let preference = preference(&state, &request, &shopper)?;
    Ok(HttpResponse::Ok()
        .json(render(&state, shopper.shopper.id, id.into_inner(), &preference).await?))
}

fn check_quantity(quantity: u32, allow_zero: bool) -> Result<u32, ApiError> {
    if (quantity == 0 && !allow_zero) || quantity > MAX_QUANTITY {
        return Err(ApiError::invalid_field(
            Code::InvalidQuantity,
            "quantity",
            format!("must be 1 to {MAX_QUANTITY}"),
        ));
    }
    Ok(quantity)
}

/// What a line change asks for.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Add units to the line.
    Add(u32),
    /// Set the line to exactly this many units (0 removes it).
    Set(u32),
}

impl Target {
    /// The line's quantity this change asks for, when it has `current` units now.
    fn wanted(self, current: u32) -> Result<u32, ApiError> {
        match self {
            Self::Add(units) => check_quantity(current.saturating_add(units), false),
            Self::Set(units) => check_quantity(units, true),
        }
    }
}

/// Changes the line of `sku`: removed units are released under the cart's lock at once; added
/// units are held through the inventory shards first, with no connection held meanwhile (the
/// shard needs one to commit), then written under the cart's lock, taking into account
/// whatever another tab changed in between.
async fn change_line(
    state: &AppState,
    shopper_id: Uuid,
    cart_id: Uuid,
    sku: &str,
    target: Target,
) -> Result<(), ApiError> {
    let peeked = {
        let client = state.pool.get().await?;
        carts::peek_line(&*client, shopper_id, cart_id, sku).await?
    };
    let wanted = target.wanted(peeked.quantity)?;
    // Added units need no lock until their line is written (below); fewer units are released
    // under the lock at once, from the line as it is then (another process may have changed it
    // since the peek, so it can turn out to be an addition after all).
    let (variant, sku, extra) = if wanted > peeked.quantity {
        carts::refuse_beyond_max_lines(peeked.other_lines)?;
        (peeked.variant_id, peeked.sku, wanted - peeked.quantity)
    } else {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        let cart = carts::lock_own(&tx, shopper_id, cart_id).await?;
        let (variant, sku, current) = carts::line_of(&tx, cart.id, sku).await?;
        let wanted = target.wanted(current)?;
        if wanted <= current {
            carts::release(&tx, cart.id, variant, current - wanted).await?;
            carts::set_line(&tx, cart.id, variant, wanted).await?;
            tx.commit().await?;
            state.counters.stock_returned(&[&sku]).await;
            return Ok(());
        }
        carts::check_room(&tx, cart.id, variant).await?;
        (variant, sku, wanted - current)
    };

    let hold = ReserveStock {
        sku: sku.clone(),
        quantity: extra,
        owner: cart_id.to_string(),
        hold_for: Duration::from_secs(state.settings.inventory.hold_ttl_secs),
    };
    let held = state.inventory.reserve(hold).await?;

    let written = async {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        let cart = carts::lock_own(&tx, shopper_id, cart_id).await?;
        let (_, _, now) = carts::line_of(&tx, cart.id, &sku).await?;
        let mut quantity = now.saturating_add(extra);
        let surplus = match target {
            Target::Set(units) if quantity > units.max(now) => quantity - units.max(now),
            Target::Add(_) if quantity > MAX_QUANTITY => quantity - MAX_QUANTITY,
            _ => 0,
        };
        if surplus > 0 {
            carts::release(&tx, cart.id, variant, surplus).await?;
            quantity -= surplus;
        }
        carts::set_line(&tx, cart.id, variant, quantity).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(())
    }
    .await;
    if written.is_ok() {
        crate::recommendations::note(
            &state.pool,
            shopper_id,
            crate::recommendations::Signal::Carted { variant },
        )
        .await;
    }
    if written.is_err() {
        // The units are held but not in the cart: give them back now rather than at expiry.
        for attempt in 1..=UNWRITTEN_HOLD_RELEASE_ATTEMPTS {
            let released = async {
                let client = state.pool.get().await?;
                inventory::release_hold(&*client, held.id).await
            }
            .await;
            match released {
                Ok(()) => {
                    state.counters.stock_returned(&[&sku]).await;
                    break;
                }
                Err(error) if attempt == UNWRITTEN_HOLD_RELEASE_ATTEMPTS => {
                    tracing::warn!(hold = %held.id, error = %error_chain(&error), "releasing an unwritten hold failed; it expires by itself");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    written
}

/// Answers a change of one line, made on the cart's actor, with the cart.
async fn line_changed(
    state: &web::Data<AppState>,
    request: &HttpRequest,
    shopper: &ShopperAuth,
    cart_id: Uuid,
    sku: String,
    target: Target,
) -> Result<HttpResponse, ApiError> {
    let change = move |state: web::Data<AppState>, shopper_id| async move {
        change_line(&state, shopper_id, cart_id, &sku, target).await
    };
    let cart = change_and_announce(state, request, shopper, cart_id, change).await?;
    Ok(HttpResponse::Ok().json(cart))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItem {
    sku: String,
    quantity: u32,
}

/// Add units of a SKU, holding them; 409 `insufficient_stock` with `available`.
#[utoipa::path(post, path = "/api/v1/carts/{id}/items", tag = "carts", params(("id" = Uuid, Path)), request_body = AddItem,
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "`insufficient_stock`, with `available`", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("shopper_token" = [])))]
#[tracing::instrument(name = "add_to_cart", skip_all, fields(cart_id = %id))]
pub async fn add_item(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<AddItem>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let add = check_quantity(body.0.quantity, false)?;
    line_changed(&state, &request, &shopper, id, body.0.sku, Target::Add(add)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeItem {
    /// The new quantity; 0 removes the line.
    quantity: u32,
}

/// Change a line's quantity, holding or releasing the difference.
#[utoipa::path(patch, path = "/api/v1/carts/{id}/items/{sku}", tag = "carts",
    params(("id" = Uuid, Path), ("sku" = String, Path)), request_body = ChangeItem,
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn change_item(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    path: web::Path<(Uuid, String)>,
    body: ApiJson<ChangeItem>,
) -> Result<HttpResponse, ApiError> {
    let (id, sku) = path.into_inner();
    let target = Target::Set(body.0.quantity);
    line_changed(&state, &request, &shopper, id, sku, target).await
}

/// Remove a line, releasing its held stock.
#[utoipa::path(delete, path = "/api/v1/carts/{id}/items/{sku}", tag = "carts",
    params(("id" = Uuid, Path), ("sku" = String, Path)),
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn remove_item(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, sku) = path.into_inner();
    line_changed(&state, &request, &shopper, id, sku, Target::Set(0)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetShipping {
    /// ISO 3166-1 alpha-2 destination country, in the cart's region.
    #[schema(example = "DE")]
    country: String,
    /// A shipping option id of the region.
    #[schema(example = "dhl-standard")]
    option: String,
}

/// Choose the destination country (for its tax rate) and the shipping option.
#[utoipa::path(put, path = "/api/v1/carts/{id}/shipping", tag = "carts", params(("id" = Uuid, Path)), request_body = SetShipping,
    responses((status = 200, body = CartView), (status = 429, description = "`rate_limited`: too many changes of this cart at once", body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn set_shipping(
    state: web::Data<AppState>,
    request: HttpRequest,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<SetShipping>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let SetShipping { country, option } = body.0;
    let change = move |state: web::Data<AppState>, shopper_id| async move {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        let cart = carts::lock_own(&tx, shopper_id, id).await?;
        carts::set_shipping(&tx, &cart, &country, &option).await?;
        tx.commit().await?;
        Ok(())
    };
    let cart = change_and_announce(&state, &request, &shopper, id, change).await?;
    Ok(HttpResponse::Ok().json(cart))
}
