//! Upstream connections are kept: a reply that ended normally has the rest of its body (the
//! bookkeeping event real streams send after `done`) read off, so the keep-alive connection goes
//! back to the pool instead of being reset; a reply the client abandons closes its connection, so
//! upstream stops generating. Counted at the fake's listener (`FakeZai::stats`).

#![expect(
    clippy::unwrap_used,
    reason = "tests fail loudly on what must be there"
)]

use std::time::Duration;

use crate::common::{Gateway, user_with_model};
use fake_zai::{FakeConfig, FakeZai, Scenario};
use futures_util::StreamExt;
use serde_json::json;

/// A gateway with one account in front of a 2026-09 fake, which sends a trailing event after
/// `done` (as the real captures have) unless `trailing` is false.
async fn gateway(trailing: bool) -> Gateway {
    let mut config = FakeConfig::era("2026-09").unwrap();
    config.trailing_event_after_done = trailing;
    let fake = FakeZai::start(config).await.unwrap();
    fake.add_user("tok-user", "user");
    Gateway::start_with(fake, &[("TOKEN", "tok-user")]).await
}

/// Sends `n` requests one after the other, half of them streamed; every one must succeed.
async fn sequential(gw: &Gateway, n: usize) {
    for i in 0..n {
        let mut body = user_with_model("GLM-5.3-Flash", "hi");
        body["stream"] = json!(i % 2 == 1);
        let response = gw.post("/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.contains("Hello"), "an answer came back: {text}");
    }
}

#[tokio::test]
async fn replies_that_end_normally_leave_their_connection_in_the_pool() {
    for trailing in [true, false] {
        let gw = gateway(trailing).await;
        // The first request opens the connections the pool keeps (chats/new, the completion).
        sequential(&gw, 2).await;
        gw.fake.reset_stats();
        sequential(&gw, 40).await;
        let stats = gw.fake.stats();
        // Two upstream calls per request (chats/new and the completion).
        assert_eq!(stats.completions, 40);
        assert!(
            stats.connections_accepted <= 1,
            "trailing event {trailing}: {} new upstream connections for 40 requests",
            stats.connections_accepted
        );
    }
}

#[tokio::test]
async fn an_abandoned_stream_closes_its_upstream_connection() {
    let gw = gateway(true).await;
    gw.fake.update(|c| {
        c.default_scenario = Some(Scenario::parse("chunks:1000:16").unwrap());
        c.event_delay = Duration::from_millis(20);
    });
    sequential_warmup(&gw).await;
    let open_before = gw.fake.stats().connections_open;
    let mut body = user_with_model("GLM-5.3-Flash", "hi");
    body["stream"] = json!(true);
    let response = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let mut bytes = response.bytes_stream();
    // Some of the answer arrived: the stream is under way.
    let first = bytes.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(bytes);
    // The gateway drops the upstream body; the fake sees its connection close.
    let mut open = u64::MAX;
    for _ in 0..100 {
        open = gw.fake.stats().connections_open;
        if open < open_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        open < open_before,
        "the streaming connection stayed open ({open} open, {open_before} before)"
    );
}

/// One short request so the pool holds connections, with the fake's scenario left as it is.
async fn sequential_warmup(gw: &Gateway) {
    let response = gw
        .post(
            "/v1/chat/completions",
            &user_with_model("GLM-5.3-Flash", "hi [[fake:echo]]"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
}
