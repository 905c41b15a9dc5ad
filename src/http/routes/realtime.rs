//! The WebSocket endpoints: `GET /ws` for shoppers and `GET /ws/seller` for sellers.
//! The message protocol is in `docs/realtime.md`.

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde::Deserialize;

use crate::error::Code;
use crate::{
    http::{
        auth::{bearer_token, cookie_credential, SELLER_COOKIE, SHOPPER_COOKIE},
        error::ApiError,
        negotiation, AppState,
    },
    realtime::{
        seller::{self, FeedPosition, SellerSocket},
        shopper::{ShopperSocket, MAX_FRAME_BYTES},
        LocalHub,
    },
    sellers, shoppers,
};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(web::resource("/ws").route(web::get().to(shopper_socket)))
        .service(web::resource("/ws/seller").route(web::get().to(seller_socket)));
}

#[derive(Debug, Deserialize)]
pub struct ShopperSocketQuery {
    /// The shopper's session token (browsers cannot set headers on a WebSocket); needed only
    /// to follow carts.
    token: Option<String>,
    /// The currency prices are shown in (one the store sells in; else its default).
    currency: Option<String>,
}

fn handshake_failed(error: actix_web::Error) -> ApiError {
    ApiError::BadRequest {
        code: Code::WebsocketRequired,
        message: format!("this endpoint speaks WebSocket only: {error}"),
        field: None,
    }
}

/// Stock for anyone; carts for the shopper whose token comes with the connection.
pub async fn shopper_socket(
    state: web::Data<AppState>,
    hub: web::Data<LocalHub>,
    request: HttpRequest,
    query: web::Query<ShopperSocketQuery>,
    stream: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let token = match &query.token {
        Some(token) => Some(token.clone()),
        None => bearer_token(&request)
            .ok()
            .map(str::to_owned)
            .or_else(|| cookie_credential(&request, SHOPPER_COOKIE)),
    };
    let shopper = match token {
        Some(token) => {
            let client = state.pool.get().await?;
            Some(shoppers::authenticate(&*client, &token).await?)
        }
        None => None,
    };
    let preference = negotiation::locale_preference(
        &request,
        shopper.as_ref().and_then(|s| s.locale.as_deref()),
        &state,
    )?;
    let currency = negotiation::currency(query.currency.as_deref(), &state)?;
    let socket = ShopperSocket::new(
        state.clone(),
        hub.0.clone(),
        shopper.map(|s| s.id),
        preference,
        currency,
    );
    ws::WsResponseBuilder::new(socket, &request, stream)
        .frame_size(MAX_FRAME_BYTES)
        .start()
        .map_err(handshake_failed)
}

#[derive(Debug, Deserialize)]
pub struct SellerSocketQuery {
    /// The seller's API key, when the client cannot send `Authorization`.
    api_key: Option<String>,
    /// The `id` of the last event the client saw: the feed resumes right after it.
    last_event_id: Option<String>,
}

/// The seller's own order events and low-stock alerts.
pub async fn seller_socket(
    state: web::Data<AppState>,
    hub: web::Data<LocalHub>,
    request: HttpRequest,
    query: web::Query<SellerSocketQuery>,
    stream: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = match &query.api_key {
        Some(key) => key.clone(),
        None => match cookie_credential(&request, SELLER_COOKIE) {
            Some(key) => key,
            None => bearer_token(&request)?.to_owned(),
        },
    };
    let client = state.pool.get().await?;
    let seller = sellers::authenticate(&*client, &key).await?;
    let position = match query.last_event_id.as_deref() {
        Some(raw) => FeedPosition::parse(raw)?,
        None => seller::feed_now(&*client).await?,
    };
    drop(client);
    let socket = SellerSocket::new(state.clone(), hub.0.clone(), seller.id, position);
    ws::WsResponseBuilder::new(socket, &request, stream)
        .frame_size(MAX_FRAME_BYTES)
        .start()
        .map_err(handshake_failed)
}
