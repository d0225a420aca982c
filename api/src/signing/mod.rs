//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), shared
//! by every request Switchboard sends that a receiver must be able to trust:
//! webhook deliveries and ticket hand-offs. Pure: no I/O, no clock.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// 24 random bytes, as the reference libraries generate.
const GENERATED_KEY_BYTES: usize = 24;

/// A signing key: `whsec_` followed by the base64 of the raw key bytes.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a signing secret starts with whsec_ followed by base64")]
    Malformed,
    #[error("a signing secret needs at least 16 key bytes")]
    TooShort,
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Malformed)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed)?;
        if key.len() < 16 {
            return Err(SecretError::TooShort);
        }
        Ok(Self { key })
    }

    /// A fresh random secret (the operating system's generator).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = vec![0u8; GENERATED_KEY_BYTES];
        getrandom::fill(&mut key)?;
        Ok(Self { key })
    }

    /// The `whsec_…` text, shown once to whoever created it.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The `webhook-signature` header value for one message:
    /// `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.
    pub fn sign(&self, message_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// The three headers of a signed request, in the order the spec lists them.
pub fn headers(
    secret: &WebhookSecret,
    message_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", message_id.to_owned()),
        ("webhook-timestamp", timestamp_secs.to_string()),
        (
            "webhook-signature",
            secret.sign(message_id, timestamp_secs, body),
        ),
    ]
}

#[cfg(test)]
mod tests;
