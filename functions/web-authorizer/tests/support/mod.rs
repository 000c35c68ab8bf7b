//! Real RS256 tokens for the authorizer's tests and benchmark: an RSA key pair generated at run
//! time (nothing secret in the repo), its JWKS, and tokens signed with it.
#![allow(dead_code)] // each test target uses some of it

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use serde_json::{Value, json};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Ab12Cd34E";
pub const AUDIENCE: &str = "4pq7fmu3ikq0vq9go8tq6c1h2b";

/// A signing key of the "user pool".
pub struct PoolKey {
    pub kid: String,
    pair: KeyPair,
}

impl PoolKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("RSA key"),
        }
    }

    /// Its JWK, as Cognito publishes it.
    pub fn jwk(&self) -> Value {
        let pk = self.pair.public_key();
        json!({
            "alg": "RS256",
            "e": B64.encode(pk.exponent().big_endian_without_leading_zero()),
            "kid": self.kid,
            "kty": "RSA",
            "n": B64.encode(pk.modulus().big_endian_without_leading_zero()),
            "use": "sig",
        })
    }

    /// `header.claims` signed RS256 with this key.
    pub fn sign_parts(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("sign");
        format!("{input}.{}", B64.encode(sig))
    }

    /// A token with these claims and a proper header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_parts(
            &json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }
}

/// The JWKS document of `keys`.
pub fn jwks(keys: &[&PoolKey]) -> Vec<u8> {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
        .to_string()
        .into_bytes()
}

/// An ID token's claims as Cognito issues them for a user of `org` with `group`, issued at `now`.
pub fn id_claims(sub: &str, org: &str, group: &str, now: u64) -> Value {
    json!({
        "sub": sub,
        "cognito:groups": [group],
        "custom:org": org,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "token_use": "id",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
        "cognito:username": "ada",
        "email": "ada@example.com",
    })
}
