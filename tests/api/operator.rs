use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

const OPERATOR: &str = "test-operator-token";

fn eu() -> Value {
    json!({
        "name": "European Union",
        "currency": "EUR",
        "countries": ["DE", "FR", "AT"],
        "tax_inclusive": true,
        "tax_rates": { "default": "0.20", "DE": "0.19" },
        "shipping_options": [
            { "id": "dhl-standard", "name": "Standard", "carrier": "DHL",
              "rate": { "type": "flat", "amount": "4.9" }, "delivery_days": { "min": 2, "max": 4 } },
            { "id": "ups-heavy", "name": "By weight", "carrier": "UPS",
              "rate": { "type": "weight", "base": "3.00", "per_kg": "1.50" }, "delivery_days": { "min": 1, "max": 3 } }
        ]
    })
}

#[actix_web::test]
async fn a_suspended_seller_loses_its_key_and_its_products_leave_the_storefront() {
    let app = spawn_app().await;
    let (seller_id, key) = app.seller("Suspect").await;
    let product = app
        .product(
            &key,
            &json!({
                "default_locale": "en", "content": { "en": { "title": "Gadget" } },
                "variants": [{ "sku": "GADGET-1", "prices": { "EUR": "10.00" }, "stock": 4 }]
            }),
        )
        .await;
    let path = format!("/api/v1/products/{}", product["id"].as_str().expect("id"));
    assert_eq!(
        app.get(&path).await.status(),
        200,
        "warms the product cache"
    );

    let suspend = format!("/api/v1/operator/sellers/{seller_id}/suspend");
    assert_eq!(
        app.call(Method::POST, &suspend, &key, None).await.status(),
        401,
        "sellers are not operators"
    );
    let suspended = app.call(Method::POST, &suspend, OPERATOR, None).await;
    assert_eq!(suspended.status(), 200);
    assert_eq!(
        suspended.json::<Value>().await.expect("json")["status"],
        "suspended"
    );

    assert_eq!(
        app.call(Method::GET, "/api/v1/sellers/me", &key, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        app.get(&path).await.status(),
        404,
        "the cached page was evicted"
    );
    assert_eq!(app.get("/api/v1/inventory/GADGET-1").await.status(), 404);
    let listing: Value = app
        .get("/api/v1/products")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listing["items"], json!([]));

    let reinstated = app
        .call(
            Method::POST,
            &format!("/api/v1/operator/sellers/{seller_id}/reinstate"),
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(reinstated.status(), 200);
    assert_eq!(app.get(&path).await.status(), 200);
    assert_eq!(
        app.call(Method::GET, "/api/v1/sellers/me", &key, None)
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn the_operator_defines_regions_with_taxes_and_shipping_that_anyone_can_read() {
    let app = spawn_app().await;
    assert_eq!(
        app.call(Method::PUT, "/api/v1/regions/EU", "wrong", Some(&eu()))
            .await
            .status(),
        401
    );
    let created = app
        .call(Method::PUT, "/api/v1/regions/eu", OPERATOR, Some(&eu()))
        .await;
    assert_eq!(created.status(), 201);
    let replaced = app
        .call(Method::PUT, "/api/v1/regions/EU", OPERATOR, Some(&eu()))
        .await;
    assert_eq!(replaced.status(), 200);

    let region: Value = app
        .get("/api/v1/regions/EU")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(region["code"], "EU");
    assert_eq!(region["tax_rates"]["DE"], "0.19");
    assert_eq!(
        region["shipping_options"][0]["rate"],
        json!({ "type": "flat", "amount": "4.90" })
    );
    let all: Value = app.get("/api/v1/regions").await.json().await.expect("json");
    assert_eq!(all.as_array().map(Vec::len), Some(1));

    let mut us = eu();
    us["currency"] = json!("USD");
    us["countries"] = json!(["US", "FR"]);
    us["tax_rates"] = json!({ "default": "0" });
    let clash = app
        .call(Method::PUT, "/api/v1/regions/US", OPERATOR, Some(&us))
        .await;
    assert_eq!(clash.status(), 409);

    for (change, code, field) in [
        (json!({ "currency": "XXX" }), "unknown_currency", "currency"),
        (
            json!({ "countries": ["Germany"] }),
            "invalid_country",
            "countries[0]",
        ),
        (
            json!({ "tax_rates": { "default": "1.5" } }),
            "invalid_tax_rate",
            "tax_rates.default",
        ),
        (
            json!({ "tax_rates": { "DE": "0.19" } }),
            "missing_field",
            "tax_rates.default",
        ),
    ] {
        let mut body = eu();
        for (key, value) in change.as_object().expect("object") {
            body[key] = value.clone();
        }
        let response = app
            .call(Method::PUT, "/api/v1/regions/EU", OPERATOR, Some(&body))
            .await;
        assert_eq!(response.status(), 422, "{change}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(
            (
                error["error"]["code"].as_str(),
                error["error"]["field"].as_str()
            ),
            (Some(code), Some(field)),
            "{change}"
        );
    }
    let mut bad_amount = eu();
    bad_amount["shipping_options"][0]["rate"]["amount"] = json!("4.999");
    let response = app
        .call(
            Method::PUT,
            "/api/v1/regions/EU",
            OPERATOR,
            Some(&bad_amount),
        )
        .await;
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["field"], "shipping_options[0].rate.amount");
}
