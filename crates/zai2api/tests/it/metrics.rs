//! `/metrics`: after a known mix of requests (ok, client errors, upstream errors from fake-zai
//! scenarios, streams), the scrape parses with a Prometheus text-format parser
//! (`prometheus-parse`) and its counters equal what was sent; labels stay bounded (no raw path,
//! no client-chosen model name); gauges follow the pool, the leases, the conversation index and
//! captcha demands; access follows AUTH_TOKEN unless METRICS_PUBLIC=true.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail loudly on what must be there"
)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fake_zai::FakeConfig;
use http_body_util::BodyExt as _;
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::json;
use tower::ServiceExt as _;

use crate::common::{self, Gateway, user, user_with_model};

/// `GET /metrics` on `gw`, checked to be Prometheus' text format, parsed.
async fn scrape(gw: &Gateway) -> (String, Scrape) {
    let response = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    (text.clone(), parse(&text))
}

/// Parses the exposition and checks that no sample line was skipped.
fn parse(text: &str) -> Scrape {
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let parsed_lines: usize = parsed
        .samples
        .iter()
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets.len(),
            _ => 1,
        })
        .sum();
    assert_eq!(
        parsed_lines, sample_lines,
        "every sample line parses:\n{text}"
    );
    parsed
}

/// The samples of `name` whose labels include `labels`.
fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The value of the one sample of `name` with `labels` (0 when there is none).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match samples(scrape, name, labels).as_slice() {
        [] => 0.0,
        [one] => match one.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
            ref other => panic!("{name} is not a number: {other:?}"),
        },
        many => panic!("{name} {labels:?} matches {} samples", many.len()),
    }
}

/// Sum of `zai2api_requests_total` over the samples with `labels`.
fn requests(scrape: &Scrape, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, "zai2api_requests_total", labels)
        .iter()
        .map(|s| match s.value {
            Metric::Counter(v) => v,
            ref other => panic!("not a counter: {other:?}"),
        })
        .sum()
}

/// The cumulative count of histogram `name` at bucket bound `le`.
fn bucket(scrape: &Scrape, name: &str, le: f64) -> f64 {
    let found = samples(scrape, name, &[]);
    let [histogram] = found.as_slice() else {
        panic!("one {name} histogram");
    };
    let Metric::Histogram(buckets) = &histogram.value else {
        panic!("{name} is a histogram");
    };
    buckets
        .iter()
        .find(|b| (b.less_than - le).abs() < 1e-9)
        .unwrap_or_else(|| panic!("{name} has a bucket at {le}: {buckets:?}"))
        .count
}

const CHAT: &str = "/v1/chat/completions";

