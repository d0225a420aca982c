use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use super::{Caller, Role, Viewer};
use crate::clock::Clock;
use crate::config::JwtSecret;
use crate::domain::Priority;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    /// Not valid before (Unix seconds), if the issuer says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A customer's priority (LOW, NORMAL, HIGH, URGENT), set by the shop's
    /// backend that signs the token; customers cannot choose their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

const MAX_SUB_LEN: usize = 200;
/// The longest lifetime a token may claim unless configured
/// (MAX_TOKEN_TTL_SECS): a week.
pub const DEFAULT_MAX_TTL_SECS: i64 = 7 * 24 * 3600;
/// Slack for clock skew between the issuer and this server.
const LEEWAY_SECS: i64 = 5;

/// Signs and verifies HS256 tokens. The algorithm is pinned: a token whose
/// header names any other algorithm, `none` included, is refused.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    max_ttl_secs: i64,
    clock: Clock,
}

impl JwtKeys {
    pub fn new(secret: &JwtSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // jsonwebtoken would read the system's time; `verify` checks exp
        // and nbf against this server's clock instead.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
            validation,
            max_ttl_secs: DEFAULT_MAX_TTL_SECS,
            clock: Clock::system(),
        }
    }

    /// Issues and verifies by `clock`'s time (the system's by default).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Refuses tokens that claim to live longer than `secs` (exp − iat, or
    /// exp − now for tokens without iat): a stolen long-lived token is a
    /// standing key.
    pub fn with_max_ttl(mut self, secs: i64) -> Self {
        self.max_ttl_secs = secs;
        self
    }

    pub fn issue(
        &self,
        role: Role,
        sub: &str,
        name: Option<&str>,
        ttl_secs: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = self.clock.now().timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role: role.as_claim().to_owned(),
            name: name.map(str::to_owned),
            exp: now + ttl_secs,
            iat: now,
            nbf: None,
            priority: None,
        };
        self.sign(&claims)
    }

    /// Signs claims as they are (tests, and tools that mint tokens with
    /// claims `issue` does not set, such as a customer's priority).
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    pub fn verify(&self, token: &str) -> Result<Viewer, String> {
        refuse_critical_headers(token)?;
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim (sub, exp)",
                _ => "token is malformed",
            }
            .to_owned()
        })?;
        let claims = data.claims;
        let now = self.clock.now().timestamp();
        if claims.exp < now.saturating_sub(LEEWAY_SECS) {
            return Err("token expired".into());
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
        {
            return Err("token is not valid yet (nbf)".into());
        }
        let issued = if claims.iat > 0 { claims.iat } else { now };
        if claims.exp.saturating_sub(issued) > self.max_ttl_secs + LEEWAY_SECS {
            return Err(format!(
                "token lives longer than {} seconds (MAX_TOKEN_TTL_SECS)",
                self.max_ttl_secs
            ));
        }
        let role = Role::from_claim(&claims.role)
            .ok_or_else(|| "token role must be customer, agent or admin".to_owned())?;
        let sub = claims.sub.trim();
        if sub.is_empty() || sub.len() > MAX_SUB_LEN || sub.chars().any(char::is_control) {
            return Err(format!("token sub must be 1 to {MAX_SUB_LEN} characters"));
        }
        if claims
            .name
            .as_deref()
            .is_some_and(crate::domain::has_bidi_controls)
        {
            // A name shown to the other side must read as it displays.
            return Err("token name must not contain bidirectional override characters".into());
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
        let priority = match (role, claims.priority.as_deref()) {
            (Role::Customer, Some(p)) => Some(p.parse::<Priority>().map_err(|_| {
                format!("token priority {p:?} must be LOW, NORMAL, HIGH or URGENT")
            })?),
            _ => None,
        };
        Ok(Viewer {
            id: sub.to_owned(),
            priority,
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

/// RFC 7515 §4.1.11: a recipient must refuse a token whose `crit` header
/// names extensions it does not understand, and this server understands
/// none. jsonwebtoken ignores unknown headers, so the header is read here.
fn refuse_critical_headers(token: &str) -> Result<(), String> {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    let malformed = || "token is malformed".to_owned();
    let header = token.split('.').next().ok_or_else(malformed)?;
    if header.len() > 4096 {
        return Err(malformed());
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if header.get("crit").is_some() {
        return Err(
            "token header names critical extensions (crit), which are not supported".into(),
        );
    }
    Ok(())
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

    #[tokio::test]
    async fn expiry_is_judged_by_the_servers_clock() {
        let hand = Clock::manual(chrono::Utc::now());
        let k = keys().with_clock(hand.clock());
        let t = k.issue(Role::Customer, "c", None, 60).unwrap();
        assert!(k.verify(&t).is_ok());
        hand.advance(std::time::Duration::from_secs(60 + LEEWAY_SECS as u64 + 1))
            .await;
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
                nbf: None,
                priority: None,
            },
            &EncodingKey::from_secret(secret.expose()),
        )
        .unwrap();
        assert!(k.verify(&t).is_err());
    }

    #[test]
    fn a_customers_priority_comes_from_the_signed_claim_only() {
        let k = keys();
        let with = |role: &str, priority: &str| {
            k.sign(&Claims {
                sub: "c".into(),
                role: role.into(),
                name: None,
                exp: chrono::Utc::now().timestamp() + 60,
                iat: 0,
                nbf: None,
                priority: Some(priority.into()),
            })
            .unwrap()
        };
        assert_eq!(
            k.verify(&with("customer", "HIGH")).unwrap().priority,
            Some(Priority::High)
        );
        assert!(k.verify(&with("customer", "high")).is_err());
        assert!(k.verify(&with("customer", "SUPER")).is_err());
        // Only customers are queued; the claim means nothing on staff.
        assert_eq!(k.verify(&with("agent", "URGENT")).unwrap().priority, None);
        let plain = k.issue(Role::Customer, "c", None, 60).unwrap();
        assert_eq!(k.verify(&plain).unwrap().priority, None);
    }

    fn signed(header: serde_json::Value, claims: serde_json::Value) -> String {
        use jsonwebtoken::crypto::sign;
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header}.{claims}");
        let key = EncodingKey::from_secret(b"test-secret-of-enough-length");
        let signature = sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{signature}")
    }

    #[test]
    fn not_before_lifetime_and_critical_headers_are_checked() {
        let k = keys().with_max_ttl(3600);
        let now = chrono::Utc::now().timestamp();
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let claims = |extra: serde_json::Value| {
            let mut c =
                serde_json::json!({"sub": "c", "role": "customer", "iat": now, "exp": now + 600});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        assert!(k
            .verify(&signed(header.clone(), claims(serde_json::json!({}))))
            .is_ok());
        assert_eq!(
            k.verify(&signed(
                header.clone(),
                claims(serde_json::json!({"nbf": now + 300}))
            ))
            .unwrap_err(),
            "token is not valid yet (nbf)"
        );
        assert!(k
            .verify(&signed(
                header.clone(),
                claims(serde_json::json!({"nbf": now - 10}))
            ))
            .is_ok());
        let too_long = claims(serde_json::json!({"exp": now + 7200}));
        assert!(k
            .verify(&signed(header.clone(), too_long))
            .unwrap_err()
            .contains("MAX_TOKEN_TTL_SECS"));
        let no_iat = serde_json::json!({"sub": "c", "role": "customer", "exp": now + 7200});
        assert!(
            k.verify(&signed(header.clone(), no_iat)).is_err(),
            "no iat: counted from now"
        );
        let critical = serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"], "exp": 1});
        assert!(k
            .verify(&signed(critical, claims(serde_json::json!({}))))
            .unwrap_err()
            .contains("crit"));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(crate::auth::bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(crate::auth::bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(crate::auth::bearer_token("Basic abc"), None);
        assert_eq!(crate::auth::bearer_token("Bearer "), None);
    }
}
