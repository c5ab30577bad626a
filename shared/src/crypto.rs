//! Token sealing (AES-256-GCM), the signed authorisation links, and the revoke-hook and Polar webhook signatures.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::config::EncryptionKey;
use crate::ids::{AccessToken, AthleteUuid};

type HmacSha256 = Hmac<Sha256>;

/// `n` random bytes from the OS-seeded generator, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// Lower-case hex SHA-256 of `data`: a stable, non-reversible key for values we must not store raw.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(Sha256::digest(data))
}

/// Whether `secret` hashes to `expected_hash` ([`sha256_hex`]), compared in constant time: how the callback
/// checks the browser secret against the hash stored with the state.
pub fn matches_sha256_hex(secret: &str, expected_hash: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    sha256_hex(secret.as_bytes())
        .as_bytes()
        .ct_eq(expected_hash.as_bytes())
        .into()
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// Hex HMAC-SHA256 of `message` under `key`.
pub fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut m = mac(key);
    m.update(message);
    hex::encode(m.finalize().into_bytes())
}

/// Constant-time check of a hex HMAC-SHA256 (either case) over `message`.
fn verify_hex(key: &[u8], message: &[u8], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    let mut m = mac(key);
    m.update(message);
    m.verify_slice(&signature).is_ok()
}

/// A Polar token sealed for storage: `v1.<base64(nonce ‖ ciphertext ‖ tag)>`, bound to its athlete.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedToken(String);

impl SealedToken {
    /// Wraps a stored value; it is only checked when opened.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The value to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedToken(..)")
    }
}

/// Why a sealed token could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("sealed token has an unknown format")]
    Format,
    #[error("sealed token failed authentication (wrong key, wrong athlete or tampered)")]
    Authentication,
    #[error("token encryption failed")]
    Encryption,
}

/// Seals and opens Polar tokens with AES-256-GCM. The athlete's UUID is the associated data, so a
/// sealed token copied onto another athlete's record does not open.
#[derive(Clone)]
pub struct TokenCipher {
    cipher: Aes256Gcm,
}

impl TokenCipher {
    const PREFIX: &str = "v1.";
    const NONCE_LEN: usize = 12;

    /// A cipher for `key`.
    pub fn new(key: &EncryptionKey) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.bytes().into()),
        }
    }

    /// Encrypts `token` for `athlete` under a fresh random nonce.
    pub fn seal(
        &self,
        athlete: &AthleteUuid,
        token: &AccessToken,
    ) -> Result<SealedToken, CryptoError> {
        let mut nonce_bytes = [0u8; Self::NONCE_LEN];
        rand::fill(&mut nonce_bytes[..]);
        let nonce = Nonce::from(nonce_bytes);
        let payload = Payload {
            msg: token.expose_secret().as_bytes(),
            aad: athlete.as_str().as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| CryptoError::Encryption)?;
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&ciphertext);
        Ok(SealedToken(format!(
            "{}{}",
            Self::PREFIX,
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob)
        )))
    }

    /// Decrypts a token sealed for `athlete`.
    pub fn open(
        &self,
        athlete: &AthleteUuid,
        sealed: &SealedToken,
    ) -> Result<AccessToken, CryptoError> {
        let encoded = sealed
            .0
            .strip_prefix(Self::PREFIX)
            .ok_or(CryptoError::Format)?;
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .map_err(|_| CryptoError::Format)?;
        if blob.len() <= Self::NONCE_LEN {
            return Err(CryptoError::Format);
        }
        let (nonce_bytes, ciphertext) = blob.split_at(Self::NONCE_LEN);
        let nonce_array: [u8; Self::NONCE_LEN] =
            nonce_bytes.try_into().map_err(|_| CryptoError::Format)?;
        let payload = Payload {
            msg: ciphertext,
            aad: athlete.as_str().as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce_array), payload)
            .map_err(|_| CryptoError::Authentication)?;
        String::from_utf8(plain)
            .map(AccessToken::new)
            .map_err(|_| CryptoError::Format)
    }
}

