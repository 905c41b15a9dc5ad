//! A random workload of shipments, cancellations, returns and refunds over many orders,
//! through two processes, then the books checked: money to the cent, stock to the unit.

use std::collections::BTreeMap;

use reqwest::Method;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::{
    after_sale::{post, wait_captured},
    carts::{add, cart, regions, ship_to_germany, shopper},
    checkout::{checkout, APPROVED},
    helpers::TestApp,
    mail::app_mailing_to,
    mail_sink::MailSink,
    realtime::second_process_with,
};

/// A small, seeded generator: the same seed replays the same workload.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % sides as u64).unwrap_or(0)
    }
}

/// Prices that do not split evenly, so shares of tax and partial refunds must round.
const CATALOG: [(&str, &str, usize); 6] = [
    ("W-1", "9.99", 0),
    ("W-2", "4.35", 0),
    ("W-3", "12.50", 1),
    ("W-4", "0.99", 1),
    ("W-5", "33.33", 2),
    ("W-6", "7.01", 2),
];

struct Shop {
    sellers: Vec<String>,
    orders: Vec<(String, String)>,
}

async fn open_shop(app: &TestApp, dice: &mut Dice) -> Shop {
    regions(app).await;
    let mut sellers = Vec::new();
    for n in 0..3 {
        let (_, key) = app.seller(&format!("Workload seller {n}")).await;
        let variants: Vec<Value> = CATALOG
            .iter()
            .filter(|(_, _, seller)| *seller == n)
            .map(|(sku, euros, _)| json!({ "sku": sku, "prices": { "EUR": euros }, "stock": 200, "weight_grams": 100 }))
            .collect();
        app.product(
            &key,
            &json!({
                "default_locale": "en", "content": { "en": { "title": format!("Thing {n}") } },
                "variants": variants
            }),
        )
        .await;
        sellers.push(key);
    }
    let mut orders = Vec::new();
    for n in 0..12 {
        let token = shopper(app).await;
        let id = cart(app, &token, "EU").await;
        for _ in 0..1 + dice.roll(3) {
            let (sku, _, _) = CATALOG[dice.roll(CATALOG.len())];
            let quantity = 1 + dice.roll(3) as u32;
            assert_eq!(add(app, &token, &id, sku, quantity).await.status(), 200);
        }
        ship_to_germany(app, &token, &id).await;
        let placed = checkout(app, &token, &id, &format!("w{n}"), APPROVED).await;
        assert_eq!(placed.status(), 201);
        let order = placed.json::<Value>().await.expect("json")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        wait_captured(app, &order).await;
        orders.push((token, order));
    }
    Shop { sellers, orders }
}

/// Some units of the seller's lines of `order` (as the seller sees them), as request lines.
fn some_lines(part: &Value, dice: &mut Dice, units_of: impl Fn(&Value) -> i64) -> Vec<Value> {
    part["lines"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|line| {
            let units = units_of(line);
            (units > 0 && dice.roll(2) == 0).then(|| {
                let quantity = 1 + dice.roll(usize::try_from(units).unwrap_or(1)) as i64;
                json!({ "sku": line["sku"], "quantity": quantity })
            })
        })
        .collect()
}

fn units(line: &Value, field: &str) -> i64 {
    line[field].as_i64().unwrap_or(0)
}

