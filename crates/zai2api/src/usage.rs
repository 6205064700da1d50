//! Token counting with tiktoken (cl100k). OWNER: api helper. Stub until filled.
