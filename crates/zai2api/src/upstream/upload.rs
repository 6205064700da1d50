//! Image upload (`POST files`) and the `files[]` entry a completion references it by.
//!
//! Invariants:
//! - Guests never upload: they are refused before any request with kind `ModelNotAvailable` and
//!   detail [`GUEST_UPLOAD_REFUSED`] (upstream refuses guest uploads anyway).
//! - The file name sent upstream is a fresh UUID with an extension from the media type; the
//!   client's own file name never reaches upstream.
//! - An answer without an `id` is `BadResponse`; the other fields fall back to what was sent.
//!
//! `upload_image` works on the operation's `Call`; the client facade delegates to it.

use serde_json::Value;

use super::call::Call;
use super::session::Credential;
use super::transport::{bad_json, err};
use crate::error::{UpstreamError, UpstreamErrorKind};

/// An uploaded file, ready to reference from a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadedFile {
    pub id: String,
    /// The `files[]` entry for the completion body.
    pub entry: serde_json::Value,
    /// What to put in the image part's URL.
    pub reference: String,
}

/// The detail of the error returned when a guest tries to upload.
pub const GUEST_UPLOAD_REFUSED: &str =
    "image upload needs a logged-in TOKEN; guest sessions cannot upload files";

fn extension_for(media_type: &str) -> &'static str {
    match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/bmp" => "bmp",
        "image/svg+xml" => "svg",
        "image/heic" => "heic",
        _ => "bin",
    }
}

/// Builds the completion's `files[]` entry from upstream's upload answer; `filename` and `size`
/// are what was sent, used where the answer lacks them.
fn uploaded_file(
    file: Value,
    path: &str,
    filename: &str,
    size: usize,
) -> Result<UploadedFile, UpstreamError> {
    let id = file
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_json(path, "upload answer has no `id`"))?
        .to_owned();
    let name = file
        .get("filename")
        .or_else(|| file.get("meta").and_then(|m| m.get("name")))
        .and_then(Value::as_str)
        .unwrap_or(filename)
        .to_owned();
    let size = file
        .get("meta")
        .and_then(|m| m.get("size"))
        .and_then(Value::as_u64)
        .unwrap_or(size as u64);
    let entry = serde_json::json!({
        "type": "image",
        "file": file,
        "id": id,
        "url": format!("/api/v1/files/{id}/content"),
        "name": name,
        "status": "uploaded",
        "size": size,
        "error": "",
        "itemId": uuid::Uuid::new_v4().to_string(),
        "media": "image",
    });
    Ok(UploadedFile {
        reference: id.clone(),
        id,
        entry,
    })
}

/// Uploads an image for a logged-in credential. Guests are refused before any request with
/// kind `ModelNotAvailable` and detail [`GUEST_UPLOAD_REFUSED`] (callers should check
/// `credential.guest` first and answer the client with a 400).
pub(super) async fn upload_image(
    call: &Call<'_>,
    credential: &Credential,
    media_type: &str,
    data: Vec<u8>,
) -> Result<UploadedFile, UpstreamError> {
    if credential.guest {
        return Err(err(
            UpstreamErrorKind::ModelNotAvailable,
            GUEST_UPLOAD_REFUSED,
        ));
    }
    let fe = call.fe_version().await;
    let path = &call.profile.endpoints.files;
    let size = data.len();
    let filename = format!("{}.{}", uuid::Uuid::new_v4(), extension_for(media_type));
    let part = reqwest::multipart::Part::bytes(data)
        .file_name(filename.clone())
        .mime_str(media_type)
        .map_err(|_| {
            err(
                UpstreamErrorKind::BadResponse,
                format!("unusable media type `{media_type}`"),
            )
        })?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let file = call
        .post_json(path, &fe, &credential.token, |req| req.multipart(form))
        .await?;
    uploaded_file(file, path, &filename, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_prefers_the_answer_and_falls_back_to_what_was_sent() {
        let got = uploaded_file(
            serde_json::json!({"id": "f1", "meta": {"name": "cat.png", "size": 7}}),
            "/api/v1/files/",
            "sent.png",
            3,
        )
        .unwrap();
        assert_eq!((got.id.as_str(), got.reference.as_str()), ("f1", "f1"));
        assert_eq!(got.entry["name"], "cat.png");
        assert_eq!(got.entry["size"], 7);
        assert_eq!(got.entry["url"], "/api/v1/files/f1/content");
        let got = uploaded_file(serde_json::json!({"id": "f2"}), "/f", "sent.png", 3).unwrap();
        assert_eq!(
            (got.entry["name"].as_str(), got.entry["size"].as_u64()),
            (Some("sent.png"), Some(3))
        );
        let e = uploaded_file(serde_json::json!({}), "/f", "sent.png", 3).unwrap_err();
        assert_eq!(e.kind, UpstreamErrorKind::BadResponse);
        assert_eq!(extension_for("IMAGE/JPEG"), "jpg");
        assert_eq!(extension_for("application/pdf"), "bin");
    }
}
