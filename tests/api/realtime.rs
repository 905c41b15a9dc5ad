//! WebSockets with a real client, across two server processes sharing Postgres and Redis.

use std::time::Duration;

use actix_codec::Framed;
use awc::{
    ws::{self, Codec},
    BoxedSocket,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::{
    carts::{add, cart, regions, shopper},
    helpers::{free_port, spawn_app, spawn_app_with, OwnRedis, TestApp},
};

pub type Socket = Framed<BoxedSocket, Codec>;

/// Another process on the same database and Redis (and Redis key prefix) as `first`.
pub async fn second_process(first: &TestApp) -> TestApp {
    second_process_with(first, |_| {}).await
}

/// [`second_process`], after letting the test adjust its other settings.
pub async fn second_process_with(
    first: &TestApp,
    customize: impl FnOnce(&mut agora::configuration::Settings),
) -> TestApp {
    let (url, prefix) = (
        first.settings.database.url.clone(),
        first.settings.redis.prefix.clone(),
    );
    spawn_app_with(|settings| {
        settings.database.url = url;
        settings.redis.prefix = prefix;
        customize(settings);
    })
    .await
}

pub async fn connect(app: &TestApp, path: &str, bearer: Option<&str>) -> Socket {
    let url = format!("{}{path}", app.address.replacen("http", "ws", 1));
    let mut request = awc::Client::new().ws(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let (response, socket) = request.connect().await.expect("websocket connects");
    assert_eq!(response.status(), 101);
    socket
}

pub async fn say(socket: &mut Socket, message: Value) {
    socket
        .send(ws::Message::Text(message.to_string().into()))
        .await
        .expect("sent");
}

/// The next JSON message within `within`, skipping pings; `None` on timeout or close.
pub async fn next(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??;
        match frame.expect("a frame") {
            ws::Frame::Text(bytes) => {
                return Some(serde_json::from_slice(&bytes).expect("JSON message"));
            }
            ws::Frame::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Waits for the first message matching `wanted`, failing after 5 s.
pub async fn expect(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = next(socket, left)
            .await
            .expect("the expected message arrives");
        if wanted(&message) {
            return message;
        }
    }
}

async fn product(app: &TestApp, sku: &str, stock: u32) -> String {
    let (_, key) = app.seller(&format!("Live {sku}")).await;
    app.product(
        &key,
        &json!({
            "default_locale": "en", "content": { "en": { "title": "Lamp" } },
            "variants": [{ "sku": sku, "prices": { "EUR": "30.00" }, "stock": stock }]
        }),
    )
    .await;
    key
}

#[actix_web::test]
async fn a_shopper_sees_stock_drop_when_another_shopper_reserves_on_another_process() {
    let first = spawn_app().await;
    let second = second_process(&first).await;
    regions(&first).await;
    product(&first, "LIVE-1", 20).await;

    let mut socket = connect(&second, "/ws", None).await;
    say(
        &mut socket,
        json!({ "type": "subscribe", "skus": ["live-1"] }),
    )
    .await;
    let snapshot = expect(&mut socket, |m| m["type"] == "stock").await;
    assert_eq!(
        snapshot,
        json!({ "v": 1, "type": "stock", "sku": "LIVE-1", "available": 20, "status": "in_stock" })
    );

    let token = shopper(&first).await;
    let id = cart(&first, &token, "EU").await;
    assert_eq!(add(&first, &token, &id, "LIVE-1", 16).await.status(), 200);
    let dropped = expect(&mut socket, |m| m["type"] == "stock").await;
    assert_eq!(dropped["available"], 4);
    assert_eq!(dropped["status"], "low_stock");
    assert_eq!(add(&first, &token, &id, "LIVE-1", 4).await.status(), 200);
    let gone = expect(&mut socket, |m| m["type"] == "stock").await;
    assert_eq!(
        (gone["available"].clone(), gone["status"].clone()),
        (json!(0), json!("sold_out"))
    );
    let removed = first
        .call(
            Method::DELETE,
            &format!("/api/v1/carts/{id}/items/LIVE-1"),
            &token,
            None,
        )
        .await;
    assert_eq!(removed.status(), 200);
    let back = expect(&mut socket, |m| m["type"] == "stock").await;
    assert_eq!(
        (back["available"].clone(), back["status"].clone()),
        (json!(20), json!("back_in_stock"))
    );
}

#[actix_web::test]
async fn a_shopper_following_a_product_sees_a_price_change_made_on_another_process_in_its_currency()
{
    let first = spawn_app().await;
    let second = second_process(&first).await;
    let (_, key) = first.seller("Live prices").await;
    let created = first
        .product(
            &key,
            &json!({
                "default_locale": "en", "content": { "en": { "title": "Lamp" } },
                "variants": [
                    { "sku": "PRICE-A", "prices": { "EUR": "30.00" }, "stock": 5 },
                    { "sku": "PRICE-B", "prices": { "EUR": "12.00", "USD": "14.00" }, "stock": 5 }
                ]
            }),
        )
        .await;
    let id = created["id"].as_str().expect("id");

    let mut socket = connect(&second, "/ws?currency=USD", None).await;
    say(
        &mut socket,
        json!({ "type": "subscribe", "products": [id, uuid::Uuid::nil()] }),
    )
    .await;
    let mut prices = serde_json::Map::new();
    let mut unknown = Vec::new();
    while prices.len() < 2 || unknown.is_empty() {
        let message = expect(&mut socket, |m| {
            m["type"] == "price" || m["type"] == "error"
        })
        .await;
        if message["type"] == "error" {
            unknown.push(message["code"].clone());
        } else {
            let sku = message["sku"].as_str().expect("sku").to_owned();
            prices.insert(sku, message["price"].clone());
        }
    }
    assert_eq!(unknown, vec![json!("unknown_product")]);
    // EUR 30.00 at the test rate of 1.0850; the other has a USD price of its own.
    assert_eq!(
        Value::Object(prices),
        json!({
            "PRICE-A": { "amount": "32.55", "currency": "USD", "converted": true },
            "PRICE-B": { "amount": "14.00", "currency": "USD", "converted": false }
        })
    );

    let response = first
        .call(
            Method::PATCH,
            &format!("/api/v1/products/{id}"),
            &key,
            Some(&json!({ "variants": [{ "sku": "PRICE-A", "prices": { "EUR": "40.00" } }] })),
        )
        .await;
    assert_eq!(response.status(), 200);
    let changed = expect(&mut socket, |m| m["type"] == "price").await;
    assert_eq!(
        changed,
        json!({ "v": 1, "type": "price", "sku": "PRICE-A",
                "price": { "amount": "43.40", "currency": "USD", "converted": true } })
    );
    // PRICE-B's price did not change: nothing more is sent for it.
    assert_eq!(next(&mut socket, Duration::from_millis(500)).await, None);
}

#[actix_web::test]
async fn a_cart_change_made_on_one_process_appears_on_sockets_of_both() {
    let first = spawn_app().await;
    let second = second_process(&first).await;
    regions(&first).await;
    product(&first, "LIVE-2", 10).await;
    let token = shopper(&first).await;
    let id = cart(&first, &token, "EU").await;

    let mut here = connect(&first, "/ws", Some(&token)).await;
    let mut there = connect(&second, &format!("/ws?token={token}"), None).await;
    for socket in [&mut here, &mut there] {
        say(socket, json!({ "type": "subscribe_cart", "cart_id": id })).await;
        let snapshot = expect(socket, |m| m["type"] == "cart").await;
        assert_eq!(snapshot["cart"]["lines"], json!([]));
    }
    assert_eq!(add(&first, &token, &id, "LIVE-2", 2).await.status(), 200);
    for socket in [&mut here, &mut there] {
        let changed = expect(socket, |m| m["type"] == "cart").await;
        assert_eq!(changed["cart_id"], id.as_str());
        assert_eq!(changed["cart"]["lines"][0]["sku"], "LIVE-2");
        assert_eq!(changed["cart"]["lines"][0]["quantity"], 2);
        assert!(changed["cart"]["lines"][0]["held_until"].is_string());
    }

    // Another shopper cannot follow this cart, and a socket without a token cannot follow any.
    let other = shopper(&first).await;
    let mut intruder = connect(&second, &format!("/ws?token={other}"), None).await;
    say(
        &mut intruder,
        json!({ "type": "subscribe_cart", "cart_id": id }),
    )
    .await;
    let refused = expect(&mut intruder, |m| m["type"] == "error").await;
    assert_eq!(refused["code"], "not_found");
    let mut anonymous = connect(&second, "/ws", None).await;
    say(
        &mut anonymous,
        json!({ "type": "subscribe_cart", "cart_id": id }),
    )
    .await;
    let refused = expect(&mut anonymous, |m| m["type"] == "error").await;
    assert_eq!(refused["code"], "unauthorized");
}

async fn checkout(app: &TestApp, token: &str, cart: &str, key: &str) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/carts/{cart}/checkout")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({ "payment": { "card_number": "4242424242424242" } }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

/// A paid order of one unit of `sku`, through `app`.
async fn order(app: &TestApp, sku: &str, key: &str) -> String {
    let token = shopper(app).await;
    let id = cart(app, &token, "EU").await;
    assert_eq!(add(app, &token, &id, sku, 1).await.status(), 200);
    app.call(
        Method::PUT,
        &format!("/api/v1/carts/{id}/shipping"),
        &token,
        Some(&crate::carts::german_shipping()),
    )
    .await;
    checkout(app, &token, &id, key).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[actix_web::test]
async fn a_seller_receives_its_own_orders_from_any_process_and_never_another_sellers() {
    let first = spawn_app().await;
    let second = second_process(&first).await;
    regions(&first).await;
    let lamps = product(&first, "LAMP-A", 50).await;
    let chairs = product(&first, "CHAIR-B", 50).await;
    let mut lamp_feed = connect(&second, "/ws/seller", Some(&lamps)).await;
    let mut chair_feed = connect(&first, &format!("/ws/seller?api_key={chairs}"), None).await;

    let lamp_order = order(&first, "LAMP-A", "a").await;
    let event = expect(&mut lamp_feed, |m| m["type"] == "order_event").await;
    assert_eq!(event["order_id"], lamp_order.as_str());
    assert_eq!(
        (event["kind"].clone(), event["status"].clone()),
        (json!("paid"), json!("paid"))
    );
    assert_eq!(event["subtotal"]["amount"], "30.00");
    assert!(event["id"].is_string());
    assert_eq!(
        next(&mut chair_feed, Duration::from_millis(1500)).await,
        None,
        "nothing for chairs"
    );

    let chair_order = order(&second, "CHAIR-B", "b").await;
    let event = expect(&mut chair_feed, |m| m["type"] == "order_event").await;
    assert_eq!(event["order_id"], chair_order.as_str());
    assert_eq!(
        next(&mut lamp_feed, Duration::from_millis(1500)).await,
        None,
        "nothing for lamps"
    );

    let unauthorized = awc::Client::new()
        .ws(format!(
            "{}/ws/seller",
            first.address.replacen("http", "ws", 1)
        ))
        .connect()
        .await;
    assert!(unauthorized.is_err(), "no key, no feed");
}

#[actix_web::test]
async fn a_seller_resuming_after_a_disconnect_gets_exactly_the_events_it_missed() {
    let app = spawn_app().await;
    regions(&app).await;
    let key = product(&app, "RESUME-1", 50).await;
    let mut feed = connect(&app, "/ws/seller", Some(&key)).await;
    let first_order = order(&app, "RESUME-1", "one").await;
    let seen = expect(&mut feed, |m| m["type"] == "order_event").await;
    let last_id = seen["id"].as_str().expect("id").to_owned();
    let _ = feed.close().await;
    drop(feed);

    // Missed while away: two new orders and the first one's fulfillment.
    let second_order = order(&app, "RESUME-1", "two").await;
    let third_order = order(&app, "RESUME-1", "three").await;
    let fulfilled = app
        .call(
            Method::POST,
            &format!("/api/v1/seller/orders/{first_order}/fulfill"),
            &key,
            None,
        )
        .await;
    assert_eq!(fulfilled.status(), 204);

    let mut feed = connect(
        &app,
        &format!("/ws/seller?last_event_id={last_id}"),
        Some(&key),
    )
    .await;
    let mut missed = Vec::new();
    while let Some(message) = next(&mut feed, Duration::from_millis(2500)).await {
        if message["type"] == "order_event" {
            missed.push((
                message["order_id"].as_str().expect("order").to_owned(),
                message["kind"].as_str().expect("kind").to_owned(),
            ));
        }
    }
    assert_eq!(
        missed,
        [
            (second_order, "paid".to_owned()),
            (third_order, "paid".to_owned()),
            (first_order, "fulfilled".to_owned()),
        ],
        "every missed event once, in order, and nothing already seen"
    );
    let bad = awc::Client::new()
        .ws(format!(
            "{}/ws/seller?last_event_id=nonsense",
            app.address.replacen("http", "ws", 1)
        ))
        .bearer_auth(&key)
        .connect()
        .await;
    assert!(bad.is_err(), "an invalid last_event_id is refused");
}

#[actix_web::test]
async fn a_malformed_message_gets_an_error_and_an_oversized_frame_closes_the_socket() {
    let app = spawn_app().await;
    let mut socket = connect(&app, "/ws", None).await;
    socket
        .send(ws::Message::Text("not json".into()))
        .await
        .expect("sent");
    let error = expect(&mut socket, |m| m["type"] == "error").await;
    assert_eq!(error["code"], "invalid_message");
    say(&mut socket, json!({ "type": "dance" })).await;
    let error = expect(&mut socket, |m| m["type"] == "error").await;
    assert_eq!(error["code"], "invalid_message");
    say(&mut socket, json!({ "type": "subscribe" })).await;
    let error = expect(&mut socket, |m| m["type"] == "error").await;
    assert_eq!(error["code"], "invalid_message");
    say(&mut socket, json!({ "type": "ping" })).await;
    assert_eq!(expect(&mut socket, |m| m["type"] == "pong").await["v"], 1);

    socket
        .send(ws::Message::Text("x".repeat(5000).into()))
        .await
        .expect("sent");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut close = None;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Ok(ws::Frame::Close(reason)) = frame {
            close = reason;
            break;
        }
    }
    assert_eq!(close.map(|r| r.code), Some(ws::CloseCode::Size));
}

#[actix_web::test]
async fn a_process_that_loses_redis_resubscribes_by_itself_and_fans_out_again() {
    let mut redis = OwnRedis::start_on(free_port()).await;
    let redis_url = redis.url();
    let first = spawn_app_with(|settings| {
        settings.redis.url = SecretString::from(redis_url.clone());
    })
    .await;
    let (url, prefix) = (
        first.settings.database.url.clone(),
        first.settings.redis.prefix.clone(),
    );
    let second = spawn_app_with(|settings| {
        settings.database.url = SecretString::from(url);
        settings.redis.prefix = prefix;
        settings.redis.url = SecretString::from(redis_url.clone());
    })
    .await;
    regions(&first).await;
    product(&first, "LIVE-R", 100).await;
    let mut socket = connect(&second, "/ws", None).await;
    say(
        &mut socket,
        json!({ "type": "subscribe", "skus": ["LIVE-R"] }),
    )
    .await;
    expect(&mut socket, |m| m["type"] == "stock").await;
    expect(&mut socket, |m| m["type"] == "price").await;

    let port = redis.port;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _redis = OwnRedis::start_on(port).await;

    // Changes keep being made on the first process until one reaches the second's socket.
    let token = shopper(&first).await;
    let id = cart(&first, &token, "EU").await;
    let mut reached = None;
    for _ in 0..20 {
        assert_eq!(add(&first, &token, &id, "LIVE-R", 1).await.status(), 200);
        if let Some(message) = next(&mut socket, Duration::from_millis(500)).await {
            reached = Some(message);
            break;
        }
    }
    let message = reached.expect("fan-out resumed after Redis came back");
    assert_eq!(message["type"], "stock");
    assert!(message["available"].as_i64().expect("available") < 100);
}

#[actix_web::test]
async fn a_cart_follower_is_warned_before_a_hold_lapses() {
    // Holds of 30 s are inside the 60 s warning lead: the warning is due at once.
    let app = spawn_app_with(|settings| settings.inventory.hold_ttl_secs = 30).await;
    regions(&app).await;
    product(&app, "LIVE-W", 5).await;
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;
    let mut socket = connect(&app, &format!("/ws?token={token}"), None).await;
    say(
        &mut socket,
        json!({ "type": "subscribe_cart", "cart_id": id }),
    )
    .await;
    expect(&mut socket, |m| m["type"] == "cart").await;
    assert_eq!(add(&app, &token, &id, "LIVE-W", 1).await.status(), 200);
    let warning = expect(&mut socket, |m| m["type"] == "hold_expiring").await;
    assert_eq!(warning["sku"], "LIVE-W");
    assert_eq!(warning["cart_id"], id.as_str());
    assert!(warning["expires_at"].is_string());
}

/// A WebSocket client that reads nothing after subscribing: a raw TCP socket with a small
/// receive buffer (set before connecting, so the kernel does not grow it).
async fn subscriber_that_stops_reading(app: &TestApp, sku: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address: std::net::SocketAddr = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket.connect(address).await.expect("connects");
    stream
        .write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("handshake sent");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("handshake answer"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded");
    // One masked text frame (clients must mask; a zero mask leaves the payload as is).
    let payload = json!({ "type": "subscribe", "skus": [sku] }).to_string();
    let mut frame = vec![
        0x81,
        0x80 | u8::try_from(payload.len()).expect("short frame"),
    ];
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload.as_bytes());
    stream.write_all(&frame).await.expect("subscribed");
    stream
}

/// Sets the SKU's stock `rounds` times (500,000, 500,001, …): one stock notice each.
async fn restock_in_rounds(app: &TestApp, key: &str, sku: &str, rounds: u32) {
    for round in 0..rounds {
        let response = app
            .call(
                Method::PUT,
                &format!("/api/v1/inventory/{sku}"),
                key,
                Some(&json!({ "stock_on_hand": 500_000 + round })),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
}

#[actix_web::test]
async fn a_socket_that_stops_reading_gets_a_bounded_backlog_then_a_slow_consumer_close() {
    use tokio::io::AsyncReadExt;
    let app = spawn_app_with(|settings| settings.http.socket_send_buffer_bytes = 4096).await;
    let key = product(&app, "SLOW-1", 1_000_000).await;
    let mut stalled = subscriber_that_stops_reading(&app, "SLOW-1").await;
    let mut reader = connect(&app, "/ws", None).await;
    say(
        &mut reader,
        json!({ "type": "subscribe", "skus": ["SLOW-1"] }),
    )
    .await;
    expect(&mut reader, |m| m["type"] == "stock").await;

    // Every change is a stock notice to both sockets. The stalled one's kernel buffers and
    // actix's write buffer fill; its actor, no longer polled, stops taking notices; its mailbox
    // fills and the hub drops it (the close waits until the client reads again).
    restock_in_rounds(&app, &key, "SLOW-1", 1500).await;
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while let Ok(Ok(read)) =
        tokio::time::timeout(Duration::from_millis(500), stalled.read(&mut chunk)).await
    {
        if read == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..read]);
    }
    // 1,500 notices would be about 120 KB; what reached it is bounded by the buffers and the
    // mailbox (64 notices), and it ends with a close frame, code 1013 ("try again later").
    assert!(received.len() < 96 * 1024, "{} bytes", received.len());
    let close = [0x88, 0x1b, 0x03, 0xf5];
    let at = received
        .windows(close.len())
        .rposition(|window| window == close)
        .expect("a close frame with code 1013");
    assert!(received.len() - at < 64, "the close frame comes last");

    // The socket that reads saw the changes, up to the last one.
    let mut last = Value::Null;
    while let Some(message) = next(&mut reader, Duration::from_millis(500)).await {
        last = message;
    }
    assert_eq!(last["available"], 501_499);
}

#[actix_web::test]
async fn a_client_that_stops_reading_for_good_loses_its_connection_instead_of_holding_it() {
    use tokio::io::AsyncReadExt;
    let app = spawn_app_with(|settings| {
        settings.http.socket_send_buffer_bytes = 4096;
        settings.http.tcp_user_timeout_secs = 1;
    })
    .await;
    let key = product(&app, "GONE-1", 1_000_000).await;
    let mut stalled = subscriber_that_stops_reading(&app, "GONE-1").await;

    // Enough notices (about 80 bytes each) to fill its receive window and the server's send
    // buffer: its actor is then no longer run, so neither a heartbeat nor the hub's eviction
    // can close it.
    restock_in_rounds(&app, &key, "GONE-1", 300).await;
    // The kernel aborts the connection once its window stayed shut past the user timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut chunk = vec![0u8; 1 << 16];
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(2), stalled.read(&mut chunk)).await {
            Ok(Ok(0)) => break "closed",
            Ok(Ok(_)) => continue,
            Ok(Err(error)) => {
                assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
                break "reset";
            }
            Err(_) => break "still open",
        }
    };
    assert_eq!(ended, "reset");
}

#[actix_web::test]
async fn a_shopper_following_its_order_sees_it_fulfilled_by_the_seller_through_another_process() {
    let processes = crate::helpers::spawn_processes(2, &[]).await;
    let (shop, seller_side) = (&processes[0], &processes[1]);
    regions(shop).await;
    let key = product(shop, "PARCEL-1", 10).await;
    let token = shopper(shop).await;
    let cart_id = cart(shop, &token, "EU").await;
    assert_eq!(
        add(shop, &token, &cart_id, "PARCEL-1", 1).await.status(),
        200
    );
    shop.call(
        Method::PUT,
        &format!("/api/v1/carts/{cart_id}/shipping"),
        &token,
        Some(&crate::carts::german_shipping()),
    )
    .await;
    let order_id = checkout(shop, &token, &cart_id, "order-live").await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let mut socket = connect(shop, &format!("/ws?token={token}"), None).await;
    say(
        &mut socket,
        json!({ "type": "follow_order", "order_id": order_id }),
    )
    .await;
    let now = expect(&mut socket, |m| m["type"] == "order").await;
    assert_eq!(
        (
            now["v"].clone(),
            now["order_id"].clone(),
            now["status"].clone()
        ),
        (json!(1), json!(order_id), json!("paid"))
    );

    let fulfilled = seller_side
        .call(
            Method::POST,
            &format!("/api/v1/sellers/me/orders/{order_id}/fulfill"),
            &key,
            None,
        )
        .await;
    assert_eq!(fulfilled.status(), 204);
    let changed = expect(&mut socket, |m| m["type"] == "order").await;
    assert_eq!(changed["order_id"], order_id.as_str());
    assert_eq!(changed["status"], "fulfilled");

    // Another shopper's order is not found; without a token, nobody's is followed.
    let stranger = shopper(seller_side).await;
    let mut other = connect(seller_side, &format!("/ws?token={stranger}"), None).await;
    say(
        &mut other,
        json!({ "type": "follow_order", "order_id": order_id }),
    )
    .await;
    let refused = expect(&mut other, |m| m["type"] == "error").await;
    assert_eq!(refused["code"], "not_found");
    let mut anonymous = connect(shop, "/ws", None).await;
    say(
        &mut anonymous,
        json!({ "type": "follow_order", "order_id": order_id }),
    )
    .await;
    let refused = expect(&mut anonymous, |m| m["type"] == "error").await;
    assert_eq!(refused["code"], "unauthorized");
}
