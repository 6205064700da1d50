//! Transcript rebuild (edit_index rule) → semantic events. OWNER: lead. Stub until filled.
