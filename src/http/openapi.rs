//! The OpenAPI 3 document, generated from the handlers' annotations, served at `/openapi.json`.

use actix_web::HttpResponse;
use utoipa::{
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
    Modify, OpenApi,
};

use super::common_responses::CommonResponses;
use super::routes::{
    account, after_sale, carts, checkout, flash_sales, inventory, operator, orders, products,
    recommendations, regions, sellers, shoppers,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agora", description = "Realtime commerce platform: marketplace catalog, sellers and shoppers, carts, checkout and orders."),
    paths(
        sellers::onboard, sellers::me, sellers::own_products, sellers::own_product,
        shoppers::register, shoppers::sign_in, shoppers::sign_out, shoppers::me,
        shoppers::update_me, shoppers::change_password, shoppers::register_guest,
        shoppers::delete_me, shoppers::request_reset, shoppers::reset_password,
        products::create, products::update, products::archive, products::restore,
        products::show, products::list,
        inventory::availability, inventory::set_stock, inventory::adjust_stock, inventory::ledger,
        regions::list, regions::show, regions::put,
        operator::suspend, operator::reinstate, operator::order,
        account::address_book, account::add_address, account::change_address,
        account::delete_address, account::my_orders, account::my_carts,
        carts::create, carts::show, carts::add_item, carts::change_item, carts::remove_item, carts::set_shipping,
        checkout::checkout, orders::show, orders::seller_orders, orders::seller_order, orders::fulfill, orders::refund,
        after_sale::ship, after_sale::cancel_lines, after_sale::refund, after_sale::return_step,
        after_sale::cancel_order, after_sale::request_return,
        flash_sales::create, flash_sales::show, flash_sales::join, flash_sales::my_ticket,
        flash_sales::purchase,
        recommendations::bought_together, recommendations::for_you,
    ),
    modifiers(&BearerSchemes, &CommonResponses),
    tags(
        (name = "storefront", description = "What shoppers browse: cacheable, localized, priced in their currency"),
        (name = "products", description = "Sellers' own products"),
        (name = "inventory", description = "Stock on hand, live"),
        (name = "carts", description = "Shoppers' baskets; every unit in them is held"),
        (name = "orders", description = "Checkout with idempotency keys; orders split per seller"),
        (name = "flash sales", description = "A fair waiting queue, admissions and purchases that never oversell"),
        (name = "sellers"), (name = "shoppers"), (name = "regions"), (name = "operator"),
    )
)]
pub struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                "seller_api_key",
                "A seller's API key (agora_sk_…), from onboarding",
            ),
            ("shopper_token", "A shopper's session token (agora_st_…)"),
            ("operator_token", "The operator token from configuration"),
        ] {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(description.to_owned());
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// `GET /openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
