//! OWNER: api helper. Stub until filled.
