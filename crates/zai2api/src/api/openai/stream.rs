//! OpenAI stream renderer. OWNER: lead. Stub until filled.