/// One random step on a random order, through `app`; answers its status.
async fn step(app: &TestApp, shop: &Shop, dice: &mut Dice) -> u16 {
    let (token, order) = &shop.orders[dice.roll(shop.orders.len())];
    let key = &shop.sellers[dice.roll(shop.sellers.len())];
    let base = format!("/api/v1/sellers/me/orders/{order}");
    let part: Value = app
        .call(Method::GET, &base, key, None)
        .await
        .json()
        .await
        .unwrap_or(Value::Null);
    if part.get("order_id").is_none() {
        // Not this seller's order: the shopper acts instead.
        return match dice.roll(2) {
            0 => {
                post(
                    app,
                    &format!("/api/v1/orders/{order}/cancel"),
                    token,
                    Value::Null,
                )
                .await
                .0
            }
            _ => {
                let sku = CATALOG[dice.roll(CATALOG.len())].0;
                let lines = json!([{ "sku": sku, "quantity": 1, "reason": "changed my mind" }]);
                post(
                    app,
                    &format!("/api/v1/orders/{order}/returns"),
                    token,
                    json!({ "lines": lines }),
                )
                .await
                .0
            }
        };
    }
    let open = |l: &Value| units(l, "quantity") - units(l, "shipped") - units(l, "cancelled");
    let refundable =
        |l: &Value| units(l, "shipped") - (units(l, "refunded") - units(l, "cancelled"));
    match dice.roll(6) {
        0 | 1 => {
            let mut body =
                json!({ "carrier": "DHL", "tracking_number": format!("T{}", dice.roll(1000)) });
            let lines = some_lines(&part, dice, open);
            if !lines.is_empty() {
                body["lines"] = json!(lines);
            }
            post(app, &format!("{base}/fulfillments"), key, body)
                .await
                .0
        }
        2 => {
            let lines = some_lines(&part, dice, open);
            post(
                app,
                &format!("{base}/cancellations"),
                key,
                json!({ "lines": lines }),
            )
            .await
            .0
        }
        3 => {
            let lines = some_lines(&part, dice, refundable);
            post(
                app,
                &format!("{base}/refunds"),
                key,
                json!({ "lines": lines }),
            )
            .await
            .0
        }
        4 => {
            let amount = format!("{}.{:02}", dice.roll(6), dice.roll(100));
            post(
                app,
                &format!("{base}/refunds"),
                key,
                json!({ "amount": amount }),
            )
            .await
            .0
        }
        _ => match part["returns"].as_array().and_then(|r| r.first()) {
            Some(asked) => {
                let step = ["approve", "reject", "receive"][dice.roll(3)];
                let body = json!({ "restock": dice.roll(2) == 0 });
                let path = format!(
                    "{base}/returns/{}/{step}",
                    asked["id"].as_str().unwrap_or_default()
                );
                post(app, &path, key, body).await.0
            }
            None => {
                let lines: Vec<Value> = some_lines(&part, dice, refundable)
                    .into_iter()
                    .map(|mut line| {
                        line["reason"] = json!("does not fit");
                        line
                    })
                    .collect();
                post(
                    app,
                    &format!("/api/v1/orders/{order}/returns"),
                    token,
                    json!({ "lines": lines }),
                )
                .await
                .0
            }
        },
    }
}

#[actix_web::test]
async fn a_random_workload_after_the_sale_keeps_every_cent_and_every_unit_accounted_for() {
    let sink = MailSink::start().await;
    let first = app_mailing_to(&sink).await;
    let mut dice = Dice(0x5eed_1234_abcd_0001);
    let shop = open_shop(&first, &mut dice).await;
    let second = second_process_mailing_to(&first, &sink).await;
    // The SMTP server refuses a few messages on the way: they are retried.
    sink.refuse_next(3);
    let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
    for n in 0..160 {
        let app = if n % 2 == 0 { &first } else { &second };
        *answers
            .entry(step(app, &shop, &mut dice).await)
            .or_default() += 1;
    }
    eprintln!("after-sale workload answers by status: {answers:?}");
    assert!(answers.keys().all(|status| *status < 500), "{answers:?}");
    let succeeded: usize = answers
        .iter()
        .filter(|(s, _)| **s < 300)
        .map(|(_, n)| n)
        .sum();
    assert!(
        succeeded >= 40,
        "the workload should mostly change things: {answers:?}"
    );
    let db = first.db().await;
    money_adds_up(&db).await;
    stock_adds_up(&db).await;
    mail_was_delivered(&db, &sink).await;
}

/// Another process on `first`'s database and Redis prefix, sending mail to the same sink.
async fn second_process_mailing_to(first: &TestApp, sink: &MailSink) -> TestApp {
    let smtp = sink.url();
    second_process_with(first, |settings| {
        settings.mail.smtp_url = SecretString::from(smtp);
    })
    .await
}

