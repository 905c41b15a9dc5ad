//! After the sale in the browser: the shopper's order page (tracking, cancel, returns) and the
//! seller console's order page (shipments by line, returns' steps), through their forms.

use serde_json::json;

use crate::{
    accounts::csrf_of,
    after_sale::{count, post, sell_two_sellers_order},
    helpers::{spawn_app, TestApp},
};

#[actix_web::test]
async fn the_order_page_shows_the_tracking_and_sends_units_back_through_its_form() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    let shipments = format!("/api/v1/sellers/me/orders/{}/fulfillments", sold.order);
    let mug = json!({ "carrier": "DHL", "tracking_number": "JJD000390007", "lines": [{ "sku": "MUG-1", "quantity": 2 }] });
    assert_eq!(post(&app, &shipments, &sold.mugs, mug).await.0, 201);
    let session = format!("agora_session={}", sold.shopper);
    let page = app
        .client
        .get(app.url(&format!("/orders/{}", sold.order)))
        .header(reqwest::header::COOKIE, &session)
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("JJD000390007"),
        "the tracking number is shown"
    );
    assert!(
        !html.contains("id=\"cancel-order\""),
        "a shipped order cannot be cancelled"
    );
    assert!(
        html.contains("name=\"quantity.MUG-1\""),
        "shipped units can be sent back"
    );

    let cookies = format!("{session}; agora_csrf={csrf}");
    let send_back = |reason: &'static str| {
        let (app, cookies, order, csrf) = (&app, cookies.clone(), sold.order.clone(), csrf.clone());
        async move {
            app.client
                .post(app.url(&format!("/orders/{order}/returns")))
                .header(reqwest::header::COOKIE, cookies)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("quantity.MUG-1", "1"),
                    ("reason", reason),
                ])
                .send()
                .await
                .expect("sent")
        }
    };
    let refused = send_back(" ").await;
    assert_eq!(refused.status(), 422);
    assert!(refused
        .text()
        .await
        .expect("html")
        .contains("data-field=\"lines[0].reason\""));
    let asked = send_back("Chipped on arrival").await;
    assert_eq!(asked.status(), 200, "redirected back to the order");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM returns WHERE status = 'requested'"
        )
        .await,
        1
    );
}

/// A page as the seller's browser sees it, and the CSRF token it set.
async fn seller_page(app: &TestApp, key: &str, path: &str) -> (u16, String, String) {
    let page = app
        .client
        .get(app.url(path))
        .header(reqwest::header::COOKIE, format!("agora_seller={key}"))
        .send()
        .await
        .expect("sent");
    let status = page.status().as_u16();
    let csrf = csrf_of(&page);
    (status, csrf, page.text().await.expect("html"))
}

async fn seller_form(
    app: &TestApp,
    key: &str,
    csrf: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let mut form = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    let response = app
        .client
        .post(app.url(path))
        .header(
            reqwest::header::COOKIE,
            format!("agora_seller={key}; agora_csrf={csrf}"),
        )
        .form(&form)
        .send()
        .await
        .expect("sent");
    (
        response.status().as_u16(),
        response.text().await.expect("html"),
    )
}

#[actix_web::test]
async fn a_seller_ships_by_line_and_receives_a_return_from_its_console() {
    let app = spawn_app().await;
    let sold = sell_two_sellers_order(&app).await;
    let detail = format!("/seller/orders/{}", sold.order);
    let (status, csrf, html) = seller_page(&app, &sold.mugs, &detail).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"shipment-form\""), "{html}");

    let shipments = format!("{detail}/shipments");
    let (status, refused) = seller_form(
        &app,
        &sold.mugs,
        &csrf,
        &shipments,
        &[
            ("carrier", "DHL"),
            ("tracking_number", "JJD1"),
            ("quantity.MUG-1", "3"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        refused.contains("role=\"alert\""),
        "the refusal is shown on the order"
    );
    let (status, _) = seller_form(
        &app,
        &sold.mugs,
        &csrf,
        &shipments,
        &[
            ("carrier", "DHL"),
            ("tracking_number", "JJD1"),
            ("quantity.MUG-1", "2"),
            ("quantity.MUG-2", "0"),
        ],
    )
    .await;
    assert_eq!(status, 200, "redirected back to the order");
    let (_, _, html) = seller_page(&app, &sold.mugs, &detail).await;
    assert!(html.contains("JJD1"));
    assert!(
        html.contains("name=\"quantity.MUG-2\""),
        "MUG-2 is still to ship"
    );
    assert!(
        !html.contains("name=\"quantity.MUG-1\""),
        "MUG-1 has shipped"
    );

    let (status, asked) = post(
        &app,
        &format!("/api/v1/orders/{}/returns", sold.order),
        &sold.shopper,
        json!({ "lines": [{ "sku": "MUG-1", "quantity": 1, "reason": "chipped" }] }),
    )
    .await;
    assert_eq!(status, 201);
    let return_id = asked["returns"][0]["id"].as_str().expect("id").to_owned();
    let steps = format!("{detail}/returns/{return_id}");
    assert_eq!(
        seller_form(&app, &sold.mugs, &csrf, &format!("{steps}/approve"), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        seller_form(
            &app,
            &sold.mugs,
            &csrf,
            &format!("{steps}/receive"),
            &[("restock", "true")]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM returns WHERE status = 'received' AND restocked"
        )
        .await,
        1
    );
    // Another seller's console does not reach this order.
    let (status, pot_csrf, _) = seller_page(&app, &sold.pots, "/seller/orders").await;
    assert_eq!(status, 200);
    let (status, _) =
        seller_form(&app, &sold.pots, &pot_csrf, &format!("{steps}/reject"), &[]).await;
    assert_eq!(status, 404);
}
