//! Who may see and change what: organisations, roles and the verified token claims they come
//! from.
//!
//! Every camera belongs to one organisation ([`Camera::org`]); every user belongs to one
//! organisation with one [`Role`]. Both come from the claims of a verified token, mapped by
//! the one function [`Caller::from_claims`] (the cloud: API Gateway's JWT authorizer; the
//! local stack: its own token verifier):
//! - `sub`: the user (absent: `401`);
//! - `custom:org`: the organisation, a Cognito custom attribute only administrators can set
//!   (the app client cannot write it);
//! - `cognito:groups`: the role, the highest of `viewer`, `operator`, `admin` among the
//!   groups.
//!
//! A missing or unknown organisation or role is [`ClaimsError::Forbidden`] (`403`). A camera
//! or request of another organisation, or of none, is reported as not found: its existence is
//! not revealed.

use crate::error::DomainError;
use crate::model::Camera;
use crate::ports::CameraRegistry;
use anpr_protocol::CameraId;
use serde::{Deserialize, Serialize};

/// The claim naming the user's organisation.
pub const ORG_CLAIM: &str = "custom:org";
/// The claim listing the user's groups (roles).
pub const GROUPS_CLAIM: &str = "cognito:groups";
/// Longest organisation id.
pub const MAX_ORG_LEN: usize = 64;

/// An organisation id: 1..=64 of `a-z`, `0-9`, `-`, `_` (it becomes part of keys, so `#` and
/// anything else is refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(String);

impl OrgId {
    /// Validates an organisation id.
    pub fn parse(s: &str) -> Result<Self, anpr_protocol::ValidationError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_ORG_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(anpr_protocol::ValidationError {
                field: "org",
                reason: format!("must be 1..={MAX_ORG_LEN} of a-z, 0-9, '-', '_'"),
            })
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgId {
    type Error = anpr_protocol::ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OrgId> for String {
    fn from(o: OrgId) -> Self {
        o.0
    }
}

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's role in their organisation; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees the organisation's cameras, requests and plate reads.
    Viewer,
    /// Viewer, and creates file requests.
    Operator,
    /// Operator, and changes camera configuration and reads the audit trail.
    Admin,
}

impl Role {
    /// The group name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    fn from_group(g: &str) -> Option<Self> {
        match g {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Who is calling the API, from the verified token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// Subject of the token.
    pub sub: String,
    /// The user's organisation.
    pub org: OrgId,
    /// The user's role in it.
    pub role: Role,
}

/// Why claims do not make a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// No subject: the request carries no verified identity (`401`).
    #[error("missing or invalid authorization")]
    Unauthenticated,
    /// The identity has no valid organisation or no known role (`403`).
    #[error("{0}")]
    Forbidden(&'static str),
}

/// Splits a groups claim as API Gateway passes it (`[admin viewer]`), as a JSON array
/// (`["admin"]`) or comma-separated.
fn groups(claim: &str) -> impl Iterator<Item = &str> {
    claim
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '"'))
        .filter(|g| !g.is_empty())
}

impl Caller {
    /// The one mapping from verified claims to a caller; `claim` looks a claim up by name.
    pub fn from_claims<'a>(claim: impl Fn(&str) -> Option<&'a str>) -> Result<Self, ClaimsError> {
        let sub = claim("sub")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(ClaimsError::Unauthenticated)?;
        let org = claim(ORG_CLAIM)
            .and_then(|o| OrgId::parse(o.trim()).ok())
            .ok_or(ClaimsError::Forbidden(
                "the token names no valid organisation",
            ))?;
        let role = claim(GROUPS_CLAIM)
            .and_then(|g| groups(g).filter_map(Role::from_group).max())
            .ok_or(ClaimsError::Forbidden("the token names no known role"))?;
        Ok(Self {
            sub: sub.to_owned(),
            org,
            role,
        })
    }

    /// [`Caller::from_claims`] over a token's verified claims as JSON (the authorizers that
    /// verify tokens themselves), flattened the way API Gateway's JWT authorizer flattens them.
    pub fn from_json_claims(
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, ClaimsError> {
        let flat = flatten_claims(claims);
        Self::from_claims(|k| flat.get(k).map(String::as_str))
    }

    /// `Ok` if the caller's role is at least `needed`, else [`DomainError::Forbidden`].
    pub fn require(&self, needed: Role) -> Result<(), DomainError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(DomainError::Forbidden(needed))
        }
    }

    /// Whether the caller's organisation owns something of organisation `org` (`None`: an
    /// item without organisation, visible to nobody).
    pub fn owns(&self, org: Option<&OrgId>) -> bool {
        org == Some(&self.org)
    }
}

/// The camera if it exists and belongs to the caller's organisation; otherwise
/// [`DomainError::CameraNotFound`], whether it is missing or another organisation's. One
/// registry read.
pub async fn visible_camera<C: CameraRegistry>(
    cameras: &C,
    caller: &Caller,
    camera: &CameraId,
) -> Result<Camera, DomainError> {
    match cameras.get_camera(camera).await? {
        Some(c) if caller.owns(c.org.as_ref()) => Ok(c),
        _ => Err(DomainError::CameraNotFound(camera.to_string())),
    }
}

/// Claims as API Gateway's JWT authorizer passes them to a function: every value a string,
/// arrays as `[a b]`.
pub fn flatten_claims(
    claims: &serde_json::Map<String, serde_json::Value>,
) -> std::collections::HashMap<String, String> {
    use serde_json::Value;
    claims
        .iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Array(a) => format!(
                    "[{}]",
                    a.iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Caller, ClaimsError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Caller::from_claims(|k| m.get(k).map(String::as_str))
    }

    #[test]
    fn claims_map_to_org_and_the_highest_known_role() {
        let c = from(&[
            ("sub", "u1"),
            ("custom:org", "acme"),
            ("cognito:groups", "[viewer admin other]"),
        ])
        .unwrap();
        assert_eq!((c.org.as_str(), c.role), ("acme", Role::Admin));
        let c = from(&[
            ("sub", "u1"),
            ("custom:org", "acme"),
            ("cognito:groups", r#"["operator"]"#),
        ])
        .unwrap();
        assert_eq!(c.role, Role::Operator);
    }

    #[test]
    fn missing_or_unknown_claims_are_refused() {
        assert_eq!(from(&[]), Err(ClaimsError::Unauthenticated));
        assert_eq!(
            from(&[("custom:org", "acme"), ("cognito:groups", "admin")]),
            Err(ClaimsError::Unauthenticated)
        );
        for bad in [
            vec![("sub", "u"), ("cognito:groups", "admin")],
            vec![
                ("sub", "u"),
                ("custom:org", "ac#me"),
                ("cognito:groups", "admin"),
            ],
            vec![("sub", "u"), ("custom:org", "acme")],
            vec![
                ("sub", "u"),
                ("custom:org", "acme"),
                ("cognito:groups", "[root]"),
            ],
        ] {
            assert!(
                matches!(from(&bad), Err(ClaimsError::Forbidden(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn roles_include_the_lower_ones() {
        let c = from(&[
            ("sub", "u"),
            ("custom:org", "a"),
            ("cognito:groups", "operator"),
        ])
        .unwrap();
        assert!(c.require(Role::Viewer).is_ok());
        assert!(c.require(Role::Operator).is_ok());
        assert!(matches!(
            c.require(Role::Admin),
            Err(DomainError::Forbidden(Role::Admin))
        ));
        assert!(c.owns(Some(&OrgId::parse("a").unwrap())));
        assert!(!c.owns(Some(&OrgId::parse("b").unwrap())));
        assert!(!c.owns(None));
    }
}
