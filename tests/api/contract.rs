//! The contract at the edge (#22): what the contract run (`scripts/test-contract.sh`) found,
//! each kept fixed here; what the framework refuses, answered and logged as a client's fault;
//! and the budget of 401s per client address, shared by every process.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    carts::{cart, regions, shopper, stocked},
    helpers::{
        drop_database, free_port, fresh_database, spawn_app, spawn_processes, test_settings,
        TestApp,
    },
};

async fn error_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON error");
    (status, body["error"].clone())
}

#[actix_web::test]
async fn a_cart_line_named_by_an_sku_the_storefront_lacks_is_not_found() {
    let app = spawn_app().await;
    regions(&app).await;
    stocked(&app, "LINE-MUG", 5).await;
    let token = shopper(&app).await;
    let id = cart(&app, &token, "EU").await;
    let path = format!("/api/v1/carts/{id}/items/NO-SUCH-SKU");
    let change = json!({ "quantity": 2 });
    for (method, body) in [(Method::DELETE, None), (Method::PATCH, Some(&change))] {
        let response = app.call(method.clone(), &path, &token, body).await;
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method}: {error}"
        );
    }
    // An SKU the storefront has but the cart does not: removing it leaves the cart as it is,
    // changing it is not found.
    let path = format!("/api/v1/carts/{id}/items/LINE-MUG");
    let removed = app.call(Method::DELETE, &path, &token, None).await;
    assert_eq!(removed.status(), StatusCode::OK);
    let changed = app.call(Method::PATCH, &path, &token, Some(&change)).await;
    assert_eq!(changed.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn a_stored_region_is_answered_as_the_document_describes_it() {
    let app = spawn_app().await;
    regions(&app).await;
    let document: Value = app.get("/openapi.json").await.json().await.expect("json");
    let region = &document["components"]["schemas"]["Region"];
    let documented: Vec<String> = region["allOf"]
        .as_array()
        .expect("Region is composed")
        .iter()
        .flat_map(|part| {
            assert_ne!(part["additionalProperties"], json!(false), "{region}");
            part["properties"]
                .as_object()
                .map(|properties| properties.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    let answered: Value = app
        .get("/api/v1/regions/EU")
        .await
        .json()
        .await
        .expect("json");
    for key in answered.as_object().expect("a region").keys() {
        assert!(
            documented.contains(key),
            "`{key}` is not documented: {region}"
        );
    }
}

/// An `agora serve` process logging JSON lines to a file, killed (and its database dropped)
/// when dropped.
struct LoggingServer {
    child: Child,
    log: PathBuf,
    port: u16,
    db_name: String,
}

impl LoggingServer {
    async fn start() -> Self {
        let settings = test_settings();
        let (db_name, url) = fresh_database(&settings).await;
        let port = free_port();
        let log = std::env::temp_dir().join(format!("agora-contract-{db_name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("serve")
            .env("AGORA_ENV", "test")
            .env("AGORA__DATABASE__URL", &url)
            .env("AGORA__HTTP__ADDR", format!("127.0.0.1:{port}"))
            .env("AGORA__REDIS__PREFIX", format!("agora-test-{db_name}"))
            .env("AGORA__LOG__FORMAT", "json")
            .env("AGORA__LOG__LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("agora serve starts");
        let server = Self {
            child,
            log,
            port,
            db_name,
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            let ready = client
                .get(format!("http://127.0.0.1:{port}/ready"))
                .send()
                .await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("agora serve never became ready");
    }

    /// Sends `request` as raw bytes and answers the status line of the answer and its body.
    async fn raw(&self, request: &[u8]) -> (String, String) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect");
        // A refusal may close the connection before all of it is read.
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("an answer within 5 s");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.lines().next().unwrap_or_default().to_owned();
        (status, body.to_owned())
    }

    /// The JSON log lines written so far.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .expect("the log")
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let settings = test_settings();
        let name = self.db_name.clone();
        let cleanup = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_database(&settings, &name));
            }
        });
        let _ = cleanup.join();
    }
}

#[actix_web::test]
async fn junk_the_framework_refuses_is_a_4xx_logged_at_warn_never_at_error() {
    let server = LoggingServer::start().await;
    let too_many_headers = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..120)
            .map(|n| format!("X-H{n}: {n}\r\n"))
            .collect::<String>()
    );
    let refused: [(&[u8], &str); 3] = [
        (
            b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\nAccept-Language: \x01\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"POST /api/v1/sellers HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (too_many_headers.as_bytes(), "HTTP/1.1 4"),
    ];
    for (n, (request, status)) in refused.iter().enumerate() {
        let (status_line, _) = server.raw(request).await;
        assert!(
            status_line.starts_with(status),
            "request {n}: {status_line}"
        );
    }
    // Junk that reaches the routes is answered in the error shape.
    let (status_line, body) = server
        .raw(b"POST /api/v1/sellers HTTP/1.1\r\nHost: x\r\nContent-Type: ;;;\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .await;
    assert!(status_line.starts_with("HTTP/1.1 415"), "{status_line}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    let mut warned = 0;
    for _ in 0..50 {
        let lines = server.lines();
        let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
        assert!(errors.is_empty(), "junk wrote ERROR lines: {errors:?}");
        warned = lines
            .iter()
            .filter(|l| l["level"] == "WARN" && l["target"] == "agora::http::framework")
            .count();
        if warned >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        warned >= 3,
        "the refusals were not logged at WARN: {:?}",
        server.lines()
    );
}

async fn seller_me(app: &TestApp, key: &str) -> reqwest::Response {
    app.call(Method::GET, "/api/v1/sellers/me", key, None).await
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After in seconds")
}

async fn throttled_count(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix("agora_unauthorized_throttled_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .expect("agora_unauthorized_throttled_total is exported")
}

#[actix_web::test]
async fn an_address_that_draws_too_many_401s_gets_429_on_every_process_until_its_window_passes() {
    let window_secs = 8;
    let apps = spawn_processes(
        2,
        &[
            ("AGORA__AUTH__UNAUTHORIZED_PER_ADDRESS", "3"),
            ("AGORA__AUTH__UNAUTHORIZED_WINDOW_SECS", "8"),
        ],
    )
    .await;
    let (first, second) = (&apps[0], &apps[1]);
    assert_eq!(
        throttled_count(first).await,
        0,
        "exported at 0 from the start"
    );
    let (_, key) = first.seller("Budgeted").await;
    // Authenticated requests spend nothing.
    for _ in 0..5 {
        assert_eq!(seller_me(second, &key).await.status(), 200);
    }
    // Three 401s, from two processes and two kinds of refusal: a wrong key, no credentials.
    assert_eq!(seller_me(first, "agora_sk_wrong").await.status(), 401);
    let anonymous = first.get("/api/v1/shoppers/me").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(seller_me(second, "agora_sk_wrong").await.status(), 401);

    // The fourth, on either process, is a 429 with Retry-After within the window.
    let refused = seller_me(second, "agora_sk_wrong").await;
    let wait = retry_after(&refused);
    assert!((1..=window_secs).contains(&wait), "Retry-After {wait}");
    let (status, error) = error_of(refused).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let refused = first.get("/api/v1/shoppers/me").await;
    assert_eq!(refused.status(), 429);
    // A process that saw the address over budget refuses its credentials before checking
    // them: a right key is not told from a wrong one.
    assert_eq!(seller_me(second, &key).await.status(), 429);
    assert_eq!(seller_me(first, &key).await.status(), 429);
    // What needs no credentials is still served.
    assert_eq!(first.get("/api/v1/products").await.status(), 200);
    assert!(throttled_count(first).await >= 2);
    assert!(throttled_count(second).await >= 2);

    // Once the oldest 401 leaves the window, the address is served again.
    tokio::time::sleep(Duration::from_secs(wait + 1)).await;
    assert_eq!(seller_me(second, &key).await.status(), 200);
    assert_eq!(seller_me(first, "agora_sk_wrong").await.status(), 401);
}

#[actix_web::test]
async fn a_new_process_exports_every_throttle_and_mail_counter_at_zero_before_its_first_event() {
    // A separate process: in this test binary an earlier app may have installed the metrics
    // recorder already, which would hide a counter registered before the recorder exists.
    let apps = spawn_processes(1, &[]).await;
    let metrics = apps[0].get("/metrics").await.text().await.expect("text");
    for series in [
        "agora_sign_in_throttled_total{by=\"account\"}",
        "agora_sign_in_throttled_total{by=\"address\"}",
        "agora_password_reset_throttled_total{by=\"address\"}",
        "agora_unauthorized_throttled_total",
        "agora_mail_failures_total{kind=\"gave_up\"}",
        "agora_mail_sent_total",
        "agora_http_panics_total",
    ] {
        assert!(
            metrics.lines().any(|line| line == format!("{series} 0")),
            "{series} is not exported at 0:\n{metrics}"
        );
    }
}
