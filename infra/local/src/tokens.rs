//! The local token issuer and verifier: stands in for the Cognito user pool and API Gateway's
//! JWT authorizer.
//!
//! - On first run an ECDSA P-256 signing key is generated and written owner-only (0600) as
//!   `{data}/tokens/signing.p8` (PKCS#8); it never leaves the data folder.
//! - [`Issuer::token_for`] signs an ES256 ID token for a demo user with the claims Cognito
//!   puts in one (`sub`, `custom:org`, `cognito:groups`, `iss`, `aud`, `iat`, `exp`,
//!   `token_use`).
//! - [`Issuer::verify`] checks the header (`ES256` only), the signature, the issuer, the
//!   audience and the expiry, then hands the claims to the same mapping the cloud uses
//!   ([`anpr_core::Caller::from_claims`]) after flattening array claims the way API Gateway
//!   does (`["admin"]` → `[admin]`).
//!
//! Demo data on a fresh data folder ([`DEMO_USERS`], [`DEMO_CAMERAS`]): organisation `acme`
//! with cameras `cam-001`, `cam-002` and users `ada` (admin), `otto` (operator), `vic`
//! (viewer); organisation `globex` with camera `cam-101` and user `gil` (admin).

use anpr_core::{Caller, ClaimsError, Role};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// The `iss` of local tokens.
pub const ISSUER: &str = "http://127.0.0.1/anpr-local";
/// The `aud` of local tokens (the app client id in Cognito).
pub const AUDIENCE: &str = "anpr-local-console";
/// How long a token is valid (seconds), as Cognito's ID tokens in the template.
pub const TOKEN_TTL_SECS: u64 = 3600;

/// A demo user: name (also the `sub`), organisation, role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoUser {
    /// User name and `sub`.
    pub name: &'static str,
    /// Organisation (`custom:org`).
    pub org: &'static str,
    /// Role (`cognito:groups`).
    pub role: Role,
}

/// The demo users of a fresh data folder.
pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        name: "ada",
        org: "acme",
        role: Role::Admin,
    },
    DemoUser {
        name: "otto",
        org: "acme",
        role: Role::Operator,
    },
    DemoUser {
        name: "vic",
        org: "acme",
        role: Role::Viewer,
    },
    DemoUser {
        name: "gil",
        org: "globex",
        role: Role::Admin,
    },
];

/// The demo cameras' organisations (camera, organisation); a simulated camera not listed
/// belongs to [`DEFAULT_ORG`].
pub const DEMO_CAMERAS: &[(&str, &str)] = &[
    ("cam-001", "acme"),
    ("cam-002", "acme"),
    ("cam-101", "globex"),
];

/// The organisation of a simulated camera not in [`DEMO_CAMERAS`].
pub const DEFAULT_ORG: &str = "acme";

/// The demo user named `name`.
pub fn demo_user(name: &str) -> Option<&'static DemoUser> {
    DEMO_USERS.iter().find(|u| u.name == name)
}

/// Signing, loading or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not a P-256 PKCS#8 key, or signing failed.
    #[error("signing key: {0}")]
    Key(String),
    /// No such demo user.
    #[error("no demo user {0:?} (demo users: ada, otto, vic, gil)")]
    UnknownUser(String),
    /// The token is not a well-formed ES256 JWT.
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify with the local key.
    #[error("bad signature")]
    Signature,
    /// `iss` or `aud` is not this stack's.
    #[error("wrong issuer or audience")]
    Audience,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
}

