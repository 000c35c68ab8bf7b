//! The user pool's signing keys: its JWKS document (`{issuer}/.well-known/jwks.json`), RSA keys
//! for RS256 only.

use base64::Engine as _;
use std::collections::HashMap;

/// The JWKS document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Not JSON, or no `keys` array.
    #[error("the JWKS is not a JSON object with a `keys` array")]
    Malformed(#[source] serde_json::Error),
    /// A key that claims to be an RS256 signing key is not usable.
    #[error("JWKS key {kid:?}: {what}")]
    BadKey {
        /// Its key id.
        kid: String,
        /// What is wrong.
        what: &'static str,
    },
}

/// One RSA public key: modulus and exponent, big-endian without leading zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaKey {
    /// Modulus.
    pub n: Vec<u8>,
    /// Public exponent.
    pub e: Vec<u8>,
}

/// The RS256 signing keys by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: HashMap<String, RsaKey>,
}

#[derive(serde::Deserialize)]
struct Doc {
    keys: Vec<Jwk>,
}

#[derive(serde::Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn component(kid: &str, v: Option<&str>, what: &'static str) -> Result<Vec<u8>, JwksError> {
    let bad = || JwksError::BadKey {
        kid: kid.to_owned(),
        what,
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v.ok_or_else(bad)?)
        .map_err(|_| bad())?;
    // Big-endian without leading zeros, as the verifier wants it.
    let first = bytes.iter().position(|b| *b != 0).ok_or_else(bad)?;
    Ok(bytes[first..].to_vec())
}

impl Jwks {
    /// Parses a JWKS document, keeping the RSA keys meant for RS256 signatures (other keys
    /// are ignored; a key without an id cannot be selected and is ignored too).
    pub fn parse(bytes: &[u8]) -> Result<Self, JwksError> {
        let doc: Doc = serde_json::from_slice(bytes).map_err(JwksError::Malformed)?;
        let mut keys = HashMap::new();
        for k in doc.keys {
            let Some(kid) = k.kid else { continue };
            if k.kty != "RSA"
                || k.alg.as_deref().is_some_and(|a| a != "RS256")
                || k.usage.as_deref().is_some_and(|u| u != "sig")
            {
                continue;
            }
            let n = component(&kid, k.n.as_deref(), "modulus `n` is not base64url")?;
            let e = component(&kid, k.e.as_deref(), "exponent `e` is not base64url")?;
            keys.insert(kid, RsaKey { n, e });
        }
        Ok(Self { keys })
    }

    /// The key with id `kid`.
    pub fn key(&self, kid: &str) -> Option<&RsaKey> {
        self.keys.get(kid)
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
