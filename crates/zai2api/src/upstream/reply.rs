//! Upstream's reply as semantic events: the SSE parser then the transcript (with the profile's
//! phase table), driven by the one stage adapter, plus the clock that times reasoning blocks. The
//! chat service and the doctor read replies through this same pipeline.
//!
//! Invariants:
//! - Lazy: a chunk is read only when the consumer wants the next event, and reading stops
//!   (dropping the body closes the upstream connection) as soon as the transcript has seen the
//!   done event or an error.
//! - Every reply ends with exactly one `Done` or `Error`; an error after the first byte is also
//!   reported to the request log's failure slot ([`crate::stats::note_stream_failure`]).

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
/// renderer wants the next event, and reading stops (dropping `bytes` closes the upstream body) as
/// soon as the transcript has seen the done event or an error.
///
/// A reasoning block whose end carries no duration (the phase format has none) gets the time it
/// took to stream, in whole seconds: this is the one clock the pipeline reads.
pub fn semantic_stream(bytes: ByteStream, stream: StreamProfile) -> SemanticStream {
    let events = stage::drive(
        bytes,
        SseParser::default().then(Transcript::with_stream_profile(stream)),
    );
    // The clock is its own stage over the events, so it reads the time when the renderer takes an
    // event, not when its chunk arrived.
    let events = stage::drive(events, ReasoningClock::default());
    // An error after the first byte cannot become an HTTP error any more; the request log still
    // counts it by kind (a no-op when this stream is read before the response exists).
    Box::pin(events.inspect(|event| {
        if let Semantic::Error(e) = event {
            crate::stats::note_stream_failure(e.kind);
        }
    }))
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
}
