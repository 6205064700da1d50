//! token_pool.json persistence. OWNER: lead. Stub.
