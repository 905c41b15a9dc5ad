//! Buying under an admission: the checkout protocol on a one-line order at the sale price,
//! the ticket's allotted unit moved to the order's hold under the ticket's row lock.

use crate::db::PreparedClient;
use chrono::Utc;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    addresses::Address,
    carts::{self, CartLine},
    checkout::{self, CheckoutResponse},
    error::{Code, Error},
    locale::LocalePreference,
    money::Price,
    orders::{self, IdempotencyClaim, PlaceError},
    payments::{AuthorizeRequest, CardNumber},
    regions,
};

use super::{admission::Admission, FlashSaleService, SaleState, TicketState};

/// What a shopper asked to buy with an admission.
pub struct PurchaseRequest {
    pub sale_id: Uuid,
    pub shopper_id: Uuid,
    pub key: String,
    pub token: String,
    pub quantity: u32,
    pub region: String,
    /// Where and how to ship, where the region ships.
    pub shipping: Option<SaleShipping>,
    /// The contact email, already checked; a registered shopper's defaults to their account's.
    pub email: Option<String>,
    pub card: CardNumber,
}

/// A purchase's destination: a checked address (a country alone is refused with
/// `address_required` where the region ships, as a cart's checkout is) and the option.
#[derive(Debug, Clone)]
pub struct SaleShipping {
    pub address: Option<Address>,
    /// Without an address, the country given (for the error naming the missing address).
    pub country: Option<String>,
    pub option: String,
}

impl SaleShipping {
    /// The destination country and the field naming it.
    fn country(&self) -> (&str, &'static str) {
        match (&self.address, &self.country) {
            (Some(address), _) => (&address.country, "shipping.address.country"),
            (None, Some(country)) => (country, "shipping.country"),
            (None, None) => ("", "shipping.address"),
        }
    }
}

fn fingerprint(request: &PurchaseRequest) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(b"flash-sale");
    hash.update(request.sale_id.as_bytes());
    hash.update(request.quantity.to_be_bytes());
    hash.update(request.region.as_bytes());
    if let Some(shipping) = &request.shipping {
        hash.update(shipping.country().0.as_bytes());
        hash.update(shipping.option.as_bytes());
        if let Some(address) = &shipping.address {
            hash.update(serde_json::to_vec(address).unwrap_or_default());
        }
    }
    if let Some(email) = &request.email {
        hash.update(b"email");
        hash.update(email.as_bytes());
    }
    hash.update(request.card.digits().as_bytes());
    hash.finalize().to_vec()
}

fn outcome_counter(outcome: &'static str) {
    metrics::counter!("agora_flash_sale_purchases_total", "outcome" => outcome).increment(1);
}

/// Buys units of the sale under an admission; the answer is an order (201) or the reason
/// why not, and the same key always gets the same answer.
pub async fn purchase(
    sales: &FlashSaleService,
    request: PurchaseRequest,
    preference: &LocalePreference,
) -> Result<CheckoutResponse, Error> {
    let fingerprint = fingerprint(&request);
    if let Some(outcome) = checkout::earlier_answer(
        &sales.checkout,
        request.shopper_id,
        &request.key,
        &fingerprint,
    )
    .await?
    {
        return Ok(CheckoutResponse {
            outcome,
            replayed: true,
        });
    }
    let admission = sales
        .admission_key
        .verify(&request.token)
        .inspect_err(|_| {
            outcome_counter("invalid_admission");
        })?;
    if admission.sale_id != request.sale_id || admission.shopper_id != request.shopper_id {
        outcome_counter("invalid_admission");
        return Err(Error::Forbidden {
            code: Code::InvalidAdmission,
            message: "this admission token is for another sale or shopper".into(),
        });
    }
    if admission.expires_at <= Utc::now() {
        outcome_counter("admission_expired");
        return Err(Error::Gone {
            code: Code::AdmissionExpired,
            message: "the admission lapsed; the unit went to the next shopper in the queue".into(),
        });
    }

    let mut client = sales.pool().get().await?;
    let tx = client.transaction().await?;
    let cart = match sale_line(&tx, &request, preference).await {
        Ok(cart) => cart,
        Err(error) => {
            outcome_counter("refused");
            return Err(error);
        }
    };
    let claim = IdempotencyClaim {
        shopper_id: request.shopper_id,
        key: &request.key,
        fingerprint: &fingerprint,
    };
    let beyond_allotment = match claim_units(&tx, &request, &admission, &cart).await {
        Ok(more) => more,
        Err(error) => {
            outcome_counter(match error.code() {
                Code::SoldOut => "sold_out",
                Code::AdmissionExpired => "admission_expired",
                Code::NotAdmitted => "not_admitted",
                _ => "refused",
            });
            return Err(error);
        }
    };
    let placed = crate::db::timed(
        "flash_sale_place",
        orders::place(
            &tx,
            &claim,
            &cart,
            request.card.last4(),
            sales.checkout.payments.provider_name(),
        ),
    )
    .await;
    let pending = match placed {
        Ok(pending) => pending,
        Err(PlaceError::KeyTaken) => {
            drop(tx);
            drop(client);
            return checkout::replay_taken_key(
                &sales.checkout,
                request.shopper_id,
                &request.key,
                &fingerprint,
            )
            .await;
        }
        Err(PlaceError::Api(error)) => return Err(error),
    };
    // Units beyond the admission's allotment (a shopper buying more than one) come from the
    // sale's reservation: last, so the sale's row is locked only from here to the commit.
    let taken = if beyond_allotment > 0 {
        tx.execute(
            "UPDATE flash_sales SET reserved = reserved - $2
             WHERE id = $1 AND state = 'open' AND reserved >= $2",
            &[&request.sale_id, &beyond_allotment],
        )
        .await?
    } else {
        1
    };
    if taken == 0 {
        let left: i32 = tx
            .query_one(
                "SELECT reserved FROM flash_sales WHERE id = $1",
                &[&request.sale_id],
            )
            .await?
            .get(0);
        outcome_counter("sold_out");
        if left > 0 {
            return Err(Error::InsufficientStock {
                available: i64::from(left),
            });
        }
        return Err(Error::Conflict {
            code: Code::SoldOut,
            message: "the sale has no units left".into(),
            field: None,
        });
    }
    tx.commit().await?;
    drop(client);

    let authorized = sales
        .checkout
        .payments
        .authorize(AuthorizeRequest {
            reference: pending.reference,
            amount: pending.total,
            currency: pending.currency,
            card: request.card,
        })
        .await;
    let outcome = checkout::finish(&sales.checkout, &pending, authorized).await?;
    if outcome.is_paid() {
        outcome_counter("paid");
        metrics::counter!("agora_flash_sale_units_sold_total")
            .increment(u64::from(request.quantity));
    } else {
        outcome_counter("payment_failed");
    }
    Ok(CheckoutResponse {
        outcome,
        replayed: false,
    })
}