/// Every message the workload wrote to the outbox reaches the SMTP server (the refused ones
/// after a retry), and the server got nothing the outbox does not hold; each shipment's mail
/// names its tracking number.
async fn mail_was_delivered(db: &tokio_postgres::Client, sink: &MailSink) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = db
            .query_one(
                "SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL",
                &[],
            )
            .await
            .expect("outbox")
            .get(0);
        if waiting == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} messages still unsent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(sink.refused(), 3, "the refusals happened");
    let rows = db
        .query("SELECT id::text, kind, body FROM mail_outbox", &[])
        .await
        .expect("outbox");
    let delivered: std::collections::BTreeSet<String> = sink
        .messages()
        .iter()
        .map(|m| {
            m.message_id
                .trim_matches(['<', '>'])
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let written: std::collections::BTreeSet<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(delivered, written, "what was sent is what the outbox holds");
    let kinds: std::collections::BTreeSet<String> = rows.iter().map(|row| row.get(1)).collect();
    for kind in [
        "order_confirmed",
        "order_shipped",
        "order_cancelled",
        "order_refunded",
    ] {
        assert!(kinds.contains(kind), "no {kind} mail in {kinds:?}");
    }
    for row in rows
        .iter()
        .filter(|row| row.get::<_, String>(1) == "order_shipped")
    {
        let body: String = row.get(2);
        assert!(body.contains("DHL") && body.contains('T'), "{body}");
    }
}

/// Per order: what the gateway captured less what it gave back is what the order still holds:
/// each part's worth less what the part gave back, plus the shipping unless refunded; each
/// part gave back exactly min(its worth, its unit refunds + its amount refunds); Agora's books
/// and the gateway's agree.
async fn money_adds_up(db: &tokio_postgres::Client) {
    let eur = agora::money::Currency::from_code("EUR").expect("EUR");
    let orders = db
        .query(
            "SELECT o.id, p.amount, p.refunded, g.refunded, p.status,
                    coalesce((o.shipping ->> 'amount')::numeric, 0),
                    coalesce((SELECT sum(r.shipping) FROM refunds r WHERE r.order_id = o.id), 0),
                    coalesce((SELECT sum(r.amount) FROM refunds r WHERE r.order_id = o.id), 0)
             FROM orders o JOIN payments p ON p.order_id = o.id
             JOIN sandbox_gateway_payments g ON g.reference = p.reference
             WHERE o.paid_at IS NOT NULL",
            &[],
        )
        .await
        .expect("orders");
    assert_eq!(orders.len(), 12);
    for order in orders {
        let id: uuid::Uuid = order.get(0);
        let (charged, refunded, at_gateway): (Decimal, Decimal, Decimal) =
            (order.get(1), order.get(2), order.get(3));
        let (shipping, shipping_back, refund_rows): (Decimal, Decimal, Decimal) =
            (order.get(5), order.get(6), order.get(7));
        assert_eq!(refunded, refund_rows, "order {id}: refunds rows");
        assert_eq!(refunded, at_gateway, "order {id}: the gateway's books");
        assert!(
            refunded <= charged,
            "order {id}: refunded more than captured"
        );
        let mut still_worth = shipping - shipping_back;
        let parts = db
            .query(
                "SELECT seller_id, refunded,
                        coalesce((SELECT sum(amount) FROM refunds r WHERE r.order_id = $1
                                  AND r.seller_id = p.seller_id AND r.kind = 'amount'), 0)
                 FROM order_parts p WHERE order_id = $1",
                &[&id],
            )
            .await
            .expect("parts");
        for part in parts {
            let seller: uuid::Uuid = part.get(0);
            let (part_refunded, goodwill): (Decimal, Decimal) = (part.get(1), part.get(2));
            let (mut worth, mut units_back) = (Decimal::ZERO, Decimal::ZERO);
            for line in db
                .query(
                    "SELECT quantity, line_total, refunded FROM order_lines
                     WHERE order_id = $1 AND seller_id = $2",
                    &[&id, &seller],
                )
                .await
                .expect("lines")
            {
                let (quantity, total, back): (i32, Decimal, i32) =
                    (line.get(0), line.get(1), line.get(2));
                worth += total;
                units_back += if back >= quantity {
                    total
                } else {
                    eur.round(total * Decimal::from(back) / Decimal::from(quantity))
                };
            }
            assert_eq!(
                part_refunded,
                worth.min(units_back + goodwill),
                "order {id} part {seller}"
            );
            still_worth += worth - part_refunded;
        }
        assert_eq!(
            charged - refunded,
            still_worth,
            "order {id}: captured − refunded"
        );
    }
}

/// Per variant: the units held or sold are the ordered ones less those cancelled and those
/// returned into stock; every live hold is an order's.
async fn stock_adds_up(db: &tokio_postgres::Client) {
    let rows = db
        .query(
            "SELECT v.sku, v.held + v.sold,
                    coalesce((SELECT sum(l.quantity - l.cancelled) FROM order_lines l
                              WHERE l.variant_id = v.id), 0)
                    - coalesce((SELECT sum(x.quantity) FROM return_lines x
                                JOIN returns r ON r.id = x.return_id
                                JOIN order_lines l ON l.order_id = x.order_id AND l.line_no = x.line_no
                                WHERE l.variant_id = v.id AND r.status = 'received' AND r.restocked), 0),
                    coalesce((SELECT sum(h.quantity) FROM stock_holds h
                              WHERE h.variant_id = v.id AND h.released_at IS NULL), 0)
             FROM variants v",
            &[],
        )
        .await
        .expect("variants");
    for row in rows {
        let sku: String = row.get(0);
        let (counted, expected, holds): (i32, i64, i64) = (row.get(1), row.get(2), row.get(3));
        assert_eq!(i64::from(counted), expected, "{sku}: held + sold");
        assert_eq!(i64::from(counted), holds, "{sku}: live holds");
    }
}
