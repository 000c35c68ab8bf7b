//! The IoT policy a verified user gets for the console's live connection: connect under a
//! client id of their own (`web-{user}-…`), subscribe to and receive their organisation's
//! notification topic (`web/org/{org}/notifications`, where the functions publish what every
//! member may see: its requests' states, its cameras' presence), nothing else. No publish: a
//! browser has nothing to say to a camera except through the API. Plate reads are the API's
//! to show, per organisation.

use anpr_core::access::Caller;
use anpr_protocol::topics;
use serde_json::{Value, json};

/// Where the policy applies: the partition, region and account of the IoT endpoint.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `aws` (or `aws-cn`, `aws-us-gov`).
    pub partition: String,
    /// Region of the IoT endpoint.
    pub region: String,
    /// Account id.
    pub account: String,
}

/// The level that names `user` in their client id: `web-{level}-…`.
pub fn user_level(user: &str) -> String {
    topics::sanitize_level(user)
}

/// The authorizer's `principalId`: the user's letters and digits (AWS allows no others), at
/// most 128.
pub fn principal_id(caller: &Caller) -> String {
    let id: String = caller
        .sub
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(128)
        .collect();
    if id.is_empty() { "user".into() } else { id }
}

/// The policy document for `caller`.
pub fn document(caller: &Caller, scope: &Scope) -> Value {
    let arn = |kind: &str, rest: &str| {
        format!(
            "arn:{}:iot:{}:{}:{kind}/{rest}",
            scope.partition, scope.region, scope.account
        )
    };
    let level = user_level(&caller.sub);
    let topic = topics::org_notifications(caller.org.as_str());
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": arn("client", &format!("web-{level}-*")),
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": arn("topicfilter", &topic),
            },
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": arn("topic", &topic),
            },
        ],
    })
}