/// Why an authorisation link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}

/// Signs and verifies athletes' personal authorisation links:
/// `sig = hex(HMAC-SHA256(link_signing_key, "<uuid>.<exp>"))` (design §4).
#[derive(Clone)]
pub struct LinkSigner {
    key: SecretString,
}

/// The query of a signed link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLink {
    /// The athlete the link belongs to.
    pub athlete: AthleteUuid,
    /// Unix seconds after which the link no longer works.
    pub expires: i64,
    /// Hex signature.
    pub signature: String,
}

impl LinkSigner {
    /// How long a link written into the athlete's profile stays valid.
    pub const VALIDITY_DAYS: i64 = 90;

    /// A signer with `link_signing_key`.
    pub fn new(key: SecretString) -> Self {
        Self { key }
    }

    fn message(athlete: &AthleteUuid, expires: i64) -> String {
        format!("{}.{}", athlete.as_str(), expires)
    }

    /// Signs a link for `athlete` valid until `expires`.
    pub fn sign(&self, athlete: &AthleteUuid, expires: DateTime<Utc>) -> SignedLink {
        let expires = expires.timestamp();
        let signature = hmac_hex(
            self.key.expose_secret().as_bytes(),
            Self::message(athlete, expires).as_bytes(),
        );
        SignedLink {
            athlete: athlete.clone(),
            expires,
            signature,
        }
    }

    /// The full URL of a link to `authorize_endpoint` (`{PUBLIC_BASE_URL}/polar/authorize`).
    pub fn url(
        &self,
        authorize_endpoint: &str,
        athlete: &AthleteUuid,
        expires: DateTime<Utc>,
    ) -> String {
        let link = self.sign(athlete, expires);
        let query = serde_urlencoded::to_string([
            ("athlete", link.athlete.as_str()),
            ("exp", &link.expires.to_string()),
            ("sig", &link.signature),
        ])
        .unwrap_or_default();
        format!("{authorize_endpoint}?{query}")
    }

