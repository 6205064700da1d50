//! The `X-Signature` schemes of chat.z.ai (protocol §11.3), described as data.
//!
//! chat.z.ai changed its signature five times in three weeks of October 2025. Every variant seen so
//! far is the same recipe with different ingredients: a canonical string of some query fields, the
//! prompt (plain or base64), a timestamp tail, and a two-level HMAC-SHA256 whose first level is keyed
//! by a root key over a time bucket. [`SignatureScheme`] holds those ingredients, so a new variant is
//! a configuration change, not a code change. Both the gateway (signing) and fake-zai (verifying) use
//! this crate; the spec's test vectors below pin it to the real algorithm.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How the prompt enters the string to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptEncoding {
    /// The prompt text as is (v1).
    Plain,
    /// Standard base64 with padding of the UTF-8 prompt (v2, v3).
    Base64,
}

/// Which timestamp forms the `|ts` tail and the time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TailTimestamp {
    /// The `signature_timestamp` query value (the browser's reading; protocol §11.3).
    SignatureTimestamp,
    /// The `timestamp` query value (what most proxies send; equal to the above when both are one value).
    Timestamp,
}

/// How the first HMAC level becomes the key of the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyDerivation {
    /// The lowercase hex of the first digest, as ASCII bytes (v1 and later).
    HexDigest,
    /// The raw 32-byte digest (the short-lived v1-pre).
    RawDigest,
}

/// One signature variant. `Default` is v3, in force since 2025-10-23.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignatureScheme {
    /// Root key of the first HMAC level.
    pub root_key: String,
    /// Width of the time bucket in milliseconds (`floor(ts / bucket_ms)` is the first-level message).
    pub bucket_ms: u64,
    /// Names of the query fields in the canonical string; they are sorted by byte order before use.
    pub canonical_fields: Vec<String>,
    pub prompt_encoding: PromptEncoding,
    pub tail_timestamp: TailTimestamp,
    pub key_derivation: KeyDerivation,
    /// Trim surrounding white space from the prompt before signing (one 2026 client does this).
    pub trim_prompt: bool,
}

impl Default for SignatureScheme {
    fn default() -> Self {
        Self::v3()
    }
}

impl SignatureScheme {
    /// v3 (2025-10-23 onwards): root key `key-@@@@…`, base64 prompt, sorted triple.
    pub fn v3() -> Self {
        Self {
            root_key: "key-@@@@)))()((9))-xxxx&&&%%%%%".to_owned(),
            bucket_ms: 300_000,
            canonical_fields: vec!["requestId".into(), "timestamp".into(), "user_id".into()],
            prompt_encoding: PromptEncoding::Base64,
            tail_timestamp: TailTimestamp::SignatureTimestamp,
            key_derivation: KeyDerivation::HexDigest,
            trim_prompt: false,
        }
    }

    /// v2 (2025-10-13 … 10-20): root key `junjie`, base64 prompt.
    pub fn v2() -> Self {
        Self {
            root_key: "junjie".to_owned(),
            ..Self::v3()
        }
    }

    /// v1 (2025-10-07 … 10-13): root key `junjie`, plain prompt.
    pub fn v1() -> Self {
        Self {
            prompt_encoding: PromptEncoding::Plain,
            ..Self::v2()
        }
    }

