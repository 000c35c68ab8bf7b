//! The web authorizer with real RS256 tokens (a key pair generated at run time) and its real
//! HTTP key fetch, against a JWKS served on the loopback interface: every refusal the token
//! rules promise, the key rotation path (an unknown key id fetches the JWKS again, once a
//! minute at most), and the response AWS IoT gets.

mod support;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::*;
use web_authorizer::https::HttpsKeys;
use web_authorizer::policy::Scope;
use web_authorizer::token::{Expected, TokenError};
use web_authorizer::{AuthError, Authorizer};

const NOW: u64 = 1_800_000_000;

/// A JWKS endpoint whose document can change, counting its requests.
struct Pool {
    url: String,
    doc: Arc<Mutex<Vec<u8>>>,
    hits: Arc<AtomicUsize>,
}

impl Pool {
    async fn serve(doc: Vec<u8>) -> Self {
        let doc = Arc::new(Mutex::new(doc));
        let hits = Arc::new(AtomicUsize::new(0));
        let (d, h) = (doc.clone(), hits.clone());
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                let body = d.lock().unwrap().clone();
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, doc, hits }
    }

    fn authorizer(&self) -> Authorizer<HttpsKeys> {
        Authorizer::new(
            HttpsKeys::new(&self.url).expect("loopback URL"),
            Expected {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
            },
            Scope {
                partition: "aws".into(),
                region: "eu-west-1".into(),
                account: "123456789012".into(),
            },
        )
    }
}

fn refused_with(r: Result<(anpr_core::access::Caller, u64), AuthError>) -> TokenError {
    match r {
        Err(AuthError::Token(e)) => e,
        other => panic!("expected a token refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused_and_a_good_one_names_its_caller() {
    let key = PoolKey::generate("k1");
    let other = PoolKey::generate("k1"); // same key id, another key
    let pool = Pool::serve(jwks(&[&key])).await;
    let auth = pool.authorizer();
    let good = id_claims("8a1f3c2e-user", "acme", "operator", NOW);

    let (caller, exp) = auth.verify(&key.sign(&good), NOW).await.expect("valid");
    assert_eq!(caller.sub, "8a1f3c2e-user");
    assert_eq!(caller.org.as_str(), "acme");
    assert_eq!(exp, NOW + 3600);

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        key.sign(&c)
    };
    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "expired",
            with(&|c| c["exp"] = json!(NOW - 1)),
            TokenError::Expired,
        ),
        (
            "not yet valid",
            with(&|c| c["iat"] = json!(NOW + 3600)),
            TokenError::NotYetValid,
        ),
        (
            "another issuer",
            with(&|c| {
                c["iss"] = json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other")
            }),
            TokenError::Issuer(
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other".into(),
            ),
        ),
        (
            "another audience",
            with(&|c| c["aud"] = json!("another-app-client")),
            TokenError::Audience,
        ),
        (
            "an access token",
            with(&|c| c["token_use"] = json!("access")),
            TokenError::TokenUse("access".into()),
        ),
        (
            "signed by another key under the same key id",
            other.sign(&good),
            TokenError::Signature,
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                B64.encode(r#"{"alg":"none","kid":"k1"}"#),
                B64.encode(good.to_string())
            ),
            TokenError::Algorithm("none".into()),
        ),
        (
            "alg HS256",
            key.sign_parts(&json!({"alg": "HS256", "kid": "k1"}), &good),
            TokenError::Algorithm("HS256".into()),
        ),
        ("not a JWT", "abc.def".into(), TokenError::Malformed),
    ];
    for (what, token, expected) in cases {
        assert_eq!(
            refused_with(auth.verify(&token, NOW).await),
            expected,
            "{what}"
        );
    }
    // A signature from a valid token on other claims (an elevated role).
    let valid = key.sign(&good);
    let sig = valid.rsplit('.').next().unwrap();
    let mut admin = good.clone();
    admin["cognito:groups"] = json!(["admin"]);
    let forged = format!(
        "{}.{}.{sig}",
        B64.encode(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#),
        B64.encode(admin.to_string())
    );
    assert_eq!(
        refused_with(auth.verify(&forged, NOW).await),
        TokenError::Signature
    );
    // Valid tokens the API would refuse too: no organisation, no known role.
    let mut no_org = good.clone();
    no_org.as_object_mut().unwrap().remove("custom:org");
    assert!(matches!(
        auth.verify(&key.sign(&no_org), NOW).await,
        Err(AuthError::Claims(_))
    ));
    let mut no_role = good.clone();
    no_role["cognito:groups"] = json!(["guests"]);
    assert!(matches!(
        auth.verify(&key.sign(&no_role), NOW).await,
        Err(AuthError::Claims(_))
    ));
    assert_eq!(pool.hits.load(Ordering::SeqCst), 1, "keys fetched once");
}

