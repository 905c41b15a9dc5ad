//! The console's live status page (`/operator/status`): whether Postgres and Redis answer (as
//! `/ready` checks them), and this process's open sockets, orders per minute and checkout
//! latency, read from its own Prometheus metrics (what `/metrics` renders). The page reloads
//! itself every few seconds (the `Refresh` header: no script needed), and can be paused.
//!
//! Rates and latencies need two readings: each rendering keeps the counters it read (for ten
//! minutes, in this process), and figures are over the last minute, or over as much of it as
//! has been read. These are one process's figures; Prometheus and Grafana have every
//! process's.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{
    http::{header::HeaderValue, StatusCode},
    web, HttpRequest, HttpResponse,
};
use maud::{html, Markup};
use rust_decimal::Decimal;

use super::{console_nav, operator_context};
use crate::http::pages::{
    i18n::{query_value, Lang},
    layout::{self, PageError},
};
use crate::{dependencies, state::AppState};

/// How often the page reloads itself, in seconds.
const REFRESH_SECS: u32 = 5;
/// The window rates and latencies are measured over.
const WINDOW: Duration = Duration::from_secs(60);
/// How long readings are kept.
const KEEP: Duration = Duration::from_secs(600);
/// Where Prometheus and Grafana listen by default (docs/operations.md), on the console's host.
const PROMETHEUS_PORT: u16 = 9090;
const GRAFANA_PORT: u16 = 3000;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(web::resource("/operator/status").route(web::get().to(show)));
}

/// One reading of this process's counters.
#[derive(Debug, Clone)]
struct Reading {
    at: Instant,
    /// Orders finished paid and cancelled since the process started.
    paid: f64,
    cancelled: f64,
    /// The checkout latency histogram: cumulative count per bucket's upper bound, in seconds.
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
    /// Open WebSockets by kind (`shopper`, `seller`).
    sockets: BTreeMap<String, f64>,
}

/// The readings this process's status pages took, oldest first.
static READINGS: Mutex<VecDeque<Reading>> = Mutex::new(VecDeque::new());

