//! Helpers every fake-zai integration test shares.

use std::time::Duration;

/// A client with a timeout, so a wedged stream fails the test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