    /// The dated variant named `name` (`v1`, `v2`, `v3`), for profiles and fake-zai eras.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "v1" => Some(Self::v1()),
            "v2" => Some(Self::v2()),
            "v3" => Some(Self::v3()),
            _ => None,
        }
    }

    /// Checks the scheme can sign at all: a key, a bucket, at least one canonical field.
    pub fn validate(&self) -> Result<(), String> {
        if self.root_key.is_empty() {
            return Err("signature root_key is empty".into());
        }
        if self.bucket_ms == 0 {
            return Err("signature bucket_ms must be positive".into());
        }
        if self.canonical_fields.is_empty() {
            return Err("signature canonical_fields is empty".into());
        }
        Ok(())
    }

    /// The string to sign: `canonical|prompt|tail_ts`.
    ///
    /// `fields` gives the value of each query field by name; a canonical field that `fields` does not
    /// know renders with an empty value (the server would see the same).
    pub fn string_to_sign(
        &self,
        fields: &dyn Fn(&str) -> Option<String>,
        prompt: &str,
        tail_ts: u64,
    ) -> String {
        let mut names: Vec<&str> = self.canonical_fields.iter().map(String::as_str).collect();
        names.sort_unstable();
        let canonical = names
            .iter()
            .map(|name| format!("{name},{}", fields(name).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        let prompt = if self.trim_prompt {
            prompt.trim()
        } else {
            prompt
        };
        let prompt = match self.prompt_encoding {
            PromptEncoding::Plain => prompt.to_owned(),
            PromptEncoding::Base64 => {
                base64::engine::general_purpose::STANDARD.encode(prompt.as_bytes())
            }
        };
        format!("{canonical}|{prompt}|{tail_ts}")
    }

    /// Signs a request. `timestamp` and `signature_timestamp` are the two query values (ms);
    /// [`TailTimestamp`] says which one forms the tail and the bucket.
    pub fn sign(&self, input: &SignInput<'_>) -> String {
        let tail_ts = match self.tail_timestamp {
            TailTimestamp::SignatureTimestamp => input.signature_timestamp,
            TailTimestamp::Timestamp => input.timestamp,
        };
        self.sign_with_tail(input, tail_ts)
    }

    fn sign_with_tail(&self, input: &SignInput<'_>, tail_ts: u64) -> String {
        let timestamp = input.timestamp.to_string();
        let fields = |name: &str| -> Option<String> {
            match name {
                "requestId" => Some(input.request_id.to_owned()),
                "timestamp" => Some(timestamp.clone()),
                "user_id" => Some(input.user_id.to_owned()),
                _ => None,
            }
        };
        let message = self.string_to_sign(&fields, input.prompt, tail_ts);
        let bucket = (tail_ts / self.bucket_ms).to_string();
        let first = hmac(self.root_key.as_bytes(), bucket.as_bytes());
        let second_key = match self.key_derivation {
            KeyDerivation::HexDigest => hex::encode(first).into_bytes(),
            KeyDerivation::RawDigest => first.to_vec(),
        };
        hex::encode(hmac(&second_key, message.as_bytes()))
    }

    /// Verifies a signature the way a tolerant server would (protocol §11.3 recipe): either of the
    /// two timestamps may form the tail and the bucket. This is a test double's check, so a plain
    /// comparison is fine.
    pub fn verify(&self, input: &SignInput<'_>, signature: &str) -> bool {
        let candidates = [input.signature_timestamp, input.timestamp];
        candidates.iter().any(|&tail| {
            self.sign_with_tail(input, tail)
                .eq_ignore_ascii_case(signature)
        })
    }
}

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    pub request_id: &'a str,
    pub timestamp: u64,
    pub signature_timestamp: u64,
    pub user_id: &'a str,
    pub prompt: &'a str,
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; fall back to an empty MAC
    // input rather than panicking to keep the no-panic lint honest.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(rid: &'a str, ts: u64, uid: &'a str, prompt: &'a str) -> SignInput<'a> {
        SignInput {
            request_id: rid,
            timestamp: ts,
            signature_timestamp: ts,
            user_id: uid,
            prompt,
        }
    }

    const V1: (&str, u64, &str, &str) = (
        "8f3a1c2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b",
        1_760_000_000_000,
        "4c5a8968-69cd-4d25-bcff-8acdb867f6bc",
        "hello",
    );

    #[test]
    fn v3_vector_1() {
        let (rid, ts, uid, p) = V1;
        assert_eq!(
            SignatureScheme::v3().sign(&input(rid, ts, uid, p)),
            "72c2e94b22f24457b4c8d132d4da9bfbe47e12ea3c87dd90275607979f07b99a"
        );
    }

    #[test]
    fn v3_vector_2_cjk() {
        let i = input(
            "00000000-0000-4000-8000-000000000000",
            1_772_345_678_901,
            "9015da82-1ac5-400a-b256-ba915c3d45e1",
            "你好，请用一句话介绍你自己",
        );
        assert_eq!(
            SignatureScheme::v3().sign(&i),
            "31f82ccb0fa5e951353ca01370e422c26d4bfdef54515667106ccdcfca95d1a9"
        );
    }

    #[test]
    fn v3_vector_3_empty_prompt() {
        let i = input(
            "d2b6f0a4-7c1e-4b8a-9f3d-2e5c6a7b8c9d",
            1_781_234_567_890,
            "guest",
            "",
        );
        let scheme = SignatureScheme::v3();
        let fields = |n: &str| match n {
            "requestId" => Some("d2b6f0a4-7c1e-4b8a-9f3d-2e5c6a7b8c9d".to_owned()),
            "timestamp" => Some("1781234567890".to_owned()),
            "user_id" => Some("guest".to_owned()),
            _ => None,
        };
        assert_eq!(
            scheme.string_to_sign(&fields, "", 1_781_234_567_890),
            "requestId,d2b6f0a4-7c1e-4b8a-9f3d-2e5c6a7b8c9d,timestamp,1781234567890,user_id,guest||1781234567890"
        );
        assert_eq!(
            scheme.sign(&i),
            "a1acd83844f83193da3eda1262b7887335dff1b60c411f38df7b67c4d557a73b"
        );
    }

    #[test]
    fn split_timestamp_reading() {
        let (rid, ts, uid, p) = V1;
        let i = SignInput {
            signature_timestamp: 1_760_000_000_006,
            ..input(rid, ts, uid, p)
        };
        let sig = SignatureScheme::v3().sign(&i);
        assert_eq!(
            sig,
            "b4db7d10636e055cda8b92c9153be7c753601da9d741586fbd8fd392b58316c1"
        );
        assert!(SignatureScheme::v3().verify(&i, &sig));
        // The single-timestamp reading of the same request is accepted as well.
        let single = SignatureScheme {
            tail_timestamp: TailTimestamp::Timestamp,
            ..SignatureScheme::v3()
        }
        .sign(&i);
        assert_ne!(single, sig);
        assert!(SignatureScheme::v3().verify(&i, &single));
    }

    #[test]
    fn older_versions() {
        let (rid, ts, uid, p) = V1;
        let i = input(rid, ts, uid, p);
        assert_eq!(
            SignatureScheme::v1().sign(&i),
            "b0f91c95c2014c5a0bf697da441c326685b2a23fe3d1b1af6978863fb58bd81a"
        );
        assert_eq!(
            SignatureScheme::v2().sign(&i),
            "e8a1a14e6155901c15822bf75a1c60a2641f4c7a52d873bf9dab32c0085488e2"
        );
        assert!(!SignatureScheme::v3().verify(&i, &SignatureScheme::v2().sign(&i)));
    }

    #[test]
    fn wrong_prompt_fails_verification() {
        let (rid, ts, uid, p) = V1;
        let sig = SignatureScheme::v3().sign(&input(rid, ts, uid, p));
        assert!(!SignatureScheme::v3().verify(&input(rid, ts, uid, "hello!"), &sig));
    }
}
