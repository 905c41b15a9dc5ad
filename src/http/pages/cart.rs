//! The cart, checkout and the order: a shopper's live cart with its holds' countdowns,
//! quantities, destination and shipping, the payment form (one idempotency key per rendered
//! form, so a double click or a resent form never charges twice), and the order afterwards.

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    context::{cart_of, PageContext, CART_COOKIE},
    delivery::{self, AddressFields, Notice},
    i18n::Lang,
    layout::{self, PageError},
    payment::{self, Answer},
};
use crate::{
    carts::{
        changes::{ShippingChoice, Target},
        CartView, Destination,
    },
    checkout,
    error::{Code, Error},
    orders::{self},
    regions::{self, Region},
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sku: String,
    #[serde(default)]
    quantity: String,
    /// The page to come back to when the line cannot be added.
    #[serde(default)]
    back: String,
}

#[derive(Debug, Deserialize)]
pub struct LineForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    quantity: String,
}

#[derive(Debug, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    idempotency_key: String,
}

fn quantity_of(raw: &str) -> Result<u32, Error> {
    raw.trim().parse::<u32>().map_err(|_| {
        Error::invalid_field(Code::InvalidQuantity, "quantity", "a whole number of units")
    })
}

/// The browser's cart, if it is still this shopper's: else the shopper's newest open cart in
/// the region of the page's currency, or a new one there.
pub(super) async fn current_cart(
    state: &AppState,
    context: &mut PageContext,
    request: &HttpRequest,
    create: bool,
) -> Result<Option<CartView>, Error> {
    let Some(signed_in) = &context.shopper else {
        return Ok(None);
    };
    let shopper_id = signed_in.shopper.id;
    let preference = context.lang.preference();
    if let Some(cart_id) = cart_of(request) {
        match state
            .cart_service
            .render(shopper_id, cart_id, &preference)
            .await
        {
            Ok(cart) => return Ok(Some(cart)),
            Err(Error::NotFound(_)) => context.forget(CART_COOKIE),
            Err(error) => return Err(error),
        }
    }
    if !create {
        return Ok(None);
    }
    let region = region_for(state, context).await?;
    let cart = state
        .cart_service
        .create(shopper_id, &region.code, &preference)
        .await?;
    context.remember_session(CART_COOKIE, &cart.id.to_string());
    Ok(Some(cart))
}

/// The region whose currency the shopper chose, else the first region.
async fn region_for(state: &AppState, context: &PageContext) -> Result<Region, Error> {
    let client = state.pool.get().await?;
    let regions = regions::list(&*client).await?;
    region_of(&regions, context)
        .cloned()
        .ok_or_else(|| Error::Unavailable("the store has no region to sell in yet".into()))
}

/// Of `regions`, the one of the visitor's currency, else the store's first.
pub(super) fn region_of<'a>(regions: &'a [Region], context: &PageContext) -> Option<&'a Region> {
    regions
        .iter()
        .find(|region| region.details.currency == context.currency.code())
        .or_else(|| regions.first())
}

