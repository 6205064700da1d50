//! The four THINK_TAGS_MODE renderings. OWNER: lead. Stub until filled.
