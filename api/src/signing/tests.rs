use super::*;

// The example of the Standard Webhooks reference libraries' own tests.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1614265330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;

#[test]
fn signs_as_the_reference_libraries_do() {
    let secret = WebhookSecret::parse(SECRET).unwrap();
    assert_eq!(
        secret.sign(ID, TIMESTAMP, BODY),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn a_changed_body_id_or_time_changes_the_signature() {
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let signed = secret.sign(ID, TIMESTAMP, BODY);
    assert_ne!(signed, secret.sign(ID, TIMESTAMP, b"{\"test\": 1}"));
    assert_ne!(signed, secret.sign("msg_other", TIMESTAMP, BODY));
    assert_ne!(signed, secret.sign(ID, TIMESTAMP + 1, BODY));
}

#[test]
fn refuses_malformed_secrets() {
    assert_eq!(
        WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
        SecretError::Malformed
    );
    assert_eq!(
        WebhookSecret::parse("whsec_not base64!").unwrap_err(),
        SecretError::Malformed
    );
    assert_eq!(
        WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
        SecretError::TooShort
    );
}

#[test]
fn a_generated_secret_reads_back_as_itself() {
    let secret = WebhookSecret::generate().unwrap();
    let text = secret.expose();
    assert!(text.starts_with("whsec_"));
    let again = WebhookSecret::parse(&text).unwrap();
    assert_eq!(
        again.sign(ID, TIMESTAMP, BODY),
        secret.sign(ID, TIMESTAMP, BODY)
    );
}

#[test]
fn headers_carry_id_time_and_signature() {
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let [id, ts, sig] = headers(&secret, ID, TIMESTAMP, BODY);
    assert_eq!(id, ("webhook-id", ID.to_owned()));
    assert_eq!(ts, ("webhook-timestamp", "1614265330".to_owned()));
    assert_eq!(sig.0, "webhook-signature");
    assert_eq!(sig.1, secret.sign(ID, TIMESTAMP, BODY));
}