    /// Checks the signature first (in constant time), then the expiry.
    pub fn verify(
        &self,
        athlete: &AthleteUuid,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LinkError> {
        if !verify_hex(
            self.key.expose_secret().as_bytes(),
            Self::message(athlete, expires).as_bytes(),
            signature,
        ) {
            return Err(LinkError::BadSignature);
        }
        if now.timestamp() > expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

/// Why a revoke-hook request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevokeSignatureError {
    #[error("X-Connector-Signature is missing or malformed")]
    Malformed,
    #[error("the request is older than the replay window or from the future")]
    OutsideWindow,
    #[error("the signature does not match")]
    BadSignature,
}

/// Verifies `X-Connector-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` (design §4)
/// and returns the signed time `t`.
pub fn verify_revoke_signature(
    secret: &SecretString,
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, RevokeSignatureError> {
    let header = header.ok_or(RevokeSignatureError::Malformed)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(
                    t.trim()
                        .parse::<i64>()
                        .map_err(|_| RevokeSignatureError::Malformed)?,
                )
            }
            Some(("v1", s)) => signatures.push(s.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(RevokeSignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(RevokeSignatureError::Malformed);
    }
    // `abs_diff`: any `t` a caller sends, however far off, is only outside the window, never an overflow.
    if now.timestamp().abs_diff(timestamp) > REVOKE_REPLAY_WINDOW_SECONDS.unsigned_abs() {
        return Err(RevokeSignatureError::OutsideWindow);
    }
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let key = secret.expose_secret().as_bytes();
    // Several v1 values allow a secret rotation; all are checked so timing does not tell which matched.
    let matched = signatures
        .iter()
        .fold(false, |acc, sig| verify_hex(key, &message, sig) | acc);
    if !matched {
        return Err(RevokeSignatureError::BadSignature);
    }
    DateTime::from_timestamp(timestamp, 0).ok_or(RevokeSignatureError::Malformed)
}

/// The revoke hook's replay window: five minutes either way.
pub const REVOKE_REPLAY_WINDOW_SECONDS: i64 = 300;

/// Builds the `X-Connector-Signature` header value a revoke caller sends (for the CLI, the demo and tests).
pub fn revoke_signature_header(secret: &SecretString, body: &[u8], at: DateTime<Utc>) -> String {
    let t = at.timestamp();
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "t={t},v1={}",
        hmac_hex(secret.expose_secret().as_bytes(), &message)
    )
}

/// Verifies Polar's `Polar-Webhook-Signature`: hex HMAC-SHA256 of the raw body, compared in constant time.
pub fn verify_webhook_signature(
    secret: &SecretString,
    signature: Option<&str>,
    body: &[u8],
) -> bool {
    signature.is_some_and(|s| verify_hex(secret.expose_secret().as_bytes(), body, s))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn athlete(s: &str) -> AthleteUuid {
        AthleteUuid::parse(s).unwrap()
    }

    fn key() -> EncryptionKey {
        EncryptionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
    }

    #[test]
    fn a_secret_matches_only_its_own_hash() {
        let secret = random_hex(32);
        let hash = sha256_hex(secret.as_bytes());
        assert!(matches_sha256_hex(&secret, &hash));
        assert!(!matches_sha256_hex(&secret, &hash.to_uppercase()));
        assert!(!matches_sha256_hex(&random_hex(32), &hash));
        assert!(!matches_sha256_hex(&secret, &hash[..63]));
        assert!(!matches_sha256_hex(&secret, ""));
        assert!(!matches_sha256_hex("", &hash));
    }

    #[test]
    fn sealed_token_round_trips_and_hides_the_token() {
        let cipher = TokenCipher::new(&key());
        let token = AccessToken::new("polar-token-abcdef");
        let sealed = cipher.seal(&athlete("a-1"), &token).unwrap();
        assert!(!sealed.as_str().contains("polar-token"));
        assert!(sealed.as_str().starts_with("v1."));
        let opened = cipher.open(&athlete("a-1"), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "polar-token-abcdef");
        // A fresh nonce each time.
        assert_ne!(cipher.seal(&athlete("a-1"), &token).unwrap(), sealed);
    }

    #[test]
    fn sealed_token_does_not_open_for_another_athlete_key_or_after_tampering() {
        let cipher = TokenCipher::new(&key());
        let sealed = cipher
            .seal(&athlete("a-1"), &AccessToken::new("t"))
            .unwrap();
        assert_eq!(
            cipher.open(&athlete("a-2"), &sealed).unwrap_err(),
            CryptoError::Authentication
        );
        let other = TokenCipher::new(
            &EncryptionKey::from_base64(
                &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
            )
            .unwrap(),
        );
        assert_eq!(
            other.open(&athlete("a-1"), &sealed).unwrap_err(),
            CryptoError::Authentication
        );
        let mut tampered = sealed.as_str().to_string();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            cipher
                .open(&athlete("a-1"), &SealedToken::from_stored(tampered))
                .is_err()
        );
        assert_eq!(
            cipher
                .open(&athlete("a-1"), &SealedToken::from_stored("plain".into()))
                .unwrap_err(),
            CryptoError::Format
        );
    }

    #[test]
    fn link_signature_matches_the_contract_formula() {
        let signer = LinkSigner::new(SecretString::from("link-key-0123456789"));
        let exp = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let link = signer.sign(&athlete("505050"), exp);
        assert_eq!(
            link.signature,
            hmac_hex(
                b"link-key-0123456789",
                format!("505050.{}", exp.timestamp()).as_bytes()
            )
        );
        let now = exp - chrono::Duration::days(1);
        assert_eq!(
            signer.verify(&athlete("505050"), link.expires, &link.signature, now),
            Ok(())
        );
        assert_eq!(
            signer.verify(
                &athlete("505050"),
                link.expires,
                &link.signature.to_uppercase(),
                now
            ),
            Ok(())
        );
    }

    #[test]
    fn link_of_another_athlete_tampered_expiry_or_past_expiry_is_refused() {
        let signer = LinkSigner::new(SecretString::from("link-key-0123456789"));
        let exp = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let link = signer.sign(&athlete("alice"), exp);
        let before = exp - chrono::Duration::hours(1);
        assert_eq!(
            signer.verify(&athlete("bob"), link.expires, &link.signature, before),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify(
                &athlete("alice"),
                link.expires + 3600,
                &link.signature,
                before
            ),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify(&athlete("alice"), link.expires, "zz", before),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify(
                &athlete("alice"),
                link.expires,
                &link.signature,
                exp + chrono::Duration::seconds(1)
            ),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn link_url_carries_the_three_query_parameters() {
        let signer = LinkSigner::new(SecretString::from("link-key-0123456789"));
        let exp = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let url = signer.url(
            "https://api.example.com/polar/authorize",
            &athlete("a.b-1"),
            exp,
        );
        let parsed = url::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["athlete"], "a.b-1");
        assert_eq!(q["exp"], exp.timestamp().to_string());
        assert_eq!(q["sig"], signer.sign(&athlete("a.b-1"), exp).signature);
    }

    #[test]
    fn revoke_signature_window_and_tampering() {
        let secret = SecretString::from("revoke-secret-0123456789");
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
        let body = br#"{"athlete_uuid":"a-1"}"#;
        let header = revoke_signature_header(&secret, body, now);
        assert_eq!(
            verify_revoke_signature(&secret, Some(&header), body, now),
            Ok(now)
        );
        assert_eq!(
            verify_revoke_signature(
                &secret,
                Some(&header),
                body,
                now + chrono::Duration::seconds(300)
            ),
            Ok(now)
        );
        assert_eq!(
            verify_revoke_signature(
                &secret,
                Some(&header),
                body,
                now + chrono::Duration::seconds(301)
            ),
            Err(RevokeSignatureError::OutsideWindow)
        );
        assert_eq!(
            verify_revoke_signature(&secret, Some(&header), br#"{"athlete_uuid":"a-2"}"#, now),
            Err(RevokeSignatureError::BadSignature)
        );
        let other = SecretString::from("another-secret-0123456789");
        assert_eq!(
            verify_revoke_signature(&other, Some(&header), body, now),
            Err(RevokeSignatureError::BadSignature)
        );
        for bad in [
            None,
            Some(""),
            Some("v1=abc"),
            Some("t=x,v1=abc"),
            Some("t=1"),
        ] {
            assert_eq!(
                verify_revoke_signature(&secret, bad, body, now),
                Err(RevokeSignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_revoke_timestamp_at_the_ends_of_i64_is_outside_the_window_not_a_panic() {
        let secret = SecretString::from("revoke-hook-secret-0123456789");
        let now = Utc::now();
        for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert_eq!(
                verify_revoke_signature(&secret, Some(&format!("t={t},v1=00")), b"{}", now),
                Err(RevokeSignatureError::OutsideWindow)
            );
        }
    }

    #[test]
    fn webhook_signature_is_hmac_of_raw_body_any_case() {
        let secret = SecretString::from("polar-webhook-secret");
        let body = br#"{"event":"EXERCISE","user_id":475}"#;
        let sig = hmac_hex(b"polar-webhook-secret", body);
        assert!(verify_webhook_signature(&secret, Some(&sig), body));
        assert!(verify_webhook_signature(
            &secret,
            Some(&sig.to_uppercase()),
            body
        ));
        assert!(!verify_webhook_signature(
            &secret,
            Some(&sig),
            br#"{"event":"EXERCISE","user_id":476}"#
        ));
        assert!(!verify_webhook_signature(&secret, None, body));
        assert!(!verify_webhook_signature(&secret, Some("not-hex"), body));
    }
}
