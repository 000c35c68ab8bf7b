//! Helpers shared by the request API's tests.

use serde_json::Value;
use tower::ServiceExt as _;

/// Sends an API Gateway HTTP API v2 event through `router`: the status and the JSON body
/// (`null` if the body is not JSON).
pub async fn call(router: &axum::Router, event: Value) -> (u16, Value) {
    let req = lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event");
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
