#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zai2api_fuzz::tool_args::check(data);
});
