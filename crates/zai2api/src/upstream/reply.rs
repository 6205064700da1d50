//! Upstream's reply as semantic events: the SSE parser then the transcript (with the profile's
//! phase table), driven by the one stage adapter, plus the clock that times reasoning blocks. The
//! chat service and the doctor read replies through this same pipeline.
//!
//! Invariants:
//! - Lazy: a chunk is read only when the consumer wants the next event, and the consumer's reading
//!   stops as soon as the transcript has seen the done event or an error.
//! - A reply that ended that way has the rest of its body (upstream sends bookkeeping after `done`)
//!   read off in the background, at most [`DRAIN_LIMIT`] bytes within [`DRAIN_DEADLINE`], so its
//!   keep-alive connection goes back to the pool; past either bound the connection is dropped. A
//!   reply abandoned before its end (the client went away) drops its body at once, which closes
//!   the connection and stops upstream generating.
//! - Every reply ends with exactly one `Done` or `Error`; an error after the first byte is also
//!   reported to the request log's failure slot ([`crate::stats::note_stream_failure`]), and
//!   upstream's usage to its usage slot ([`crate::stats::note_usage`]).

use std::time::Duration;

use futures_util::StreamExt;

use super::phase::StreamProfile;
use super::sse::SseParser;
use super::transcript::Transcript;
use super::transport::ByteStream;
use crate::semantic::{Semantic, SemanticStream};
use crate::stage::{self, Stage};

/// Turns upstream bytes into semantic events, lazily; `stream` is the profile's phase table.
///
/// SSE parser then transcript, driven by the one stage adapter: a chunk is read only when the
/// renderer wants the next event, and the events end as soon as the transcript has seen the done
/// event or an error; what is left of `bytes` is then read off in the background (bounded), so the
/// connection is kept.
///
/// A reasoning block whose end carries no duration (the phase format has none) gets the time it
/// took to stream, in whole seconds: this is the one clock the pipeline reads.
pub fn semantic_stream(bytes: ByteStream, stream: StreamProfile) -> SemanticStream {
    let events = stage::drive_with_rest(
        bytes,
        SseParser::default().then(Transcript::with_stream_profile(stream)),
        drain_in_background,
    );
    // The clock is its own stage over the events, so it reads the time when the renderer takes an
    // event, not when its chunk arrived.
    let events = stage::drive(events, ReasoningClock::default());
    // An error after the first byte cannot become an HTTP error any more; the request log still
    // counts it by kind (a no-op when this stream is read before the response exists).
    Box::pin(events.inspect(|event| match event {
        Semantic::Error(e) => crate::stats::note_stream_failure(e.kind),
        Semantic::Usage(u) => crate::stats::note_usage(u.prompt_tokens, u.completion_tokens),
        _ => {}
    }))
}

/// Most bytes read off a body after its reply ended; upstream's trailing events are a few hundred.
pub const DRAIN_LIMIT: usize = 64 * 1024;
/// Longest wait for the end of a body after its reply ended.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// Reads what is left of a body whose reply already ended, so the connection can be reused.
fn drain_in_background(rest: ByteStream) {
    // Without a runtime (a test driving the stream by hand) the body is simply dropped.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(drain(rest));
    }
}

/// Reads `rest` to its end within the bounds; whether it got there (the connection is reusable).
async fn drain(mut rest: ByteStream) -> bool {
    let read_to_end = async {
        let mut read = 0usize;
        while let Some(chunk) = rest.next().await {
            match chunk {
                Ok(bytes) => read += bytes.len(),
                Err(_) => return false,
            }
            if read > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    let ended = tokio::time::timeout(DRAIN_DEADLINE, read_to_end)
        .await
        .unwrap_or(false);
    if !ended {
        tracing::debug!("upstream body went on after the reply ended; its connection is dropped");
    }
    ended
}

/// Fills in the duration of a reasoning block that ended without one.
#[derive(Default)]
struct ReasoningClock {
    thinking_since: Option<tokio::time::Instant>,
}

impl Stage for ReasoningClock {
    type In = Semantic;
    type Out = Semantic;

    fn push(&mut self, mut event: Semantic, out: &mut Vec<Semantic>) {
        match &mut event {
            Semantic::ThinkingStart => self.thinking_since = Some(tokio::time::Instant::now()),
            Semantic::ThinkingEnd { duration_secs } => {
                if let Some(since) = self.thinking_since.take() {
                    duration_secs.get_or_insert(since.elapsed().as_secs());
                }
            }
            _ => {}
        }
        out.push(event);
    }

    fn finish(&mut self, _: &mut Vec<Semantic>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{UpstreamError, UpstreamErrorKind};

    #[tokio::test]
    async fn semantic_stream_reports_a_broken_body_once() {
        let chunks: Vec<Result<bytes::Bytes, UpstreamError>> = vec![
            Ok(bytes::Bytes::from_static(
                b"data: {\"type\":\"chat:completion\",\"data\":{\"delta_content\":\"Hi\",\"phase\":\"answer\"}}\n\n",
            )),
            Err(UpstreamError::new(UpstreamErrorKind::Connection, "reset")),
        ];
        let events: Vec<Semantic> = semantic_stream(
            Box::pin(futures_util::stream::iter(chunks)),
            StreamProfile::default(),
        )
        .collect()
        .await;
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], Semantic::Answer("Hi".into()));
        assert!(
            matches!(&events[1], Semantic::Error(e) if e.kind == UpstreamErrorKind::Connection)
        );
    }

    #[tokio::test]
    async fn semantic_stream_stops_at_done() {
        let body = "data: {\"type\":\"chat:completion\",\"data\":{\"delta_content\":\"A\",\"phase\":\"answer\"}}\n\n\
                    data: {\"type\":\"chat:completion\",\"data\":{\"done\":true,\"phase\":\"done\"}}\n\n\
                    data: {\"type\":\"chat:completion\",\"data\":{\"delta_content\":\"late\",\"phase\":\"answer\"}}\n\n";
        let chunks: Vec<Result<bytes::Bytes, UpstreamError>> = vec![Ok(bytes::Bytes::from(body))];
        let events: Vec<Semantic> = semantic_stream(
            Box::pin(futures_util::stream::iter(chunks)),
            StreamProfile::default(),
        )
        .collect()
        .await;
        assert_eq!(events, vec![Semantic::Answer("A".into()), Semantic::Done]);
    }

    fn body(chunks: Vec<Result<bytes::Bytes, UpstreamError>>) -> ByteStream {
        Box::pin(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn drain_reads_a_short_rest_to_its_end() {
        let rest = body(vec![Ok(bytes::Bytes::from_static(b"data: {}\n\n")); 3]);
        assert!(drain(rest).await);
    }

    #[tokio::test]
    async fn drain_gives_up_past_its_byte_limit_or_on_an_error() {
        let big = bytes::Bytes::from(vec![b'x'; DRAIN_LIMIT / 2 + 1]);
        assert!(!drain(body(vec![Ok(big.clone()), Ok(big)])).await);
        let broken = vec![Err(UpstreamError::new(
            UpstreamErrorKind::Connection,
            "reset",
        ))];
        assert!(!drain(body(broken)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_on_a_body_that_never_ends() {
        let endless: ByteStream = Box::pin(futures_util::stream::pending());
        assert!(!drain(endless).await);
    }
}