/// One series of the Prometheus text exposition: its name, labels and value.
#[derive(Debug, PartialEq)]
struct Series<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Series<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn number(raw: &str) -> Option<f64> {
    match raw {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// `k="v",k2="v2"`, with `\"`, `\\` and `\n` escapes in values.
fn labels(raw: &str) -> Vec<(&str, String)> {
    let mut labels = Vec::new();
    let mut rest = raw;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => {}
                },
                '"' => {
                    end = index + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key.trim().trim_start_matches(','), value));
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

/// The series of a Prometheus text exposition (comments and unreadable lines skipped).
fn parse(text: &str) -> Vec<Series<'_>> {
    let mut series = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match (line.find('{'), line.rfind('}')) {
            (Some(open), Some(close)) if open < close => (
                &line[..open],
                labels(&line[open + 1..close]),
                &line[close + 1..],
            ),
            _ => match line.split_once(char::is_whitespace) {
                Some((name, rest)) => (name, Vec::new(), rest),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next().and_then(number) else {
            continue;
        };
        series.push(Series {
            name,
            labels,
            value,
        });
    }
    series
}

/// What the status page reads of the exposition.
fn reading(text: &str, at: Instant) -> Reading {
    let mut reading = Reading {
        at,
        paid: 0.0,
        cancelled: 0.0,
        buckets: Vec::new(),
        count: 0.0,
        sum: 0.0,
        sockets: BTreeMap::new(),
    };
    for series in parse(text) {
        match series.name {
            "agora_ws_connections" => {
                let kind = series.label("socket").unwrap_or("other").to_owned();
                *reading.sockets.entry(kind).or_default() += series.value;
            }
            "agora_orders_total" => match series.label("status") {
                Some("paid") => reading.paid += series.value,
                Some("cancelled") => reading.cancelled += series.value,
                _ => {}
            },
            "agora_checkout_duration_seconds_bucket" => {
                if let Some(bound) = series.label("le").and_then(number) {
                    reading.buckets.push((bound, series.value));
                }
            }
            "agora_checkout_duration_seconds_count" => reading.count += series.value,
            "agora_checkout_duration_seconds_sum" => reading.sum += series.value,
            _ => {}
        }
    }
    reading.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    reading
}

/// The `q` quantile of a cumulative histogram, interpolated within its bucket as Prometheus's
/// `histogram_quantile` does; `None` without observations.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let within = count - lower.1;
            let share = if within > 0.0 {
                (rank - lower.1) / within
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * share);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

/// What the page shows: figures over a window of readings.
struct Figures {
    sockets: BTreeMap<String, f64>,
    /// Seconds between the two readings compared; `None` on the first reading.
    window: Option<f64>,
    paid_per_minute: Option<f64>,
    cancelled_per_minute: Option<f64>,
    /// Checkout latency over the window, seconds: p50 and p99 (`None` without checkouts).
    p50: Option<f64>,
    p99: Option<f64>,
    checkouts: f64,
    /// Since the process started.
    paid_total: f64,
    mean_total: Option<f64>,
}

fn figures(now: Reading, readings: &Mutex<VecDeque<Reading>>) -> Figures {
    let base = match readings.lock() {
        Ok(mut kept) => {
            while kept
                .front()
                .is_some_and(|r| now.at.duration_since(r.at) > KEEP)
            {
                kept.pop_front();
            }
            let base = kept
                .iter()
                .rev()
                .find(|r| now.at.duration_since(r.at) >= WINDOW)
                .or_else(|| kept.front())
                .cloned();
            kept.push_back(now.clone());
            base
        }
        Err(_) => None,
    };
    let window = base
        .as_ref()
        .map(|base| now.at.duration_since(base.at).as_secs_f64())
        .filter(|seconds| *seconds >= 1.0);
    let per_minute =
        |later: f64, earlier: f64| window.map(|w| (later - earlier).max(0.0) * 60.0 / w);
    let (paid_per_minute, cancelled_per_minute, delta) = match (&base, window) {
        (Some(base), Some(_)) => {
            let delta: Vec<(f64, f64)> = now
                .buckets
                .iter()
                .map(|&(bound, count)| {
                    let before = base
                        .buckets
                        .iter()
                        .find(|(b, _)| *b == bound)
                        .map_or(0.0, |(_, c)| *c);
                    (bound, (count - before).max(0.0))
                })
                .collect();
            (
                per_minute(now.paid, base.paid),
                per_minute(now.cancelled, base.cancelled),
                delta,
            )
        }
        _ => (None, None, Vec::new()),
    };
    Figures {
        window,
        paid_per_minute,
        cancelled_per_minute,
        p50: quantile(0.5, &delta),
        p99: quantile(0.99, &delta),
        checkouts: delta.last().map_or(0.0, |(_, count)| *count),
        paid_total: now.paid,
        mean_total: (now.count > 0.0).then(|| now.sum / now.count),
        sockets: now.sockets,
    }
}

/// A figure with `decimals` decimals, as the page's language writes numbers.
fn figure(lang: Lang, value: f64, decimals: u32) -> String {
    Decimal::from_f64_retain(value)
        .map(|d| lang.decimal(d.round_dp(decimals)))
        .unwrap_or_else(|| "—".to_owned())
}

fn millis(lang: Lang, seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) => format!("{} ms", figure(lang, seconds * 1000.0, 1)),
        None => "—".to_owned(),
    }
}

/// `http://<the console's host>:<port>/`.
fn on_this_host(request: &HttpRequest, port: u16) -> String {
    let info = request.connection_info();
    let host = info.host();
    let name = match host.strip_prefix('[') {
        Some(v6) => format!("[{}]", v6.split(']').next().unwrap_or_default()),
        None => host.split(':').next().unwrap_or(host).to_owned(),
    };
    format!("http://{name}:{port}/")
}

