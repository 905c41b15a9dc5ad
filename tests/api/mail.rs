//! Mail that really leaves: confirmations written with the paid order, sent over SMTP to the
//! tests' sink in the shopper's language, retried until the server accepts, and sent once by
//! several processes sharing the outbox.

use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    carts::{add, cart, german_shipping, regions, stocked},
    checkout::{checkout, APPROVED},
    helpers::{spawn_app_with, spawn_processes, TestApp},
    mail_sink::MailSink,
};

const DECLINED: &str = "4000000000000002";

/// An app whose mail goes to `sink`.
pub async fn app_mailing_to(sink: &MailSink) -> TestApp {
    let url = sink.url();
    spawn_app_with(move |settings| settings.mail.smtp_url = SecretString::from(url)).await
}

/// Registers a shopper; answers its session token.
pub async fn registered(app: &TestApp, email: &str, password: &str, locale: &str) -> String {
    let response = app
        .post_json(
            "/api/v1/shoppers",
            &json!({ "email": email, "password": password, "locale": locale }),
        )
        .await;
    assert_eq!(response.status(), 201, "registering {email}");
    response.json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// A cart in the EU holding one unit of a new SKU, shipping to Germany, contact `email` (the
/// account's when `None`).
pub async fn ready_cart(app: &TestApp, token: &str, email: Option<&str>) -> String {
    let sku = format!("MAIL-{}", &Uuid::new_v4().simple().to_string()[..8]);
    stocked(app, &sku, 5).await;
    let id = cart(app, token, "EU").await;
    assert_eq!(add(app, token, &id, &sku, 1).await.status(), 200);
    let mut shipping = german_shipping();
    match email {
        Some(email) => shipping["email"] = json!(email),
        None => drop(shipping.as_object_mut().map(|body| body.remove("email"))),
    }
    let response = app
        .call(
            Method::PUT,
            &format!("/api/v1/carts/{id}/shipping"),
            token,
            Some(&shipping),
        )
        .await;
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    id
}

/// A paid order of the shopper (the EU region must exist); answers its id.
pub async fn paid_order(app: &TestApp, token: &str, email: Option<&str>) -> String {
    let cart = ready_cart(app, token, email).await;
    let response = checkout(app, token, &cart, &Uuid::new_v4().to_string(), APPROVED).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("order id")
        .to_owned()
}

#[actix_web::test]
async fn a_german_shopper_gets_the_order_confirmation_in_german_over_smtp() {
    let sink = MailSink::start().await;
    let app = app_mailing_to(&sink).await;
    regions(&app).await;
    let email = "jonas@example.de";
    let token = registered(&app, email, "correct horse", "de-AT").await;
    let patched = app
        .call(
            Method::PATCH,
            "/api/v1/shoppers/me",
            &token,
            Some(&json!({ "name": "Jonas" })),
        )
        .await;
    assert_eq!(patched.status(), 200);

    // A declined card changes nothing, so it writes no mail.
    let cart = ready_cart(&app, &token, None).await;
    let declined = checkout(&app, &token, &cart, "declined", DECLINED).await;
    assert_eq!(declined.status(), 402);
    let paid = checkout(&app, &token, &cart, "approved", APPROVED).await;
    assert_eq!(paid.status(), 201);
    let order: Value = paid.json().await.expect("json");
    let order_id = order["id"].as_str().expect("id");

    let mail = sink
        .wait_for(email, |m| m.subject.contains("Bestellung"))
        .await;
    assert_eq!(mail.subject, "Ihre Agora-Bestellung ist bestätigt");
    assert!(mail.body.starts_with("Hallo Jonas,"), "{}", mail.body);
    assert!(mail.body.contains(order_id), "{}", mail.body);
    assert!(
        mail.body.contains("1 × ") && mail.body.contains("(MAIL-"),
        "{}",
        mail.body
    );
    let total = order["total"]["amount"]
        .as_str()
        .expect("total")
        .replace('.', ",");
    assert!(
        mail.body.contains(&format!("Gesamt: {total}\u{a0}€")),
        "the total in German notation: {}",
        mail.body
    );
    assert!(
        mail.body
            .contains(&format!("{}/orders/{order_id}", app.address)),
        "{}",
        mail.body
    );
    assert!(
        mail.from.contains("no-reply@agora.example"),
        "{}",
        mail.from
    );

    let db = app.db().await;
    let rows = db
        .query(
            "SELECT kind, locale, attempts, sent_at IS NOT NULL, message_id FROM (
                 SELECT *, '<' || id || '@agora.example>' AS message_id FROM mail_outbox) m
             WHERE recipient = $1",
            &[&email],
        )
        .await
        .expect("outbox");
    assert_eq!(
        rows.len(),
        1,
        "one confirmation, none for the declined attempt"
    );
    assert_eq!(rows[0].get::<_, &str>(0), "order_confirmed");
    assert_eq!(rows[0].get::<_, &str>(1), "de");
    assert_eq!(rows[0].get::<_, i32>(2), 1);
    assert!(rows[0].get::<_, bool>(3), "marked sent");
    assert_eq!(mail.message_id, rows[0].get::<_, String>(4));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.to(email).len(), 1, "sent once");
}

