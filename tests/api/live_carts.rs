//! A cart kept in memory by its actor: changes through several processes at once are all
//! kept, and a process killed with changes waiting for the commit group and the shards loses
//! only changes it had not acknowledged.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::{
    carts::{add, cart, regions, shopper, stocked},
    helpers::{spawn_app, spawn_processes, TestApp},
    realtime::second_process,
};

/// The cart's quantity of each SKU, as the API shows it.
async fn quantities(app: &TestApp, token: &str, cart: &str) -> Vec<(String, u64)> {
    let response = app
        .call(Method::GET, &format!("/api/v1/carts/{cart}"), token, None)
        .await;
    assert_eq!(response.status(), 200);
    lines_of(&response.json().await.expect("json"))
}

fn lines_of(cart: &Value) -> Vec<(String, u64)> {
    let mut lines: Vec<(String, u64)> = cart["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|line| {
            let sku = line["sku"].as_str().expect("sku").to_owned();
            (sku, line["quantity"].as_u64().expect("quantity"))
        })
        .collect();
    lines.sort();
    lines
}

/// Units of the cart's live holds, per SKU, in Postgres.
async fn held(app: &TestApp, cart: &str) -> Vec<(String, i64)> {
    app.db()
        .await
        .query(
            "SELECT v.sku, sum(h.quantity)::int8 FROM stock_holds h
             JOIN variants v ON v.id = h.variant_id
             WHERE h.owner = $1 AND h.released_at IS NULL
             GROUP BY v.sku ORDER BY v.sku",
            &[&cart],
        )
        .await
        .expect("holds")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[actix_web::test]
async fn a_cart_changed_through_two_processes_at_once_loses_neither_change() {
    let first = spawn_app().await;
    let second = second_process(&first).await;
    regions(&first).await;
    for sku in ["TWO-PROC-A", "TWO-PROC-B"] {
        stocked(&first, sku, 1_000).await;
    }
    let token = shopper(&first).await;
    let cart = cart(&first, &token, "eu").await;

    // Rounds of one addition through each process at the same moment: each process's actor
    // keeps the cart in memory, and every round the other process changed it meanwhile.
    const ROUNDS: u64 = 15;
    for _ in 0..ROUNDS {
        let (through_first, through_second) = futures_util::join!(
            add(&first, &token, &cart, "TWO-PROC-A", 1),
            add(&second, &token, &cart, "TWO-PROC-B", 1),
        );
        assert_eq!(through_first.status(), 200);
        assert_eq!(through_second.status(), 200);
    }
    // And the same line through both at once.
    for _ in 0..ROUNDS {
        let (through_first, through_second) = futures_util::join!(
            add(&first, &token, &cart, "TWO-PROC-A", 1),
            add(&second, &token, &cart, "TWO-PROC-A", 1),
        );
        assert_eq!(through_first.status(), 200);
        assert_eq!(through_second.status(), 200);
    }

    // And an addition through one while the other lowers another line (the commit group).
    const LOWERED: u64 = 10;
    for round in 1..=LOWERED {
        let (path, body) = (
            format!("/api/v1/carts/{cart}/items/TWO-PROC-B"),
            serde_json::json!({ "quantity": ROUNDS - round }),
        );
        let lower = second.call(Method::PATCH, &path, &token, Some(&body));
        let (through_first, through_second) =
            futures_util::join!(add(&first, &token, &cart, "TWO-PROC-A", 1), lower);
        assert_eq!(through_first.status(), 200);
        assert_eq!(through_second.status(), 200);
    }
    let (a, b) = (3 * ROUNDS + LOWERED, ROUNDS - LOWERED);

    let expected = vec![("TWO-PROC-A".to_owned(), a), ("TWO-PROC-B".to_owned(), b)];
    assert_eq!(quantities(&first, &token, &cart).await, expected);
    let units = |lines: &[(String, u64)]| -> Vec<(String, i64)> {
        lines
            .iter()
            .map(|(sku, n)| (sku.clone(), i64::try_from(*n).expect("units")))
            .collect()
    };
    assert_eq!(
        held(&first, &cart).await,
        units(&expected),
        "every unit held once"
    );
    // Each process answers its next change from the cart as it now is, not from its copy.
    for (app, sku, a, b) in [
        (&first, "TWO-PROC-B", a, b + 1),
        (&second, "TWO-PROC-A", a + 1, b + 1),
    ] {
        let response = add(app, &token, &cart, sku, 1).await;
        assert_eq!(response.status(), 200);
        let answered = lines_of(&response.json().await.expect("json"));
        assert_eq!(
            answered,
            vec![("TWO-PROC-A".to_owned(), a), ("TWO-PROC-B".to_owned(), b)]
        );
    }
    // Removing through one process what the other added is not undone by the other's copy.
    let removed = second
        .call(
            Method::DELETE,
            &format!("/api/v1/carts/{cart}/items/TWO-PROC-B"),
            &token,
            None,
        )
        .await;
    assert_eq!(removed.status(), 200);
    let response = add(&first, &token, &cart, "TWO-PROC-A", 1).await;
    assert_eq!(
        lines_of(&response.json().await.expect("json")),
        vec![("TWO-PROC-A".to_owned(), a + 2)]
    );
    assert_eq!(
        held(&first, &cart).await,
        units(&[("TWO-PROC-A".to_owned(), a + 2)])
    );
}

#[actix_web::test]
async fn a_process_killed_with_cart_changes_waiting_loses_only_changes_it_did_not_acknowledge() {
    // One writer: removals queue for the commit group behind the batch it writes when the kill
    // comes (additions queue for the shards' batches).
    let mut apps = spawn_processes(1, &[("AGORA__CHECKOUT__COMMIT_WRITERS", "1")]).await;
    let app = &apps[0];
    regions(app).await;
    stocked(app, "CRASH-CART", 100_000).await;
    const CARTS: usize = 16;
    let mut shoppers = Vec::new();
    for _ in 0..CARTS {
        let token = shopper(app).await;
        let cart = cart(app, &token, "eu").await;
        shoppers.push((token, cart));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let address = app.address.clone();
    // Each shopper adds a unit and removes it again (through the shards' batches and the
    // commit group in turn) until the process dies: answered 200 means acknowledged; anything
    // else (a cut connection) leaves that change unknown. Answers (acknowledged quantity, the
    // quantity of the change in flight).
    let churn = shoppers.iter().map(|(token, cart)| {
        let (client, address) = (client.clone(), address.clone());
        async move {
            let (mut acknowledged, mut step) = (0_i64, 0_u64);
            loop {
                step += 1;
                let (request, wanted) = match step % 2 {
                    1 => (
                        client
                            .post(format!("{address}/api/v1/carts/{cart}/items"))
                            .json(&serde_json::json!({ "sku": "CRASH-CART", "quantity": 1 })),
                        1,
                    ),
                    _ => (
                        client.delete(format!("{address}/api/v1/carts/{cart}/items/CRASH-CART")),
                        0,
                    ),
                };
                match request.bearer_auth(token).send().await {
                    Ok(response) if response.status() == 200 => acknowledged = wanted,
                    _ => return (acknowledged, wanted),
                }
            }
        }
    });
    let pid = app.pid().expect("a process");
    let killer = async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    };
    let (outcomes, ()) = futures_util::join!(futures_util::future::join_all(churn), killer);
    apps[0].kill();
    let app = &apps[0];

    let db = app.db().await;
    for ((_, cart), (acknowledged, in_flight)) in shoppers.iter().zip(&outcomes) {
        let quantity: i64 = db
            .query_opt(
                "SELECT quantity::int8 FROM cart_lines WHERE cart_id = $1::text::uuid",
                &[cart],
            )
            .await
            .expect("line")
            .map_or(0, |row| row.get(0));
        assert!(
            quantity == *acknowledged || quantity == *in_flight,
            "cart {cart}: {acknowledged} acknowledged, {in_flight} in flight, {quantity} in \
             Postgres (only the change in flight may be there unacknowledged)"
        );
        let holds = held(app, cart).await;
        let held_units = holds.first().map_or(0, |(_, units)| *units);
        assert!(
            held_units >= quantity,
            "cart {cart}: {quantity} units in the cart, {held_units} held"
        );
    }
    let changes: i64 = db
        .query_one(
            "SELECT count(*) FROM stock_holds WHERE owner = ANY($1)",
            &[&shoppers
                .iter()
                .map(|(_, cart)| cart.clone())
                .collect::<Vec<_>>()],
        )
        .await
        .expect("holds")
        .get(0);
    assert!(changes > CARTS as i64, "changes were made before the kill");
}
