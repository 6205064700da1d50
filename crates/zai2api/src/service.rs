//! The chat service: credential → upstream → transcript → renderer. OWNER: lead. Stub until filled.