#[tokio::test]
async fn an_unknown_key_id_fetches_the_keys_again_once_a_minute_at_most() {
    let k1 = PoolKey::generate("k1");
    let k2 = PoolKey::generate("k2");
    let k3 = PoolKey::generate("k3");
    let pool = Pool::serve(jwks(&[&k1])).await;
    let auth = pool.authorizer();
    let claims = id_claims("u-1", "acme", "viewer", NOW);
    auth.verify(&k1.sign(&claims), NOW).await.expect("k1");
    assert_eq!(pool.hits.load(Ordering::SeqCst), 1);

    // The pool rotates k2 in; a token signed with it arrives a minute later.
    *pool.doc.lock().unwrap() = jwks(&[&k1, &k2]);
    auth.verify(&k2.sign(&claims), NOW + 60)
        .await
        .expect("k2 after a fetch");
    assert_eq!(pool.hits.load(Ordering::SeqCst), 2);

    // A key id the pool does not have, right after: refused without another fetch, and still
    // refused (with one more fetch) a minute later.
    let t3 = k3.sign(&claims);
    assert_eq!(
        refused_with(auth.verify(&t3, NOW + 61).await),
        TokenError::UnknownKey("k3".into())
    );
    assert_eq!(
        pool.hits.load(Ordering::SeqCst),
        2,
        "no fetch within a minute"
    );
    assert_eq!(
        refused_with(auth.verify(&t3, NOW + 121).await),
        TokenError::UnknownKey("k3".into())
    );
    assert_eq!(pool.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_response_allows_the_users_organisations_notifications_and_refusals_allow_nothing() {
    let key = PoolKey::generate("k1");
    let pool = Pool::serve(jwks(&[&key])).await;
    let auth = pool.authorizer();
    let token = key.sign(&id_claims("8a1f3c2e-user", "acme", "viewer", NOW));

    // Through the WebSocket URL's query string, as a browser passes it.
    let event = json!({
        "signatureVerified": false,
        "protocols": ["tls", "http"],
        "protocolData": {
            "tls": {"serverName": "example-ats.iot.eu-west-1.amazonaws.com"},
            "http": {"headers": {}, "queryString": format!("?x-amz-customauthorizer-name=web&token={token}")},
        },
        "connectionMetadata": {"id": "e56f08c3-c559-490f-aa9f-7e8427d0f57b"},
    });
    let r = auth.handle(&event, NOW).await;
    assert_eq!(r["isAuthenticated"], true, "{r}");
    assert_eq!(r["principalId"], "8a1f3c2euser");
    assert_eq!(r["disconnectAfterInSeconds"], 3600);
    let doc: Value =
        serde_json::from_str(r["policyDocuments"][0].as_str().expect("a document")).unwrap();
    let resources: Vec<&str> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Resource"].as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "arn:aws:iot:eu-west-1:123456789012:client/web-8a1f3c2e-user-*",
            "arn:aws:iot:eu-west-1:123456789012:topicfilter/web/org/acme/notifications",
            "arn:aws:iot:eu-west-1:123456789012:topic/web/org/acme/notifications",
        ]
    );

    // As the MQTT password (MQTT over TLS with ALPN), the same answer.
    let event = json!({"protocolData": {"mqtt": {
        "username": "ada",
        "password": base64::engine::general_purpose::STANDARD.encode(&token),
        "clientId": "web-8a1f3c2e-user-1",
    }}});
    assert_eq!(auth.handle(&event, NOW).await["isAuthenticated"], true);

    let mut truncated = token.clone();
    truncated.pop();
    for event in [
        json!({}),
        json!({"token": "not-a-token"}),
        json!({"protocolData": {"http": {"queryString": "?token="}}}),
        json!({"token": truncated}),
    ] {
        let r = auth.handle(&event, NOW).await;
        assert_eq!(r["isAuthenticated"], false, "{event}: {r}");
        assert_eq!(r["policyDocuments"], json!([]), "{event}");
    }
}