#[actix_web::test]
async fn the_sender_retries_until_the_smtp_server_accepts_and_then_stops() {
    let sink = MailSink::start().await;
    sink.refuse_next(2);
    let app = app_mailing_to(&sink).await;
    let email = "retry@example.com";
    registered(&app, email, "correct horse", "en").await;
    let asked = app
        .post_json("/api/v1/password-resets", &json!({ "email": email }))
        .await;
    assert_eq!(asked.status(), 202);

    let mail = sink
        .wait_for(email, |m| m.subject == "Reset your Agora password")
        .await;
    assert!(
        mail.body.contains("/password-resets/agora_pr_"),
        "{}",
        mail.body
    );
    assert_eq!(sink.refused(), 2, "refused twice, then accepted");
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT attempts, sent_at IS NOT NULL, failed_at IS NULL, body FROM mail_outbox
             WHERE recipient = $1",
            &[&email],
        )
        .await
        .expect("outbox");
    assert_eq!(row.get::<_, i32>(0), 3);
    assert!(row.get::<_, bool>(1) && row.get::<_, bool>(2));
    assert_eq!(
        row.get::<_, &str>(3),
        "",
        "a sent reset mail's body (a live token) is not kept"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.to(email).len(), 1, "delivered once");

    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let counter = |line_start: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(line_start))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        counter("agora_mail_failures_total{kind=\"retry\"}") >= 2.0,
        "{metrics}"
    );
    assert!(counter("agora_mail_sent_total") >= 1.0, "{metrics}");
}

