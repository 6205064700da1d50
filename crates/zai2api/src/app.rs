//! Router. OWNER: api helper. Stub until filled.