/// `POST /cart/items`: adds units of a SKU (holding them) and shows the cart.
pub async fn add(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<AddForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let quantity = quantity_of(&form.quantity);
    let shopper_id = context.ensure_shopper(&state).await?.shopper.id;
    let added = async {
        let quantity = quantity?;
        let cart = current_cart(&state, &mut context, &request, true).await?;
        let cart =
            cart.ok_or_else(|| Error::internal(anyhow::anyhow!("no cart after creating one")))?;
        let preference = context.lang.preference();
        state
            .cart_service
            .change_line(
                shopper_id,
                cart.id,
                preference,
                form.sku.clone(),
                Target::Add(quantity),
            )
            .await
    }
    .await;
    match added {
        Ok(_) => Ok(context.redirect("/cart")),
        Err(error) if error.status_code().is_client_error() => {
            let notice = refusal(context.lang, &error);
            show_cart(
                &state,
                context,
                &request,
                Some(notice),
                StatusCode::CONFLICT,
                &form.back,
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /cart/items/{sku}`: sets a line's quantity (0 removes it).
pub async fn change(
    state: web::Data<AppState>,
    request: HttpRequest,
    sku: web::Path<String>,
    form: web::Form<LineForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let Some(cart) = current_cart(&state, &mut context, &request, false).await? else {
        return Ok(context.redirect("/cart"));
    };
    let shopper_id = cart_owner(&context)?;
    let changed = async {
        let quantity = quantity_of(&form.quantity)?;
        let preference = context.lang.preference();
        state
            .cart_service
            .change_line(
                shopper_id,
                cart.id,
                preference,
                sku.into_inner(),
                Target::Set(quantity),
            )
            .await
    }
    .await;
    after_change(&state, context, &request, changed).await
}

pub(super) fn cart_owner(context: &PageContext) -> Result<Uuid, Error> {
    context
        .shopper
        .as_ref()
        .map(|signed_in| signed_in.shopper.id)
        .ok_or(Error::Unauthorized("sign in first"))
}

async fn after_change(
    state: &AppState,
    context: PageContext,
    request: &HttpRequest,
    changed: Result<CartView, Error>,
) -> Result<HttpResponse, PageError> {
    match changed {
        Ok(_) => Ok(context.redirect("/cart")),
        Err(error) if error.status_code().is_client_error() => {
            let notice = refusal(context.lang, &error);
            show_cart(
                state,
                context,
                request,
                Some(notice),
                StatusCode::UNPROCESSABLE_ENTITY,
                "",
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

/// `GET /cart`: the cart, live.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let context = PageContext::load(&request, &state).await;
    show_cart(&state, context, &request, None, StatusCode::OK, "").await
}

/// `POST /checkout`: pays for the cart; the order page on success, the cart with the reason
/// otherwise. The form's idempotency key makes a resent form replay the same answer.
pub async fn pay(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<CheckoutForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let Some(cart) = current_cart(&state, &mut context, &request, false).await? else {
        return Ok(context.redirect("/cart"));
    };
    let shopper_id = cart_owner(&context)?;
    let paid = async {
        let key = payment::idempotency_key(&form.idempotency_key)?;
        let card = payment::card(&form.card_number)?;
        let preference = context.lang.preference();
        checkout::checkout(&state.checkout, shopper_id, cart.id, key, card, &preference).await
    }
    .await;
    let refused = match payment::answer(paid, |error| error.status_code().is_client_error())? {
        Answer::Paid(order) => return Ok(context.redirect(&order)),
        Answer::Refused(error) => error,
    };
    let status = crate::http::error::status_of(refused.code());
    let notice = refusal(context.lang, &refused);
    show_cart(&state, context, &request, Some(notice), status, "").await
}

/// The words for a refusal: the domain's message, with the field it names.
pub(super) fn refusal(lang: Lang, error: &Error) -> Notice {
    let text = match error.code() {
        Code::PaymentDeclined => lang.tr(
            "Your card was declined. Nothing was charged, and the items are available again.",
            "Ihre Karte wurde abgelehnt. Es wurde nichts belastet, die Artikel sind wieder verfügbar.",
            "Votre carte a été refusée. Rien n’a été débité et les articles sont de nouveau disponibles.",
            "カードが拒否されました。請求は行われず、商品は再び購入可能です。",
        ).to_owned(),
        Code::PaymentTimeout => lang.tr(
            "The payment did not go through in time. Nothing was charged; please try again.",
            "Die Zahlung kam nicht rechtzeitig zustande. Es wurde nichts belastet; bitte erneut versuchen.",
            "Le paiement n’a pas abouti à temps. Rien n’a été débité ; veuillez réessayer.",
            "支払いが時間内に完了しませんでした。請求は行われていません。もう一度お試しください。",
        ).to_owned(),
        Code::InsufficientStock | Code::SoldOut => match error {
            Error::InsufficientStock { available } => match lang {
                Lang::En => format!("Only {available} left: the stock changed since the page was shown."),
                Lang::De => format!("Nur noch {available} verfügbar: der Bestand hat sich geändert."),
                Lang::Fr => format!("Plus que {available} en stock : le stock a changé entre-temps."),
                Lang::Ja => format!("在庫が変わりました。残り{available}点です。"),
            },
            _ => lang.tr("Sold out.", "Ausverkauft.", "Épuisé.", "売り切れです。").to_owned(),
        },
        code => delivery::words(lang, code).map_or_else(|| error.to_string(), str::to_owned),
    };
    Notice {
        field: error.field().map(str::to_owned),
        text,
        draft: None,
    }
}

pub(super) async fn show_cart(
    state: &AppState,
    mut context: PageContext,
    request: &HttpRequest,
    notice: Option<Notice>,
    status: StatusCode,
    _back: &str,
) -> Result<HttpResponse, PageError> {
    let cart = current_cart(state, &mut context, request, false).await?;
    let region = match &cart {
        Some(cart) => {
            let client = state.pool.get().await?;
            Some(regions::get(&*client, &cart.region).await?)
        }
        None => None,
    };
    let saved = match &cart {
        Some(cart) if cart.needs_shipping && cart.shipping_address.is_none() => {
            delivery::saved_default(state, &context).await
        }
        _ => None,
    };
    let lang = context.lang;
    let title = lang.tr("Your cart", "Ihr Warenkorb", "Votre panier", "カート");
    let body = html! {
        h1 { (title) }
        div #cart-notice role="alert" aria-live="assertive" {
            @if let Some(notice) = &notice {
                p.error data-field=[notice.field.as_deref()] { (notice.text) }
            }
        }
        @match (&cart, &region) {
            (Some(cart), Some(region)) if !cart.lines.is_empty() => {
                (cart_body(&context, cart))
                @if cart.needs_shipping { (delivery::delivery_form(&context, cart, region, notice.as_ref(), saved.as_ref())) }
                (checkout_form(&context, cart, state.checkout.payments.provider_name() == "sandbox"))
            }
            _ => {
                p.empty { (lang.tr("Your cart is empty.", "Ihr Warenkorb ist leer.", "Votre panier est vide.", "カートは空です。")) " " a href="/" { (lang.tr("Browse the store", "Zum Shop", "Voir la boutique", "ショップを見る")) } }
            }
        }
    };
    let page = layout::page(&context, title, body);
    Ok(context.render(status, page))
}

fn cart_body(context: &PageContext, cart: &CartView) -> Markup {
    let lang = context.lang;
    html! {
        section #cart data-cart=(cart.id) aria-live="polite" {
            table.lines {
                caption.visually-hidden { (lang.tr("Items in your cart", "Artikel im Warenkorb", "Articles du panier", "カート内の商品")) }
                thead { tr {
                    th scope="col" { (lang.tr("Item", "Artikel", "Article", "商品")) }
                    th scope="col" { (lang.tr("Quantity", "Menge", "Quantité", "数量")) }
                    th scope="col" { (lang.tr("Price", "Preis", "Prix", "価格")) }
                    th scope="col" { (lang.tr("Held for you", "Für Sie reserviert", "Réservé pour vous", "確保期限")) }
                } }
                tbody {
                    @for line in &cart.lines {
                        tr data-line=(line.sku) {
                            th scope="row" { (line.title) br; small { (line.sku) } }
                            td {
                                form.inline method="post" action=(format!("/cart/items/{}", layout::encode(&line.sku))) {
                                    input type="hidden" name="csrf" value=(context.csrf);
                                    label.visually-hidden for=(format!("q-{}", line.sku)) { (lang.tr("Quantity", "Menge", "Quantité", "数量")) }
                                    input id=(format!("q-{}", line.sku)) type="number" name="quantity" min="0" max="99" value=(line.quantity);
                                    button type="submit" { (lang.tr("Update", "Ändern", "Modifier", "更新")) }
                                }
                                form.inline method="post" action=(format!("/cart/items/{}", layout::encode(&line.sku))) {
                                    input type="hidden" name="csrf" value=(context.csrf);
                                    input type="hidden" name="quantity" value="0";
                                    button type="submit" .secondary { (lang.tr("Remove", "Entfernen", "Retirer", "削除")) }
                                }
                            }
                            td { (lang.money(&line.line_total)) }
                            td {
                                @match line.held_until {
                                    Some(until) if line.held_quantity >= i64::from(line.quantity) => {
                                        time.hold datetime=(until.to_rfc3339()) data-hold-until=(until.to_rfc3339()) {
                                            (lang.datetime(until))
                                        }
                                    }
                                    _ => {
                                        span.error { (lang.tr("No longer held", "Nicht mehr reserviert", "Plus réservé", "確保が切れました")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            dl.totals {
                dt { (lang.tr("Subtotal", "Zwischensumme", "Sous-total", "小計")) } dd data-total="subtotal" { (lang.money(&cart.subtotal)) }
                dt { (lang.tr("Tax", "Steuer", "TVA", "税")) " (" (lang.decimal((cart.tax.rate * rust_decimal::Decimal::ONE_HUNDRED).normalize())) "\u{a0}%"
                    @if cart.tax.included { ", " (lang.tr("included", "enthalten", "incluse", "込み")) } ")" }
                dd data-total="tax" { (lang.money(&cart.tax.amount)) }
                @if let Some(shipping) = &cart.shipping {
                    dt { (lang.tr("Shipping", "Versand", "Livraison", "送料")) " (" (shipping.carrier) ", " (shipping.country) ")" }
                    dd data-total="shipping" { (lang.money(&shipping.amount)) }
                }
                dt { (lang.tr("Total", "Gesamt", "Total", "合計")) } dd data-total="total" { strong { (lang.money(&cart.total)) } }
            }
        }
    }
}

fn checkout_form(context: &PageContext, cart: &CartView, show_test_cards: bool) -> Markup {
    let lang = context.lang;
    let ready = !cart.needs_shipping
        || (cart.shipping.is_some()
            && cart.shipping_address.is_some()
            && cart.contact_email.is_some());
    html! {
        form.checkout method="post" action="/checkout" {
            input type="hidden" name="csrf" value=(context.csrf);
            input type="hidden" name="idempotency_key" value=(Uuid::now_v7());
            h2 { (lang.tr("Payment", "Zahlung", "Paiement", "お支払い")) }
            div.field {
                label for="card_number" { (lang.tr("Card number", "Kartennummer", "Numéro de carte", "カード番号")) }
                input #card_number name="card_number" inputmode="numeric" autocomplete="cc-number" required;
            }
            @if show_test_cards {
                p.hint { (lang.tr("Test cards:", "Testkarten:", "Cartes de test :", "テストカード:")) " "
                    @for (number, what) in payment::test_cards(lang) { code { (number) } " (" (what) ") " } }
            }
            button type="submit" disabled[!ready] { (lang.tr("Pay", "Bezahlen", "Payer", "支払う")) " " (lang.money(&cart.total)) }
            @if !ready { p.hint { (lang.tr("Choose a delivery first.", "Wählen Sie zuerst die Lieferung.", "Choisissez d’abord la livraison.", "先に配送先を選択してください。")) } }
        }
    }
}

/// An order's status in words.
pub fn status_words(lang: Lang, status: orders::OrderStatus) -> &'static str {
    use orders::OrderStatus::*;
    match status {
        Pending => lang.tr(
            "Payment in progress",
            "Zahlung läuft",
            "Paiement en cours",
            "支払い処理中",
        ),
        Paid => lang.tr("Paid", "Bezahlt", "Payée", "支払い済み"),
        PartiallyFulfilled => lang.tr(
            "Partly shipped",
            "Teilweise versandt",
            "Expédiée en partie",
            "一部発送済み",
        ),
        Fulfilled => lang.tr("Shipped", "Versandt", "Expédiée", "発送済み"),
        Cancelled => lang.tr("Cancelled", "Storniert", "Annulée", "キャンセル"),
        Refunded => lang.tr("Refunded", "Erstattet", "Remboursée", "返金済み"),
    }
}

#[derive(Debug, Deserialize)]
pub struct ShippingForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    option: String,
    #[serde(flatten)]
    address: AddressFields,
}

/// `POST /cart/shipping`: the delivery address, contact and shipping option.
pub async fn shipping(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<ShippingForm>,
) -> Result<HttpResponse, PageError> {
    let mut context = PageContext::load(&request, &state).await;
    context.check_csrf(&request, &form.csrf)?;
    let Some(cart) = current_cart(&state, &mut context, &request, false).await? else {
        return Ok(context.redirect("/cart"));
    };
    let shopper_id = cart_owner(&context)?;
    let changed = async {
        let choice = ShippingChoice {
            destination: Destination::Address(form.address.input().validate("address.")?),
            option: form.option.trim().to_owned(),
            email: form.address.email()?,
        };
        let preference = context.lang.preference();
        state
            .cart_service
            .set_shipping(shopper_id, cart.id, preference, choice)
            .await
    }
    .await;
    match changed {
        Ok(_) => Ok(context.redirect("/cart")),
        Err(error) if error.status_code().is_client_error() => {
            let mut notice = refusal(context.lang, &error);
            notice.draft = Some(form.into_inner().address);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            show_cart(&state, context, &request, Some(notice), status, "").await
        }
        Err(error) => Err(error.into()),
    }
}
