//! Cost of recognising a continued conversation (history strategy `continue`) as conversations
//! grow: one pass of running digests over the request plus one lookup, for 10, 100 and 1,000
//! messages. Read as ratios within one run: time per message should stay flat (the work is
//! linear in what the client sends, like parsing it, and never rescans stored histories).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use zai2api::chat::conversation::{Conversation, MemoryIndex, digest_request, extend};
use zai2api::chat::{ChatMessage, ContentPart, Role};

fn conversation(turns: usize) -> Vec<ChatMessage> {
    let mut out = vec![ChatMessage::new(
        Role::System,
        vec![ContentPart::Text("You are a helpful assistant.".into())],
    )];
    for i in 0..turns {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        let text =
            format!("message {i}: a sentence of ordinary length that a chat turn might have.");
        out.push(ChatMessage::new(role, vec![ContentPart::Text(text)]));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("conversation_match");
    for n in [10usize, 100, 1000] {
        // n messages ending with a user turn after the gateway's last reply.
        let messages = conversation(n + usize::from(n % 2 == 0));
        let index = MemoryIndex::new(10_000, Duration::from_secs(3600));
        // The index knows the state up to the last assistant message, and 5,000 others.
        let known = digest_request("key", &messages);
        let (prefix, _) = known.prefix.unwrap_or(([0; 32], 0));
        let entry = Conversation {
            chat_id: "chat".into(),
            parent_message_id: "m".into(),
            model: "glm-5.3".into(),
            token: None,
            user_id: "u".into(),
            system_digest: known.system,
        };
        index.record(prefix, entry.clone());
        for i in 0..5000u32 {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_le_bytes());
            index.record(extend(&d, Role::Assistant, "x", &[]), entry.clone());
        }
        group.throughput(Throughput::Elements(messages.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &messages, |b, m| {
            b.iter(|| {
                let d = digest_request("key", std::hint::black_box(m));
                d.prefix.and_then(|(p, _)| index.find(&p))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
