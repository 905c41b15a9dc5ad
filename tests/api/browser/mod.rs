//! Browser tests: a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, which `scripts/test.sh` installs), against real `agora serve` processes.
//!
//! Each test starts its own chromedriver on a free loopback port and one browser session per
//! person (a session is one cookie jar; its tabs share it, as a person's tabs do). Cookies are
//! per host, not per port, so a person's tabs on two server processes (`127.0.0.1:A` and
//! `127.0.0.1:B`) are one shopper, as they would be behind a load balancer. Every test saves
//! screenshots of what it saw under `$AGORA_SCREENSHOTS` (default: the temp directory's
//! `agora-browser-screenshots/`).

mod selling;
mod selling_out;
mod shopping;

use std::{path::PathBuf, process::Child, time::Duration};

use fantoccini::{elements::Element, wd::WindowHandle, Client, ClientBuilder, Locator};

use crate::helpers::free_port;

/// Longest a page may take to show what a test waits for (live changes included).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A chromedriver process of one test; stopped when dropped.
pub struct Driver {
    process: Child,
    port: u16,
}

impl Driver {
    pub async fn start() -> Self {
        let port = free_port();
        let process = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect(
                "chromedriver starts (Debian package chromium-driver; scripts/test.sh installs it)",
            );
        let driver = Self { process, port };
        let status = format!("http://127.0.0.1:{port}/status");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            if reqwest::get(&status)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver never answered on port {port}");
    }

    /// A new browser (its own cookies), as one person.
    pub async fn browser(&self, name: &str) -> Browser {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,960", "--lang=en-US"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session");
        Browser {
            client,
            name: name.to_owned(),
            shots: 0,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// One person's browser.
pub struct Browser {
    pub client: Client,
    name: String,
    shots: usize,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("page loads");
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{}: no element {css}: {error}", self.name))
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("clicks");
    }

    /// Replaces the value of the input matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.expect("clears");
        input.send_keys(text).await.expect("types");
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Waits until the text of `css` satisfies `wanted`; answers it (panics after
    /// [`PATIENCE`], saying what it last saw).
    pub async fn wait_for_text(
        &self,
        css: &str,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut seen = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                seen = element.text().await.unwrap_or_default();
                if wanted(&seen) {
                    return seen;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        panic!(
            "{}: {css} never showed {what}; last saw {seen:?} on a page reading:\n{page}",
            self.name
        )
    }

    /// The page's whole HTML source.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("source")
    }

    /// Opens a new tab and switches to it; answers its handle.
    pub async fn new_tab(&self) -> WindowHandle {
        let tab = self.client.new_window(true).await.expect("a new tab");
        self.client
            .switch_to_window(tab.handle.clone())
            .await
            .expect("switches tab");
        tab.handle
    }

    pub async fn switch_to(&self, tab: &WindowHandle) {
        self.client
            .switch_to_window(tab.clone())
            .await
            .expect("switches tab");
    }

    pub async fn current_tab(&self) -> WindowHandle {
        self.client.window().await.expect("current tab")
    }

    /// Saves what the browser shows now as `<test>-<person>-<n>-<what>.png`.
    pub async fn screenshot(&mut self, test: &str, what: &str) -> PathBuf {
        self.shots += 1;
        let dir = std::env::var_os("AGORA_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("agora-browser-screenshots"));
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{test}-{}-{}-{what}.png", self.name, self.shots));
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
