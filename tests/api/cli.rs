//! The `agora` binary as operators run it.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::{drop_database, free_port, fresh_database, test_settings};

fn agora() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
    command
        .env(
            "AGORA_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("AGORA_ENV", "test")
        .env_remove("RUST_LOG");
    command
}

#[test]
fn a_bad_setting_stops_the_start_with_one_line_naming_its_key() {
    for (variable, value, key) in [
        ("AGORA__HTTP__ADDR", "nonsense", "http.addr"),
        (
            "AGORA__DATABASE__MAX_CONNECTIONS",
            "lots",
            "database.max_connections",
        ),
        ("AGORA__REDIS__PREFIX", "a{b}", "redis.prefix"),
        ("AGORA__LOG__FORMAT", "xml", "log.format"),
    ] {
        let output = agora()
            .arg("serve")
            .env(variable, value)
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{variable}: {stderr}");
        assert!(stderr.contains(key), "{variable}: {stderr}");
    }
}

#[test]
fn a_database_password_never_appears_in_the_output() {
    let port = free_port();
    let output = agora()
        .arg("migrate")
        .env(
            "AGORA__DATABASE__URL",
            format!("postgres://postgres:hunter2@127.0.0.1:{port}/agora"),
        )
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(all.contains("could not connect to Postgres"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

#[actix_web::test]
async fn serve_migrates_an_empty_database_logs_json_with_request_ids_and_exits_0_on_sigterm() {
    let settings = test_settings();
    let (name, url) = fresh_database(&settings).await;
    let port = free_port();
    let mut child = agora()
        .arg("serve")
        .env("AGORA__DATABASE__URL", &url)
        .env("AGORA__HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("AGORA__LOG__FORMAT", "json")
        .env("AGORA__LOG__LEVEL", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("agora serve starts");

    let client = reqwest::Client::new();
    let ready_url = format!("http://127.0.0.1:{port}/ready");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(response) = client.get(&ready_url).send().await {
            if response.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = client
        .get(format!("http://127.0.0.1:{port}/health"))
        .header("x-request-id", "cli-test-request")
        .send()
        .await;

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    let mut status = None;
    for _ in 0..100 {
        if let Some(exited) = child.try_wait().expect("wait") {
            status = Some(exited);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if status.is_none() {
        let _ = child.kill();
    }
    let mut logs = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        use std::io::Read;
        let _ = stderr.read_to_string(&mut logs);
    }
    let tables: i64 = {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        actix_web::rt::spawn(connection);
        client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'sellers'",
                &[],
            )
            .await
            .expect("query")
            .get(0)
    };
    drop_database(&settings, &name).await;

    assert!(ready, "/ready never answered 200; logs:\n{logs}");
    assert_eq!(response.expect("health answered").status(), 200);
    assert!(killed.success());
    assert_eq!(status.and_then(|s| s.code()), Some(0), "logs:\n{logs}");
    assert_eq!(tables, 1, "serve migrated the empty database");
    let request_line = logs
        .lines()
        .find(|line| line.contains("cli-test-request"))
        .unwrap_or_else(|| panic!("no log line carries the request id:\n{logs}"));
    let parsed: serde_json::Value = serde_json::from_str(request_line).expect("JSON log line");
    assert_eq!(parsed["span"]["request_id"], "cli-test-request");
    assert!(logs.contains("stopped cleanly"), "{logs}");
}

#[actix_web::test]
async fn seed_writes_a_multilingual_multicurrency_demo_store_once_however_often_it_runs() {
    let settings = test_settings();
    let (name, url) = fresh_database(&settings).await;
    let first = agora()
        .arg("seed")
        .env("AGORA__DATABASE__URL", &url)
        .output()
        .expect("runs");
    let second = agora()
        .arg("seed")
        .env("AGORA__DATABASE__URL", &url)
        .output()
        .expect("runs");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    actix_web::rt::spawn(connection);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM sellers), (SELECT count(*) FROM products),
                    (SELECT count(*) FROM regions),
                    (SELECT count(DISTINCT locale) FROM product_content),
                    (SELECT count(DISTINCT currency) FROM variant_prices)",
            &[],
        )
        .await
        .expect("counts");
    let counts: (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    drop(client);
    drop_database(&settings, &name).await;

    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let first = String::from_utf8_lossy(&first.stdout);
    let second = String::from_utf8_lossy(&second.stdout);
    assert_eq!(first.matches("agora_sk_").count(), 3, "{first}");
    assert_eq!(second.matches("agora_sk_").count(), 0, "{second}");
    assert_eq!(second.matches("exists already").count(), 3 + 6, "{second}");
    let (sellers, products, regions, locales, currencies) = counts;
    assert_eq!((sellers, products, regions), (3, 6, 3));
    assert!(locales >= 3, "{locales} locales");
    assert!(currencies >= 3, "{currencies} currencies");
}
