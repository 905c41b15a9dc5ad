//! After the sale: sellers ship by line, cancel what they cannot supply, refund, and decide and
//! receive returns; shoppers cancel an order nothing of which has shipped and ask for returns.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    error::Code,
    http::{
        auth::{SellerOrderAuth, ShopperAuth},
        error::{ApiError, ErrorBody},
        extract::ApiJson,
        idempotency::idempotency_key,
        AppState,
    },
    orders::{
        self,
        cancellations::PartRefund,
        fulfillments::{Shipment, ShipmentRequest},
        refunds::Refund,
        returns::{Return, ReturnLineRequest},
        units::LineRequest,
        OrderView,
    },
};

pub fn configure(config: &mut web::ServiceConfig) {
    let seller_order = "/sellers/me/orders/{id}";
    config
        .service(web::resource("/orders/{id}/cancel").route(web::post().to(cancel_order)))
        .service(web::resource("/orders/{id}/returns").route(web::post().to(request_return)))
        .service(web::resource(format!("{seller_order}/fulfillments")).route(web::post().to(ship)))
        .service(
            web::resource(format!("{seller_order}/cancellations"))
                .route(web::post().to(cancel_lines)),
        )
        .service(web::resource(format!("{seller_order}/refunds")).route(web::post().to(refund)))
        .service(
            web::resource(format!("{seller_order}/returns/{{return_id}}/{{step}}"))
                .route(web::post().to(return_step)),
        );
}

/// Units of one line of the order, by SKU.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineUnits {
    sku: String,
    quantity: i32,
}

