//! SSE framing: bytes → `data:` payloads. OWNER: lead. Stub until filled.