/// `GET /operator/status`.
pub async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let context = match operator_context(&request, &state).await {
        Ok(context) => context,
        Err(sign_in) => return Ok(*sign_in),
    };
    let timeout = Duration::from_millis(state.settings.health.check_timeout_ms);
    let checks = dependencies::check(&state.pool, &state.hot, timeout).await;
    let exposition = crate::observability::render(&state.metrics, &state.pool);
    let figures = figures(reading(&exposition, Instant::now()), &READINGS);
    let paused = query_value(&request, "refresh").as_deref() == Some("off");
    let links = (
        on_this_host(&request, PROMETHEUS_PORT),
        on_this_host(&request, GRAFANA_PORT),
    );
    let lang = context.lang;
    let title = lang.tr("Status", "Status", "État", "稼働状況");
    let body = html! {
        h1 { (title) }
        (console_nav(&context, "/operator/status"))
        p.hint {
            @if paused {
                (lang.tr("Automatic refresh is paused.", "Automatische Aktualisierung pausiert.", "Actualisation automatique en pause.", "自動更新を停止中です。")) " "
                a href="/operator/status" { (lang.tr("Resume", "Fortsetzen", "Reprendre", "再開")) }
            } @else {
                (lang.tr("This page refreshes every {s} s.", "Diese Seite aktualisiert sich alle {s} s.", "Cette page s’actualise toutes les {s} s.", "このページは{s}秒ごとに更新されます。").replace("{s}", &REFRESH_SECS.to_string())) " "
                a href="/operator/status?refresh=off" { (lang.tr("Pause", "Pausieren", "Mettre en pause", "停止")) }
            }
        }
        (checks_section(lang, checks))
        (figures_section(lang, &figures))
        section aria-labelledby="more-heading" {
            h2 #more-heading { (lang.tr("All processes", "Alle Prozesse", "Tous les processus", "全プロセス")) }
            p { (lang.tr("These figures are this process's own. Every process's are in", "Diese Zahlen sind die dieses Prozesses. Die aller Prozesse zeigen", "Ces chiffres sont ceux de ce processus. Ceux de tous les processus sont dans", "この数値はこのプロセスのものです。全プロセスの数値は")) " "
                a #prometheus-link href=(links.0) { "Prometheus" } " (" (lang.tr("port", "Port", "port", "ポート")) " " (PROMETHEUS_PORT) ") "
                (lang.tr("and", "und", "et", "と")) " "
                a #grafana-link href=(links.1) { "Grafana" } " (" (lang.tr("port", "Port", "port", "ポート")) " " (GRAFANA_PORT) ")"
                (lang.tr(", as docs/operations.md sets them up.", ", eingerichtet wie in docs/operations.md.", ", installés comme le décrit docs/operations.md.", "にあります(docs/operations.md を参照)。")) }
        }
    };
    let page = layout::page(&context, title, body);
    let mut response = context.render(StatusCode::OK, page);
    if !paused {
        response.headers_mut().insert(
            actix_web::http::header::REFRESH,
            HeaderValue::from(REFRESH_SECS),
        );
    }
    Ok(response)
}

fn checks_section(lang: Lang, checks: dependencies::DependencyStatus) -> Markup {
    let state = |up: bool| {
        if up {
            ("ok", lang.tr("answers", "antwortet", "répond", "応答あり"))
        } else {
            (
                "error",
                lang.tr(
                    "does not answer",
                    "antwortet nicht",
                    "ne répond pas",
                    "応答なし",
                ),
            )
        }
    };
    html! {
        section aria-labelledby="checks-heading" {
            h2 #checks-heading { (lang.tr("Dependencies", "Abhängigkeiten", "Dépendances", "依存サービス")) }
            p #readiness class=(if checks.all_up() { "ok" } else { "error" }) {
                @if checks.all_up() {
                    (lang.tr("Ready: this process serves requests.", "Bereit: dieser Prozess bedient Anfragen.", "Prêt : ce processus répond aux requêtes.", "準備完了: このプロセスはリクエストを処理できます。"))
                } @else {
                    (lang.tr("Not ready: requests that need the missing service fail.", "Nicht bereit: Anfragen, die den fehlenden Dienst brauchen, scheitern.", "Pas prêt : les requêtes qui ont besoin du service manquant échouent.", "準備未完了: 停止中のサービスを使うリクエストは失敗します。"))
                }
            }
            dl.totals {
                @for (id, name, up) in [("check-postgres", "Postgres", checks.postgres), ("check-redis", "Redis", checks.redis)] {
                    @let (class, words) = state(up);
                    dt { (name) }
                    dd id=(id) class=(class) data-up=(up) { (words) }
                }
            }
        }
    }
}

