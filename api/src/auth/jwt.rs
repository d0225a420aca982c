use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use super::{Caller, Role, Viewer};
use crate::config::JwtSecret;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
}

const MAX_SUB_LEN: usize = 200;

/// Signs and verifies HS256 tokens. The algorithm is pinned: a token whose
/// header names any other algorithm, `none` included, is refused.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &JwtSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        // A little slack for clock skew between the issuer and this server.
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
        }
    }

    pub fn issue(
        &self,
        role: Role,
        sub: &str,
        name: Option<&str>,
        ttl_secs: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role: role.as_claim().to_owned(),
            name: name.map(str::to_owned),
            exp: now + ttl_secs,
            iat: now,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Viewer, String> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim (sub, exp)",
                _ => "token is malformed",
            }
            .to_owned()
        })?;
        let claims = data.claims;
        let role = Role::from_claim(&claims.role)
            .ok_or_else(|| "token role must be customer, agent or admin".to_owned())?;
        let sub = claims.sub.trim();
        if sub.is_empty() || sub.len() > MAX_SUB_LEN || sub.chars().any(char::is_control) {
            return Err(format!("token sub must be 1 to {MAX_SUB_LEN} characters"));
        }
        // The name is only a label, so control characters (NUL, which
        // Postgres cannot store, among them) are dropped rather than the token.
        let name = claims
            .name
            .map(|n| {
                n.chars()
                    .filter(|c| !c.is_control())
                    .collect::<String>()
                    .trim()
                    .chars()
                    .take(100)
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty());
        Ok(Viewer {
            id: sub.to_owned(),
            role,
            name,
            expires_at: claims.exp,
        })
    }

    /// Turns an optional raw token into what the resolvers will see.
    pub fn caller(&self, token: Option<&str>) -> Caller {
        match token {
            None => Caller::Anonymous,
            Some(t) => match self.verify(t) {
                Ok(v) => Caller::Verified(v),
                Err(reason) => Caller::Rejected(reason),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

    fn keys() -> JwtKeys {
        JwtKeys::new(&JwtSecret::new(b"test-secret-of-enough-length".to_vec()))
    }

    #[test]
    fn issued_tokens_verify() {
        let k = keys();
        let t = k.issue(Role::Agent, "ann", Some("Ann"), 60).unwrap();
        let v = k.verify(&t).unwrap();
        assert_eq!(v.id, "ann");
        assert_eq!(v.role, Role::Agent);
        assert_eq!(v.name.as_deref(), Some("Ann"));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let k = keys();
        let t = k.issue(Role::Customer, "c", None, -60).unwrap();
        assert_eq!(k.verify(&t).unwrap_err(), "token expired");
    }

    #[test]
    fn other_secrets_are_refused() {
        let other = JwtKeys::new(&JwtSecret::new(b"another-secret-of-some-length".to_vec()));
        let t = other.issue(Role::Admin, "root", None, 60).unwrap();
        assert_eq!(keys().verify(&t).unwrap_err(), "token signature is invalid");
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let exp = chrono::Utc::now().timestamp() + 600;
        let body = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"x","role":"admin","exp":{exp}}}"#));
        assert!(keys().verify(&format!("{header}.{body}.")).is_err());
    }

    #[test]
    fn missing_exp_and_unknown_roles_are_refused() {
        let k = keys();
        #[derive(Serialize)]
        struct NoExp {
            sub: String,
            role: String,
        }
        let secret = JwtSecret::new(b"test-secret-of-enough-length".to_vec());
        let t = encode(
            &Header::new(Algorithm::HS256),
            &NoExp {
                sub: "x".into(),
                role: "admin".into(),
            },
            &EncodingKey::from_secret(secret.expose()),
        )
        .unwrap();
        assert!(k.verify(&t).is_err());
        let t = encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "x".into(),
                role: "root".into(),
                name: None,
                exp: chrono::Utc::now().timestamp() + 60,
                iat: 0,
            },
            &EncodingKey::from_secret(secret.expose()),
        )
        .unwrap();
        assert!(k.verify(&t).is_err());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(crate::auth::bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(crate::auth::bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(crate::auth::bearer_token("Basic abc"), None);
        assert_eq!(crate::auth::bearer_token("Bearer "), None);
    }
}