#[tokio::test]
async fn counters_match_the_requests_sent() {
    let gw = Gateway::start(FakeConfig::default(), &[]).await;
    let (_, before) = scrape(&gw).await;
    assert_eq!(requests(&before, &[]), 0.0, "nothing counted yet");

    // 3 model lists.
    for _ in 0..3 {
        let r = gw
            .http
            .get(format!("{}/v1/models", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // 2 chats named by an alias in other letter case, 1 with the default model.
    let (status, body) = gw
        .chat(&user_with_model("glm-4.6", "hi [[fake:plain]]"))
        .await;
    assert_eq!(status, 200, "{body}");
    let aliased = body["model"].as_str().unwrap().to_owned();
    assert_ne!(
        aliased, "glm-4.6",
        "the catalogue name, not the client's spelling"
    );
    let (status, _) = gw
        .chat(&user_with_model("glm-4.6", "again [[fake:plain]]"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = gw.chat(&user("hi [[fake:plain]]")).await;
    assert_eq!(status, 200);
    let default_model = body["model"].as_str().unwrap().to_owned();
    // 1 slow stream (more than a second to its last byte).
    let started = std::time::Instant::now();
    let (status, payloads) = gw.chat_stream(&user("[[fake:slow:150]]")).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the stream is slow enough"
    );
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    // 2 malformed bodies, 1 unknown model with a client-chosen name, 1 unknown route.
    for _ in 0..2 {
        let r = gw
            .http
            .post(format!("{}{CHAT}", gw.url))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    let (status, _) = gw
        .chat(&user_with_model("client-made-up-model-7", "hi"))
        .await;
    assert_eq!(status, 404);
    let r = gw
        .http
        .get(format!("{}/v1/no/such/route-9", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // An upstream error before the first byte, and one in the middle of a stream.
    let (status, _) = gw.chat(&user("x [[fake:firewall]]")).await;
    assert_eq!(status, 502);
    let (status, payloads) = gw.chat_stream(&user("x [[fake:drop]]")).await;
    assert_eq!(status, 200);
    assert!(
        payloads.iter().any(|p| p.contains("\"error\"")),
        "{payloads:?}"
    );

    let (text, after) = scrape(&gw).await;
    let chat = [("route", CHAT)];
    assert_eq!(
        requests(
            &after,
            &[
                ("route", "/v1/models"),
                ("status", "200"),
                ("model", "unknown")
            ]
        ),
        3.0
    );
    assert_eq!(
        requests(
            &after,
            &[("route", CHAT), ("status", "200"), ("model", &aliased)]
        ),
        2.0
    );
    let default_ok = if default_model == aliased { 5.0 } else { 3.0 };
    assert_eq!(
        requests(
            &after,
            &[
                ("route", CHAT),
                ("status", "200"),
                ("model", &default_model)
            ]
        ),
        default_ok,
        "the default-model chat, the slow stream and the dropped stream"
    );
    assert_eq!(
        requests(
            &after,
            &[("route", CHAT), ("status", "400"), ("model", "unknown")]
        ),
        2.0
    );
    assert_eq!(
        requests(
            &after,
            &[("route", CHAT), ("status", "404"), ("model", "unknown")]
        ),
        1.0
    );
    assert_eq!(
        requests(&after, &[("route", "unmatched"), ("status", "404")]),
        1.0
    );
    assert_eq!(requests(&after, &[("route", CHAT), ("status", "502")]), 1.0);
    assert_eq!(requests(&after, &chat), 9.0);
    // The first scrape is counted too (it finished before the second began).
    assert_eq!(requests(&after, &[("route", "/metrics")]), 1.0);
    assert_eq!(requests(&after, &[]), 14.0);
    // Bounded labels: no raw path, no client-chosen model.
    assert!(!text.contains("route-9"), "{text}");
    assert!(!text.contains("client-made-up-model-7"), "{text}");

    // Upstream errors by kind equal what the statistics counted, and what was provoked.
    let firewall = [("kind", "upstream_firewall")];
    assert_eq!(
        value(&after, "zai2api_upstream_errors_total", &firewall),
        1.0
    );
    let stats = gw.get_json("/dashboard/api/stats").await;
    for kind in stats["upstream_errors"].as_array().unwrap() {
        let code = kind["kind"].as_str().unwrap();
        assert_eq!(
            value(&after, "zai2api_upstream_errors_total", &[("kind", code)]),
            kind["count"].as_f64().unwrap(),
            "{code}"
        );
    }
    let total_errors: f64 = samples(&after, "zai2api_upstream_errors_total", &[])
        .iter()
        .map(|s| match s.value {
            Metric::Counter(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total_errors, 2.0, "the firewall and the dropped stream");

    // Every finished request has a duration; the slow stream's covers the whole stream while
    // its first byte came early.
    assert_eq!(
        value(&after, "zai2api_request_duration_seconds_count", &[]),
        14.0
    );
    assert_eq!(
        value(&after, "zai2api_time_to_first_byte_seconds_count", &[]),
        14.0
    );
    assert_eq!(
        bucket(&after, "zai2api_request_duration_seconds", 1.0),
        13.0
    );
    assert_eq!(
        bucket(&after, "zai2api_time_to_first_byte_seconds", 1.0),
        14.0
    );
    assert_eq!(value(&after, "zai2api_streams_in_flight", &[]), 0.0);
    assert_eq!(
        value(
            &after,
            "zai2api_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[tokio::test]
async fn gauges_follow_streams_leases_conversations_and_captchas() {
    let fake = FakeConfig::era("2026-09").unwrap();
    let gw = common::pool_gateway_on(fake, &["tok-a", "tok-b"], &[], &[]).await;
    let (_, idle) = scrape(&gw).await;
    assert_eq!(
        value(&idle, "zai2api_pool_tokens", &[("state", "enabled")]),
        2.0
    );
    assert_eq!(
        value(&idle, "zai2api_pool_tokens", &[("state", "resting")]),
        0.0
    );
    assert_eq!(value(&idle, "zai2api_leases_in_use", &[]), 0.0);
    assert_eq!(value(&idle, "zai2api_conversation_index_entries", &[]), 0.0);

    // A stream held open: one stream in flight, one lease in use.
    let mut open = gw
        .post(CHAT, &json!({"stream": true, "messages": [{"role": "user", "content": "[[fake:slow:200]]"}]}))
        .await;
    assert_eq!(open.status(), 200);
    let first = open.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let (_, busy) = scrape(&gw).await;
    assert_eq!(value(&busy, "zai2api_streams_in_flight", &[]), 1.0);
    assert_eq!(value(&busy, "zai2api_leases_in_use", &[]), 1.0);
    while open.chunk().await.unwrap().is_some() {}
    drop(open);

    // The finished reply is remembered for `continue`; a captcha demand is counted.
    let (status, body) = gw.chat(&user("[[fake:error_captcha]]")).await;
    assert_eq!(status, 502, "{body}");
    // The pool's lease is released once the request log has the body: poll briefly.
    let mut done = scrape(&gw).await.1;
    for _ in 0..50 {
        if value(&done, "zai2api_leases_in_use", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = scrape(&gw).await.1;
    }
    assert_eq!(value(&done, "zai2api_streams_in_flight", &[]), 0.0);
    assert_eq!(value(&done, "zai2api_leases_in_use", &[]), 0.0);
    assert_eq!(value(&done, "zai2api_conversation_index_entries", &[]), 1.0);
    assert_eq!(value(&done, "zai2api_captcha_demands_total", &[]), 1.0);
    assert_eq!(
        value(
            &done,
            "zai2api_upstream_errors_total",
            &[("kind", "upstream_captcha_required")]
        ),
        1.0
    );
}

async fn get(
    state: zai2api::http::AppState,
    path: &str,
    bearer: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = zai2api::app::app(state)
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn metrics_need_the_api_key_unless_public() {
    let locked = common::offline_state("4096", &[("AUTH_TOKEN", "k")]);
    let (status, body) = get(locked.clone(), "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("invalid_api_key"), "{body}");
    let (status, _) = get(locked.clone(), "/metrics", Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(locked.clone(), "/metrics", Some("k")).await;
    assert_eq!(status, StatusCode::OK);
    // The refused scrapes were counted; the rendered text parses.
    let scraped = parse(&body);
    assert_eq!(
        requests(&scraped, &[("route", "/metrics"), ("status", "401")]),
        2.0
    );

    let public = common::offline_state("4096", &[("AUTH_TOKEN", "k"), ("METRICS_PUBLIC", "true")]);
    let (status, body) = get(public.clone(), "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("zai2api_build_info"), "{body}");
    // METRICS_PUBLIC opens /metrics only.
    let (status, _) = get(public, "/v1/models", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Readiness is public like /health.
    let (status, body) = get(locked, "/ready", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("ready"), "{body}");
}

/// The sample Grafana dashboard queries only metrics the gateway exports, and every one of them.
#[test]
fn the_grafana_dashboard_uses_the_exported_names() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/zai2api.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(!exprs.is_empty());
    let exported = zai2api::metrics::names();
    let name = regex_lite::Regex::new(r"zai2api_[a-z_]+").unwrap();
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        for found in name.find_iter(expr) {
            let found = found.as_str();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| found.strip_suffix(suffix))
                .filter(|base| exported.contains(base))
                .unwrap_or(found);
            assert!(
                exported.contains(&base),
                "{found} in {expr:?} is not exported"
            );
            used.insert(base);
        }
    }
    for metric in exported {
        assert!(used.contains(metric), "{metric} is on no panel");
    }
}