fn figures_section(lang: Lang, figures: &Figures) -> Markup {
    let sockets: f64 = figures.sockets.values().sum();
    let per_minute =
        |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |v| figure(lang, v, 1));
    html! {
        section aria-labelledby="figures-heading" {
            h2 #figures-heading { (lang.tr("This process", "Dieser Prozess", "Ce processus", "このプロセス")) }
            @match figures.window {
                Some(window) => p.hint { (lang.tr("Rates and latencies over the last {s} s.", "Raten und Latenzen der letzten {s} s.", "Débits et latences sur les dernières {s} s.", "直近{s}秒間の値です。").replace("{s}", &figure(lang, window, 0))) },
                None => p.hint { (lang.tr("Measuring: rates appear at the next refresh.", "Messung läuft: Raten erscheinen bei der nächsten Aktualisierung.", "Mesure en cours : les débits apparaissent à la prochaine actualisation.", "計測中: 次の更新で表示されます。")) },
            }
            dl.totals {
                dt { (lang.tr("Open sockets", "Offene Sockets", "Sockets ouverts", "接続中のソケット")) }
                dd #open-sockets data-value=(sockets) {
                    (figure(lang, sockets, 0))
                    @if !figures.sockets.is_empty() {
                        " (" @for (i, (kind, count)) in figures.sockets.iter().enumerate() {
                            @if i > 0 { ", " } (socket_kind(lang, kind)) " " (figure(lang, *count, 0))
                        } ")"
                    }
                }
                dt { (lang.tr("Paid orders per minute", "Bezahlte Bestellungen pro Minute", "Commandes payées par minute", "毎分の支払い済み注文")) }
                dd #orders-per-minute { (per_minute(figures.paid_per_minute)) }
                dt { (lang.tr("Cancelled orders per minute", "Stornierte Bestellungen pro Minute", "Commandes annulées par minute", "毎分のキャンセル注文")) }
                dd #cancelled-per-minute { (per_minute(figures.cancelled_per_minute)) }
                dt { (lang.tr("Checkout latency, median", "Checkout-Latenz, Median", "Latence du paiement, médiane", "決済レイテンシ(中央値)")) }
                dd #checkout-p50 { (millis(lang, figures.p50)) }
                dt { (lang.tr("Checkout latency, 99th percentile", "Checkout-Latenz, 99. Perzentil", "Latence du paiement, 99e centile", "決済レイテンシ(99パーセンタイル)")) }
                dd #checkout-p99 { (millis(lang, figures.p99)) }
                dt { (lang.tr("Checkouts in the window", "Checkouts im Zeitraum", "Paiements sur la période", "期間中の決済数")) }
                dd #checkouts { (figure(lang, figures.checkouts, 0)) }
                dt { (lang.tr("Paid orders since the process started", "Bezahlte Bestellungen seit Prozessstart", "Commandes payées depuis le démarrage", "起動後の支払い済み注文")) }
                dd #paid-total { (figure(lang, figures.paid_total, 0)) }
                dt { (lang.tr("Mean checkout latency since the process started", "Mittlere Checkout-Latenz seit Prozessstart", "Latence moyenne du paiement depuis le démarrage", "起動後の平均決済レイテンシ")) }
                dd #checkout-mean { (millis(lang, figures.mean_total)) }
            }
        }
    }
}

fn socket_kind(lang: Lang, kind: &str) -> &'static str {
    match kind {
        "shopper" => lang.tr("shoppers", "Kunden", "clients", "買い物客"),
        "seller" => lang.tr("sellers", "Verkäufer", "vendeurs", "出品者"),
        _ => lang.tr("other", "andere", "autres", "その他"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# TYPE agora_ws_connections gauge
agora_ws_connections{socket="shopper"} 3
agora_ws_connections{socket="seller"} 1
# TYPE agora_orders_total counter
agora_orders_total{status="paid"} 10
agora_orders_total{status="cancelled"} 2
agora_checkout_duration_seconds_bucket{le="0.01"} 4
agora_checkout_duration_seconds_bucket{le="0.05"} 10
agora_checkout_duration_seconds_bucket{le="+Inf"} 10
agora_checkout_duration_seconds_sum 0.2
agora_checkout_duration_seconds_count 10
agora_other{path="/a \"b\"",x="y"} 7
"#;

    #[test]
    fn the_exposition_is_read_with_labels_and_escapes() {
        let series = parse(EXPOSITION);
        let other = series
            .iter()
            .find(|s| s.name == "agora_other")
            .expect("agora_other");
        assert_eq!(other.label("path"), Some("/a \"b\""));
        assert_eq!(other.label("x"), Some("y"));
        let read = reading(EXPOSITION, Instant::now());
        assert_eq!(read.sockets.values().sum::<f64>(), 4.0);
        assert_eq!((read.paid, read.cancelled), (10.0, 2.0));
        assert_eq!(read.buckets.last(), Some(&(f64::INFINITY, 10.0)));
        assert_eq!(read.count, 10.0);
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = [(0.01, 4.0), (0.05, 10.0), (f64::INFINITY, 10.0)];
        let median = quantile(0.5, &buckets).expect("median");
        assert!((median - 0.0166).abs() < 0.001, "{median}");
        assert_eq!(quantile(0.5, &[(0.01, 0.0)]), None);
    }

    #[test]
    fn rates_are_per_minute_between_two_readings() {
        let readings = Mutex::new(VecDeque::new());
        let start = Instant::now();
        let first = reading(EXPOSITION, start);
        assert_eq!(figures(first.clone(), &readings).window, None);
        let later = Reading {
            at: start + Duration::from_secs(30),
            paid: 25.0,
            ..first
        };
        let shown = figures(later, &readings);
        assert_eq!(shown.paid_per_minute, Some(30.0));
        assert_eq!(shown.checkouts, 0.0);
    }
}