fn line_requests(lines: &[LineUnits]) -> Vec<LineRequest> {
    lines
        .iter()
        .map(|line| LineRequest {
            sku: line.sku.clone(),
            quantity: line.quantity,
        })
        .collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipLines {
    #[schema(example = "DHL")]
    carrier: String,
    #[schema(example = "00340434161094042557")]
    tracking_number: String,
    /// The units shipped; every unit not yet shipped nor cancelled when absent.
    lines: Option<Vec<LineUnits>>,
}

/// Ship units of the seller's part, whole or by line, with the carrier's tracking.
#[utoipa::path(post, path = "/api/v1/sellers/me/orders/{id}/fulfillments", tag = "orders",
    params(("id" = Uuid, Path)), request_body = ShipLines,
    responses((status = 201, body = Shipment), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`: nothing left to ship", body = ErrorBody),
              (status = 422, description = "`invalid_length`, `unknown_order_line`, `invalid_quantity`", body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn ship(
    state: web::Data<AppState>,
    seller: SellerOrderAuth,
    id: web::Path<Uuid>,
    body: ApiJson<ShipLines>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let lines = body.lines.as_deref().map(line_requests);
    let request = ShipmentRequest::tracked(&body.carrier, &body.tracking_number, lines)?;
    let shipment = state
        .after_sale
        .ship(id.into_inner(), seller.0.id, request)
        .await?;
    Ok(HttpResponse::Created().json(shipment))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelLines {
    /// The units the seller cannot supply; every unit not yet shipped when absent.
    lines: Option<Vec<LineUnits>>,
}

/// Cancel lines of the seller's part it cannot supply: back in stock, refunded to the shopper.
#[utoipa::path(post, path = "/api/v1/sellers/me/orders/{id}/cancellations", tag = "orders",
    params(("id" = Uuid, Path)), request_body = CancelLines,
    responses((status = 201, body = Refund), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`, `payment_not_captured`", body = ErrorBody),
              (status = 422, description = "`unknown_order_line`, `invalid_quantity`", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn cancel_lines(
    state: web::Data<AppState>,
    seller: SellerOrderAuth,
    id: web::Path<Uuid>,
    body: ApiJson<CancelLines>,
) -> Result<HttpResponse, ApiError> {
    let lines = body.0.lines.as_deref().map(line_requests);
    let refund = state
        .after_sale
        .cancel_lines(id.into_inner(), seller.0.id, lines)
        .await?;
    Ok(HttpResponse::Created().json(refund))
}

/// Either `{"lines": [...]}` (shipped units, their price and tax share) or `{"amount": "5.00"}`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    lines: Option<Vec<LineUnits>>,
    /// In the order's currency.
    #[schema(example = "5.00")]
    amount: Option<String>,
}

/// Refund shipped units or an amount of the seller's part; idempotent with `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/sellers/me/orders/{id}/refunds", tag = "orders",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "the same key answers the first refund again")),
    request_body = RefundBody,
    responses((status = 201, body = Refund), (status = 200, description = "A replay of the key's refund", body = Refund),
              (status = 400, description = "`invalid_idempotency_key`", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`, `payment_not_captured`", body = ErrorBody),
              (status = 422, description = "`refund_exceeds_captured`, `unknown_order_line`, `invalid_quantity`, `invalid_amount`, `idempotency_key_reused`", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn refund(
    state: web::Data<AppState>,
    request: HttpRequest,
    seller: SellerOrderAuth,
    id: web::Path<Uuid>,
    body: ApiJson<RefundBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let what = match (&body.lines, &body.amount) {
        (Some(lines), None) => PartRefund::Lines(line_requests(lines)),
        (None, Some(amount)) => PartRefund::Amount(
            rust_decimal::Decimal::from_str_exact(amount.trim()).map_err(|_| {
                ApiError::invalid_field(Code::InvalidAmount, "amount", "must be a decimal string")
            })?,
        ),
        _ => {
            return Err(ApiError::invalid_field(
                Code::InvalidAmount,
                "lines",
                "send either `lines` or `amount`",
            ))
        }
    };
    let idempotency = match request.headers().contains_key("Idempotency-Key") {
        true => Some((
            idempotency_key(&request)?,
            serde_json::to_value(&body).map_err(ApiError::internal)?,
        )),
        false => None,
    };
    let (refund, replayed) = state
        .after_sale
        .refund_part(id.into_inner(), seller.0.id, what, idempotency)
        .await?;
    let mut response = if replayed {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    if replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(refund))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveReturn {
    /// Whether the units go back on sale (false: damaged, written off). `true` by default.
    restock: Option<bool>,
}

/// Decide or receive a return: `approve`, `reject` (body ignored) or `receive` (`{"restock"}`;
/// the refund of its units follows).
#[utoipa::path(post, path = "/api/v1/sellers/me/orders/{id}/returns/{return_id}/{step}", tag = "orders",
    params(("id" = Uuid, Path), ("return_id" = Uuid, Path), ("step" = String, Path, description = "`approve`, `reject` or `receive`")),
    request_body(content = Option<ReceiveReturn>),
    responses((status = 200, body = Return), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`, `payment_not_captured`", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("seller_api_key" = [])))]
pub async fn return_step(
    state: web::Data<AppState>,
    seller: SellerOrderAuth,
    path: web::Path<(Uuid, Uuid, String)>,
    body: Option<ApiJson<ReceiveReturn>>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, return_id, step) = path.into_inner();
    let after_sale = &state.after_sale;
    let seller_id = seller.0.id;
    let changed = match step.as_str() {
        "approve" | "reject" => {
            let approve = step == "approve";
            after_sale
                .decide_return(order_id, seller_id, return_id, approve)
                .await?
        }
        "receive" => {
            let restock = body.and_then(|b| b.0.restock).unwrap_or(true);
            after_sale
                .receive_return(order_id, seller_id, return_id, restock)
                .await?
        }
        _ => return Err(ApiError::NotFound("route")),
    };
    Ok(HttpResponse::Ok().json(changed))
}

/// Cancel the whole order before anything of it shipped: its units go back to stock and the
/// payment is refunded (voided when not captured yet). Cancelling a cancelled order answers it.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`already_shipped`, `invalid_transition`", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn cancel_order(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, shopper_id) = (id.into_inner(), shopper.shopper.id);
    state.after_sale.cancel_order(order_id, shopper_id).await?;
    let client = state.pool.get().await?;
    let order = orders::view(&*client, order_id, Some(shopper_id))
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    Ok(HttpResponse::Ok().json(order))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    sku: String,
    quantity: i32,
    /// Why, in the shopper's words (1 to 500 characters).
    reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestReturn {
    lines: Vec<ReturnLine>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnsAsked {
    /// One return per seller whose lines are sent back.
    returns: Vec<Return>,
}

/// Ask to send shipped units back, within the return window of their shipment.
#[utoipa::path(post, path = "/api/v1/orders/{id}/returns", tag = "orders", params(("id" = Uuid, Path)),
    request_body = RequestReturn,
    responses((status = 201, body = ReturnsAsked), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`invalid_transition`", body = ErrorBody),
              (status = 422, description = "`return_window_closed`, `unknown_order_line`, `invalid_quantity`, `invalid_length`", body = ErrorBody)),
    security(("shopper_token" = [])))]
pub async fn request_return(
    state: web::Data<AppState>,
    shopper: ShopperAuth,
    id: web::Path<Uuid>,
    body: ApiJson<RequestReturn>,
) -> Result<HttpResponse, ApiError> {
    let lines = body
        .0
        .lines
        .into_iter()
        .map(|line| ReturnLineRequest {
            sku: line.sku,
            quantity: line.quantity,
            reason: line.reason,
        })
        .collect();
    let returns = state
        .after_sale
        .request_return(id.into_inner(), shopper.shopper.id, lines)
        .await?;
    Ok(HttpResponse::Created().json(ReturnsAsked { returns }))
}