#[actix_web::test]
async fn a_message_that_never_goes_through_is_kept_as_failed_and_counted() {
    let sink = MailSink::start().await;
    sink.refuse_next(usize::MAX);
    let url = sink.url();
    let app = spawn_app_with(move |settings| {
        settings.mail.smtp_url = SecretString::from(url);
        settings.mail.max_attempts = 3;
    })
    .await;
    let email = "never@example.com";
    registered(&app, email, "correct horse", "fr").await;
    let asked = app
        .post_json("/api/v1/password-resets", &json!({ "email": email }))
        .await;
    assert_eq!(asked.status(), 202);
    let db = app.db().await;
    let mut outcome = None;
    for _ in 0..100 {
        let row = db
            .query_one(
                "SELECT attempts, failed_at IS NOT NULL, last_error FROM mail_outbox
                 WHERE recipient = $1",
                &[&email],
            )
            .await
            .expect("outbox");
        if row.get::<_, bool>(1) {
            outcome = Some((row.get::<_, i32>(0), row.get::<_, Option<String>>(2)));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (attempts, error) = outcome.expect("given up within 10 s");
    assert_eq!(attempts, 3);
    assert!(
        error.unwrap_or_default().contains("451"),
        "the server's answer is kept"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.refused(), 3, "never tried again after giving up");
    assert!(sink.messages().is_empty());
}

#[actix_web::test]
async fn two_processes_sharing_the_outbox_send_each_message_once() {
    let sink = MailSink::start().await;
    let url = sink.url();
    let apps = spawn_processes(
        2,
        &[
            ("AGORA__MAIL__SMTP_URL", url.as_str()),
            ("AGORA__MAIL__BATCH_SIZE", "5"),
        ],
    )
    .await;
    // Mail written straight into the outbox, as a burst of confirmations would be.
    let db = apps[0].db().await;
    db.execute(
        "INSERT INTO mail_outbox (id, recipient, locale, kind, subject, body)
         SELECT gen_random_uuid(), 'shopper' || n || '@example.com', 'en', 'order_confirmed',
                'Message ' || n, 'Body ' || n
         FROM generate_series(1, 120) AS n",
        &[],
    )
    .await
    .expect("outbox filled");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sink.messages().len() < 120 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = sink.messages();
    let distinct: std::collections::HashSet<&str> =
        messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(distinct.len(), 120, "every message arrived");
    assert_eq!(messages.len(), 120, "and none twice");
    let unsent: i64 = db
        .query_one(
            "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL OR attempts <> 1",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(unsent, 0, "each sent on its first claim");
}

#[actix_web::test]
async fn with_sending_off_mail_waits_in_the_outbox() {
    let app = crate::helpers::spawn_app().await;
    let email = "queued@example.com";
    registered(&app, email, "correct horse", "ja").await;
    let asked = app
        .post_json("/api/v1/password-resets", &json!({ "email": email }))
        .await;
    assert_eq!(asked.status(), 202);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let row = app
        .db()
        .await
        .query_one(
            "SELECT attempts, sent_at IS NULL, locale, subject FROM mail_outbox
             WHERE recipient = $1",
            &[&email],
        )
        .await
        .expect("queued");
    assert_eq!(row.get::<_, i32>(0), 0, "never claimed");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, &str>(2), "ja");
    assert_eq!(row.get::<_, &str>(3), "Agora パスワードの再設定");
}

#[actix_web::test]
async fn shipment_cancellation_and_refund_mails_arrive_in_the_shoppers_language() {
    use agora::mail::{enqueue_order_mail, OrderMail};
    let sink = MailSink::start().await;
    let app = app_mailing_to(&sink).await;
    regions(&app).await;
    let email = "claire@example.fr";
    let token = registered(&app, email, "correct horse", "fr").await;
    let order_id: Uuid = paid_order(&app, &token, None).await.parse().expect("uuid");
    sink.wait_for(email, |m| m.subject == "Votre commande Agora est confirmée")
        .await;
    let sku: String = app
        .db()
        .await
        .query_one(
            "SELECT sku FROM order_lines WHERE order_id = $1",
            &[&order_id],
        )
        .await
        .expect("line")
        .get(0);

    // As the after-sale code writes them: in its own transaction.
    let mut db = app.db().await;
    let tx = db.transaction().await.expect("transaction");
    for mail in [
        OrderMail::Shipped {
            carrier: "Colissimo".into(),
            tracking_number: "6A123456789".into(),
            lines: vec![(sku.clone(), 1)],
        },
        OrderMail::Cancelled {
            refunded: "4.90".parse().expect("decimal"),
        },
        OrderMail::Refunded {
            amount: "10".parse().expect("decimal"),
        },
    ] {
        enqueue_order_mail(&tx, order_id, &mail)
            .await
            .expect("enqueued");
    }
    tx.commit().await.expect("committed");

    let shipped = sink
        .wait_for(email, |m| m.subject == "Votre commande a été expédiée")
        .await;
    assert!(
        shipped.body.contains("Colissimo")
            && shipped.body.contains("6A123456789")
            && shipped.body.contains(&format!("1 × Mug ({sku})")),
        "{}",
        shipped.body
    );
    let cancelled = sink
        .wait_for(email, |m| m.subject == "Votre commande a été annulée")
        .await;
    assert!(
        cancelled.body.contains("4,90\u{a0}€ seront remboursés"),
        "{}",
        cancelled.body
    );
    let refunded = sink
        .wait_for(email, |m| m.subject == "Votre remboursement est en cours")
        .await;
    assert!(refunded.body.contains("10,00\u{a0}€"), "{}", refunded.body);

    // An order nobody can be told about (a guest who gave no email) gets no mail, and no error.
    let guest = crate::carts::shopper(&app).await;
    let guest_order: Uuid = paid_order(&app, &guest, Some("guest@example.com"))
        .await
        .parse()
        .expect("uuid");
    let client = app.db().await;
    client
        .execute(
            "UPDATE orders SET contact_email = NULL WHERE id = $1",
            &[&guest_order],
        )
        .await
        .expect("contact removed");
    enqueue_order_mail(
        &client,
        guest_order,
        &OrderMail::Refunded {
            amount: "1".parse().expect("decimal"),
        },
    )
    .await
    .expect("no recipient is not an error");
    let refunds: i64 = client
        .query_one(
            "SELECT count(*) FROM mail_outbox WHERE kind = 'order_refunded'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(refunds, 1, "only the registered shopper's");
}