/// The sale's line as the order will have it, priced at the sale price in the region's
/// currency, with the region's tax and the chosen shipping.
async fn sale_line(
    tx: &impl PreparedClient,
    request: &PurchaseRequest,
    preference: &LocalePreference,
) -> Result<carts::CartView, Error> {
    let region = regions::named_in_request(tx, &request.region).await?;
    let currency = region.currency().ok_or_else(|| {
        Error::internal(anyhow::anyhow!("region {} has no currency", region.code))
    })?;
    let shipping = match (
        &request.shipping,
        region.details.shipping_options.is_empty(),
    ) {
        (Some(shipping), _) => {
            let (country, field) = shipping.country();
            carts::check_country(&region, country, field)?;
            carts::check_option(&region, &shipping.option, "shipping.option")?;
            (Some(country.to_owned()), Some(shipping.option.clone()))
        }
        (None, true) => (None, None),
        (None, false) => {
            return Err(Error::invalid_field(
                Code::ShippingRequired,
                "shipping",
                "give {\"address\", \"option\"} of the region to ship to",
            ))
        }
    };
    let chain: Vec<&str> = preference.tags().iter().map(|l| l.as_str()).collect();
    let row = tx
        .query_opt(
            "SELECT v.id, v.sku, p.id, p.seller_id, c.title, v.weight_grams, fp.amount,
                    (SELECT email FROM shoppers WHERE id = $4),
                    (SELECT seller.status = 'active' FROM sellers seller WHERE seller.id = p.seller_id)
             FROM flash_sales s
             JOIN variants v ON v.id = s.variant_id
             JOIN products p ON p.id = v.product_id
             LEFT JOIN flash_sale_prices fp ON fp.sale_id = s.id AND trim(fp.currency) = $2
             CROSS JOIN LATERAL (
                 SELECT c.title FROM product_content c
                 WHERE c.product_id = p.id AND (c.locale = ANY($3::text[]) OR c.locale = p.default_locale)
                 ORDER BY coalesce(array_position($3::text[], c.locale), 1000) LIMIT 1
             ) c
             WHERE s.id = $1",
            &[&request.sale_id, &currency.code(), &chain, &request.shopper_id],
        )
        .await?
        .ok_or(Error::NotFound("flash sale"))?;
    if !row.get::<_, bool>(8) {
        // Nobody could ship it: the store suspended the seller after the sale was scheduled.
        return Err(Error::SellerUnavailable {
            skus: vec![row.get(1)],
        });
    }
    let unit: Decimal = row.get::<_, Option<Decimal>>(6).ok_or_else(|| {
        Error::invalid_field(
            Code::NoSalePrice,
            "region",
            format!("this sale has no price in {}", currency.code()),
        )
    })?;
    let quantity = request.quantity;
    let line_total = unit * Decimal::from(quantity);
    let price = |amount| Price {
        amount: currency.round(amount),
        currency: currency.code(),
        converted: false,
    };
    let weight = u32::try_from(row.get::<_, i32>(5))
        .unwrap_or(0)
        .saturating_mul(quantity);
    let line = CartLine {
        variant_id: row.get(0),
        product_id: row.get(2),
        seller_id: row.get(3),
        // Read by the cart's checkout only; a flash-sale purchase does not consult it.
        seller_active: true,
        on_sale: true,
        unit_weight_grams: u32::try_from(row.get::<_, i32>(5)).unwrap_or(0),
        sku: row.get(1),
        title: row.get(4),
        quantity,
        unit_price: price(unit),
        line_total: price(line_total),
        held_quantity: i64::from(quantity),
        held_until: None,
    };
    // A fresh id per attempt stands in for the cart: the order's hold is owned under it.
    let mut cart = carts::priced(
        Uuid::now_v7(),
        &region,
        currency,
        vec![line],
        (line_total, weight),
        shipping,
    );
    cart.shipping_address = request.shipping.as_ref().and_then(|s| s.address.clone());
    cart.contact_email = request.email.clone().or_else(|| row.get(7));
    orders::check_destination(&cart)?;
    Ok(cart)
}

