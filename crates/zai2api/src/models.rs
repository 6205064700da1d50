//! Model catalogue. OWNER: api helper. Stub until filled.
