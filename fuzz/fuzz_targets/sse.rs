#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zai2api_fuzz::sse::check(data);
});
