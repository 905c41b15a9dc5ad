//! `spawn_app()`: a real Agora server on a free port with a fresh database and Redis prefix,
//! both removed when the [`TestApp`] is dropped (even when the test fails).

use std::{path::PathBuf, sync::Arc, time::Duration};

use actix_web::dev::ServerHandle;
use agora::{configuration::Settings, payments::PaymentProvider, startup::Application};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    /// The database this app removes when dropped (the first of apps sharing one).
    db_name: Option<String>,
    /// An in-process server, or a separate `agora serve` process.
    server: Server,
}

enum Server {
    InProcess(ServerHandle),
    Process(Option<std::process::Child>),
}

/// The test settings: `config/default.toml`, `config/test.toml`, then `AGORA__*` variables.
pub fn test_settings() -> Settings {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    Settings::load_from(&dir, "test").expect("test settings load")
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A connection to the server's maintenance database, for creating and dropping test databases.
pub async fn admin_client(settings: &Settings) -> tokio_postgres::Client {
    let url = with_database(settings.database.url.expose_secret(), "postgres");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to the postgres maintenance database");
    actix_web::rt::spawn(connection);
    client
}

/// Creates an empty database and returns its name and URL.
pub async fn fresh_database(settings: &Settings) -> (String, String) {
    let name = format!("agora_test_{}", Uuid::new_v4().simple());
    admin_client(settings)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let url = with_database(settings.database.url.expose_secret(), &name);
    (name, url)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns an app after letting the test adjust its settings.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_gateway(customize, |_| None).await
}

/// Spawns an app with the payment gateway `gateway` builds from the final settings (`None`:
/// the configured sandbox).
pub async fn spawn_app_with_gateway(
    customize: impl FnOnce(&mut Settings),
    gateway: impl FnOnce(&Settings) -> Option<Arc<dyn PaymentProvider>>,
) -> TestApp {
    let mut settings = test_settings();
    let (db_name, url) = fresh_database(&settings).await;
    settings.database.url = SecretString::from(url);
    settings.redis.prefix = format!("agora-test-{}", Uuid::new_v4().simple());
    customize(&mut settings);
    agora::telemetry::init(&settings.log);

    let application = Application::build_with_gateway(settings.clone(), gateway(&settings))
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let server = application.handle();
    actix_web::rt::spawn(application.run_until_stopped());
    TestApp {
        address,
        settings,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client"),
        db_name: Some(db_name),
        server: Server::InProcess(server),
    }
}

/// `count` separate `agora serve` processes (the binary, test settings) on one fresh database
/// and one Redis key prefix, each with `env` set; every one answers `/ready` before this returns.
pub async fn spawn_processes(count: usize, env: &[(&str, &str)]) -> Vec<TestApp> {
    let mut settings = test_settings();
    let (db_name, url) = fresh_database(&settings).await;
    settings.database.url = SecretString::from(url.clone());
    settings.redis.prefix = format!("agora-test-{}", Uuid::new_v4().simple());
    let mut apps = Vec::new();
    for n in 0..count {
        let port = free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("serve")
            .env("AGORA_ENV", "test")
            .env("AGORA__DATABASE__URL", &url)
            .env("AGORA__HTTP__ADDR", format!("127.0.0.1:{port}"))
            .env("AGORA__REDIS__PREFIX", &settings.redis.prefix)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("agora serve starts");
        let app = TestApp {
            address: format!("http://127.0.0.1:{port}"),
            settings: settings.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            db_name: (n == 0).then(|| db_name.clone()),
            server: Server::Process(Some(child)),
        };
        assert!(
            app.wait_for_status("/ready", 200, Duration::from_secs(30))
                .await,
            "agora serve #{n} never became ready"
        );
        apps.push(app);
    }
    apps
}

impl TestApp {
    /// The OS process id of a separate `agora serve` process.
    pub fn pid(&self) -> Option<u32> {
        match &self.server {
            Server::Process(Some(child)) => Some(child.id()),
            _ => None,
        }
    }

    /// Kills a separate `agora serve` process at once (SIGKILL: no graceful anything).
    pub fn kill(&mut self) {
        if let Server::Process(Some(mut child)) =
            std::mem::replace(&mut self.server, Server::Process(None))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Onboards a seller and returns its id and API key.
    pub async fn seller(&self, name: &str) -> (String, String) {
        let email = format!(
            "{}@{}.example",
            Uuid::new_v4().simple(),
            name.to_lowercase().replace(' ', "-")
        );
        let response = self
            .post_json(
                "/api/v1/sellers",
                &serde_json::json!({ "name": name, "email": email }),
            )
            .await;
        assert_eq!(response.status(), 201, "onboarding {name}");
        let body: serde_json::Value = response.json().await.expect("json");
        (
            body["id"].as_str().expect("id").to_owned(),
            body["api_key"].as_str().expect("api_key").to_owned(),
        )
    }

    /// Sends `method path` with a bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }

    /// Creates a product as the seller owning `key`; panics unless it answers 201.
    pub async fn product(&self, key: &str, body: &serde_json::Value) -> serde_json::Value {
        let response = self
            .call(reqwest::Method::POST, "/api/v1/products", key, Some(body))
            .await;
        let status = response.status();
        let json: serde_json::Value = response.json().await.expect("json");
        assert_eq!(status, 201, "{json}");
        json
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A client connection to this test's own database.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            self.settings.database.url.expose_secret(),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the test database");
        actix_web::rt::spawn(connection);
        client
    }

    /// Polls `path` until it answers `status`, for at most `within`.
    pub async fn wait_for_status(&self, path: &str, status: u16, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Ok(response) = self.client.get(self.url(path)).send().await {
                if response.status().as_u16() == status {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        match &self.server {
            // Stop accepting at once; the runtime ends with the test.
            Server::InProcess(server) => drop(server.stop(false)),
            Server::Process(_) => self.kill(),
        }
        let Some(db_name) = self.db_name.clone() else {
            return;
        };
        let settings = self.settings.clone();
        // Drop runs outside async; clean up on a thread with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                drop_database(&settings, &db_name).await;
                delete_redis_keys(&settings).await;
            });
        });
        let _ = cleanup.join();
    }
}

pub async fn drop_database(settings: &Settings, name: &str) {
    let url = with_database(settings.database.url.expose_secret(), "postgres");
    if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

async fn delete_redis_keys(settings: &Settings) {
    let Ok(client) = redis::Client::open(settings.redis.url.expose_secret()) else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let pattern = format!("{}:*", settings.redis.prefix);
    let keys: Vec<String> = match redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut connection)
        .await
    {
        Ok(keys) => keys,
        Err(_) => return,
    };
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut connection)
            .await;
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A private `redis-server` on a free port, killed on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub async fn start_on(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts (it must be installed)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            port,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