/// Under the ticket's row lock: checks the admission is live and the per-shopper limit,
/// marks the ticket purchased and holds the units for the order: its admission's allotment
/// first; the answer is how many more the caller must take from the sale's reservation.
async fn claim_units(
    tx: &impl PreparedClient,
    request: &PurchaseRequest,
    admission: &Admission,
    cart: &carts::CartView,
) -> Result<i32, Error> {
    let ticket = tx
        .query_opt(
            "SELECT t.ticket, t.state, t.admission_expires_at > now(), t.bought,
                    s.per_shopper_limit, s.state, t.allotted
             FROM flash_sale_tickets t JOIN flash_sales s ON s.id = t.sale_id
             WHERE t.sale_id = $1 AND t.shopper_id = $2 FOR UPDATE OF t",
            &[&request.sale_id, &request.shopper_id],
        )
        .await?;
    let not_admitted = |message: &str| Error::Forbidden {
        code: Code::NotAdmitted,
        message: message.into(),
    };
    let Some(ticket) = ticket else {
        return Err(not_admitted("join the queue and wait for your admission"));
    };
    if ticket.get::<_, i64>(0) != admission.ticket {
        return Err(not_admitted("this admission is not for your ticket"));
    }
    if ticket.get::<_, SaleState>(5) == SaleState::SoldOut {
        return Err(Error::Conflict {
            code: Code::SoldOut,
            message: "the sale has no units left".into(),
            field: None,
        });
    }
    match (
        ticket.get::<_, TicketState>(1),
        ticket.get::<_, Option<bool>>(2),
    ) {
        (TicketState::Admitted, Some(true)) => {}
        (TicketState::Admitted | TicketState::Expired, _) => {
            return Err(Error::Gone {
                code: Code::AdmissionExpired,
                message: "the admission lapsed; the unit went to the next shopper in the queue"
                    .into(),
            })
        }
        (TicketState::Purchased, _) => return Err(not_admitted("this admission was used already")),
        _ => return Err(not_admitted("this ticket is not admitted")),
    }
    let limit: i32 = ticket.get(4);
    let bought: i32 = ticket.get(3);
    let quantity = i32::try_from(request.quantity).unwrap_or(i32::MAX);
    if bought.saturating_add(quantity) > limit {
        return Err(Error::invalid_field(
            Code::PerShopperLimitExceeded,
            "quantity",
            format!(
                "at most {limit} per shopper in this sale ({} left for you)",
                (limit - bought).max(0)
            ),
        ));
    }
    let from_allotment = quantity.min(ticket.get(6));
    tx.execute(
        "UPDATE flash_sale_tickets SET state = 'purchased', bought = bought + $3,
                allotted = allotted - $4
         WHERE sale_id = $1 AND shopper_id = $2",
        &[
            &request.sale_id,
            &request.shopper_id,
            &quantity,
            &from_allotment,
        ],
    )
    .await?;
    let line = cart
        .lines
        .first()
        .ok_or_else(|| Error::internal(anyhow::anyhow!("a sale order without its line")))?;
    tx.execute(
        "INSERT INTO stock_holds (id, variant_id, quantity, owner, expires_at, sale_id)
         VALUES ($1, $2, $3, $4, now() + interval '1 hour', $5)",
        &[
            &Uuid::now_v7(),
            &line.variant_id,
            &quantity,
            &cart.id.to_string(),
            &request.sale_id,
        ],
    )
    .await?;
    Ok(quantity - from_allotment)
}
