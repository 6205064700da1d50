//! `profile`: the upstream profile file parser ([`UpstreamProfile::from_toml_str`]) on any text.
//!
//! Invariants asserted:
//! - No panic on any UTF-8 text (the input, decoded lossily).
//! - A rejected file gets one line of explanation: not empty, no newline, and bounded: at most 2×
//!   the input (what it quotes) + 4 KiB (the list of keys an unknown one could have been).
//! - An accepted profile validates, and survives a serde round trip (written to a JSON value and
//!   read back it is the same profile, which validates again): nothing the parser accepts is a
//!   state the profile's own types cannot represent.
//! - The derived views do not panic and keep their promises: the effective query never holds a
//!   `remove` entry, nor a `token` one when `token_in_query` is off; every effective header
//!   comes from the profile's lists.

use zai2api::upstream::profile::{QueryValue, UpstreamProfile};

use super::Tally;

pub fn check(data: &[u8]) -> Tally {
    let mut tally = Tally::default();
    let text = String::from_utf8_lossy(data);
    match UpstreamProfile::from_toml_str(&text) {
        Err(e) => {
            assert!(!e.is_empty(), "an empty error");
            assert!(!e.contains('\n'), "a multi-line error: {e:?}");
            assert!(
                e.len() <= 2 * text.len() + 4096,
                "an error of {} bytes",
                e.len()
            );
            tally.ran("error is one line");
        }
        Ok(profile) => {
            accepted(&profile);
            tally.ran("accepted profile holds");
        }
    }
    tally
}

fn accepted(profile: &UpstreamProfile) {
    if let Err(e) = profile.validate() {
        panic!("an accepted profile does not validate: {e}");
    }
    let value = serde_json::to_value(profile).expect("a profile serialises");
    let back: UpstreamProfile = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("the serialised profile does not read back: {e}\n{value:#}"));
    assert_eq!(&back, profile, "the round trip changed the profile");
    if let Err(e) = back.validate() {
        panic!("the round-tripped profile does not validate: {e}");
    }
    let query = profile.effective_query();
    assert!(query.iter().all(|q| q.value != QueryValue::Remove));
    if !profile.token_in_query {
        assert!(query.iter().all(|q| q.value != QueryValue::Token));
    }
    let declared = || {
        profile
            .headers
            .iter()
            .chain(&profile.extra_headers)
            .chain(&profile.completion_headers)
    };
    for h in profile.completion_call_headers() {
        assert!(
            declared().any(|d| std::ptr::eq(d, h)),
            "header {} from nowhere",
            h.name
        );
    }
    let _ = profile.uses_device_id();
}