/// The local issuer: one signing key, loaded or generated once per process.
#[derive(Debug)]
pub struct Issuer {
    key: EcdsaKeyPair,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TokenError + '_ {
    move |source| TokenError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Issuer {
    /// The key file under a data folder.
    pub fn key_path(data_dir: &Path) -> PathBuf {
        data_dir.join("tokens").join("signing.p8")
    }

    /// Loads the signing key of a data folder, generating it (0600) on first use.
    pub fn open(data_dir: &Path) -> Result<Self, TokenError> {
        let path = Self::key_path(data_dir);
        if !path.exists() {
            let dir = path.parent().unwrap_or(data_dir);
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            let doc = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|e| TokenError::Key(e.to_string()))?;
            crate::pki::write_secret(&path, doc.as_ref()).map_err(|e| match e {
                crate::pki::PkiError::Io { path, source } => TokenError::Io { path, source },
                other => TokenError::Key(other.to_string()),
            })?;
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &bytes)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(Self { key })
    }

    /// Signs `claims` as an ES256 JWT.
    pub fn sign(&self, claims: &Value) -> Result<String, TokenError> {
        let header = B64.encode(br#"{"alg":"ES256","typ":"JWT","kid":"anpr-local"}"#);
        let payload = B64.encode(serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?);
        let input = format!("{header}.{payload}");
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// An ID token for demo user `name`, valid from `now` (Unix seconds) for
    /// [`TOKEN_TTL_SECS`].
    pub fn token_for(&self, name: &str, now: u64) -> Result<String, TokenError> {
        let u = demo_user(name).ok_or_else(|| TokenError::UnknownUser(name.to_owned()))?;
        self.sign(&json!({
            "sub": u.name,
            "custom:org": u.org,
            "cognito:groups": [u.role.as_str()],
            "iss": ISSUER,
            "aud": AUDIENCE,
            "token_use": "id",
            "iat": now,
            "exp": now + TOKEN_TTL_SECS,
        }))
    }

    /// Verifies header, signature, issuer, audience and expiry; returns the claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Map<String, Value>, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(TokenError::Malformed);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| TokenError::Signature)?;
        let claims: Map<String, Value> = B64
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == AUDIENCE,
            Some(Value::Array(a)) => a.iter().any(|x| x == AUDIENCE),
            _ => false,
        };
        if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) || !aud_ok {
            return Err(TokenError::Audience);
        }
        match claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now => Ok(claims),
            _ => Err(TokenError::Expired),
        }
    }
}

/// Verified claims → caller, by the cloud's mapping.
pub fn caller(claims: &Map<String, Value>) -> Result<Caller, ClaimsError> {
    Caller::from_json_claims(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_tampering_expiry_and_another_key_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = Issuer::open(dir.path()).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(Issuer::key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let t = issuer.token_for("otto", 1000).unwrap();
        let c = caller(&issuer.verify(&t, 1001).unwrap()).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.org.as_str(), c.role),
            ("otto", "acme", Role::Operator)
        );
        assert!(matches!(
            issuer.verify(&t, 1000 + TOKEN_TTL_SECS),
            Err(TokenError::Expired)
        ));
        // The same key after a restart.
        let again = Issuer::open(dir.path()).unwrap();
        assert!(again.verify(&t, 1001).is_ok());
        // A payload swapped for another user's keeps the first signature: refused.
        let g = issuer.token_for("gil", 1000).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[1] = g.split('.').nth(1).unwrap();
        assert!(matches!(
            issuer.verify(&parts.join("."), 1001),
            Err(TokenError::Signature)
        ));
        let other = Issuer::open(tempfile::tempdir().unwrap().path()).unwrap();
        let foreign = other.token_for("ada", 1000).unwrap();
        assert!(matches!(
            issuer.verify(&foreign, 1001),
            Err(TokenError::Signature)
        ));
        let wrong_aud = issuer
            .sign(&json!({"sub":"ada","iss":ISSUER,"aud":"other","exp":5000}))
            .unwrap();
        assert!(matches!(
            issuer.verify(&wrong_aud, 1001),
            Err(TokenError::Audience)
        ));
        assert!(matches!(
            issuer.verify("a.b", 1),
            Err(TokenError::Malformed)
        ));
        assert!(matches!(
            issuer.token_for("mallory", 1),
            Err(TokenError::UnknownUser(_))
        ));
    }
}
