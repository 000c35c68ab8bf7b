//! Camera configuration through the device shadow: the [`CameraConfigs`] service the API
//! calls, and [`Shadow`], the shadow service's document rules (merge, version, delta) as pure
//! code — what the in-memory adapter and the local and test stand-ins of the AWS IoT shadow
//! service run, so they behave alike.

use crate::access::{Caller, Role, visible_camera};
use crate::error::{DomainError, StoreError};
use crate::ports::{CameraRegistry, ConfigShadows, ConnectionClaim};
use anpr_protocol::config::{CONFIG_ERROR, ConfigRefusal, MIN_CONNECTION_CHANGE_INTERVAL_SECS};
use anpr_protocol::shadow::{Delta, Document, DocumentState, Rejected};
use anpr_protocol::{CameraId, RemoteConfig};
use serde::Serialize;
use serde_json::{Map, Value};

/// One shadow document as the AWS IoT shadow service keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shadow {
    /// What the cloud wants.
    pub desired: Map<String, Value>,
    /// What the device reported.
    pub reported: Map<String, Value>,
    /// Incremented by every accepted update.
    pub version: u64,
}

/// What an accepted update produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The `update/accepted` payload.
    pub accepted: Value,
    /// The `update/delta` message, when the update changed `desired` and it differs from
    /// `reported`.
    pub delta: Option<Delta>,
}

fn rejected(code: u16, message: &str) -> Rejected {
    Rejected {
        code,
        message: message.to_owned(),
    }
}

/// Merges `patch` into `into`: a `null` value deletes the key, objects merge recursively,
/// anything else replaces.
pub fn merge(into: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                into.remove(k);
            }
            Value::Object(p) => {
                if let Some(Value::Object(existing)) = into.get_mut(k) {
                    merge(existing, p);
                } else {
                    let mut fresh = Map::new();
                    merge(&mut fresh, p);
                    into.insert(k.clone(), Value::Object(fresh));
                }
            }
            other => {
                into.insert(k.clone(), other.clone());
            }
        }
    }
}

/// The desired keys whose value differs from `reported` (recursively for objects).
pub fn delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, d) in desired {
        match (d, reported.get(k)) {
            (_, Some(r)) if r == d => {}
            (Value::Object(dm), Some(Value::Object(rm))) => {
                let sub = delta(dm, rm);
                if !sub.is_empty() {
                    out.insert(k.clone(), Value::Object(sub));
                }
            }
            _ => {
                out.insert(k.clone(), d.clone());
            }
        }
    }
    out
}

/// The `update` payload that sets `desired` (what UpdateThingShadow is given); with
/// `expected_version`, accepted only if the shadow is still at that version.
pub fn desired_update(desired: &Map<String, Value>, expected_version: Option<u64>) -> Value {
    let mut payload = serde_json::json!({ "state": { "desired": desired } });
    if let Some(v) = expected_version {
        payload["version"] = v.into();
    }
    payload
}

fn state_part<'a>(
    state: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, Rejected> {
    match state.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(rejected(400, "State node must be an object")),
    }
}

impl Shadow {
    /// Applies an `update` request payload (`{"state":{"desired"?,"reported"?},"version"?}`)
    /// as the shadow service does: refused with 400 if malformed, 409 if `version` is given
    /// and is not the current one.
    pub fn update(&mut self, payload: &Value, now_secs: u64) -> Result<Updated, Rejected> {
        let obj = payload
            .as_object()
            .ok_or_else(|| rejected(400, "Payload contains invalid json"))?;
        let state = match obj.get("state") {
            Some(Value::Object(s)) => s,
            _ => return Err(rejected(400, "Missing required node: state")),
        };
        if state.keys().any(|k| k != "desired" && k != "reported") {
            return Err(rejected(400, "State contains an invalid node"));
        }
        if let Some(v) = obj.get("version")
            && v.as_u64() != Some(self.version)
        {
            return Err(rejected(409, "Version conflict"));
        }
        let desired = state_part(state, "desired")?;
        let reported = state_part(state, "reported")?;
        if let Some(d) = desired {
            merge(&mut self.desired, d);
        }
        if let Some(r) = reported {
            merge(&mut self.reported, r);
        }
        if state.get("desired") == Some(&Value::Null) {
            self.desired.clear();
        }
        if state.get("reported") == Some(&Value::Null) {
            self.reported.clear();
        }
        self.version += 1;
        let mut accepted = Map::new();
        accepted.insert("state".into(), Value::Object(state.clone()));
        accepted.insert("version".into(), self.version.into());
        accepted.insert("timestamp".into(), now_secs.into());
        let delta = desired.and_then(|_| {
            let d = delta(&self.desired, &self.reported);
            (!d.is_empty()).then_some(Delta {
                version: self.version,
                state: d,
                timestamp: now_secs,
            })
        });
        Ok(Updated {
            accepted: Value::Object(accepted),
            delta,
        })
    }

    /// The `get/accepted` document.
    pub fn document(&self, now_secs: u64) -> Document {
        let d = delta(&self.desired, &self.reported);
        let some = |m: &Map<String, Value>| (!m.is_empty()).then(|| m.clone());
        Document {
            state: DocumentState {
                desired: some(&self.desired),
                reported: some(&self.reported),
                delta: some(&d),
            },
            version: self.version,
            timestamp: now_secs,
        }
    }
}

/// A camera's configuration as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigView {
    /// The camera.
    pub camera_id: String,
    /// Shadow version (`0`: no shadow yet). Give it as `If-Match` to update only if unchanged.
    pub version: u64,
    /// Settings the cloud asked for.
    pub desired: Map<String, Value>,
    /// Settings the camera reports running.
    pub reported: Map<String, Value>,
    /// Desired settings the camera does not run yet (offline, or refused: see `error`).
    pub pending: Map<String, Value>,
    /// Why the camera refused or rolled back the last desired document, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ConfigRefusal>,
}

impl ConfigView {
    fn new(camera: &CameraId, doc: Option<Document>) -> Self {
        let doc = doc.unwrap_or_default();
        let mut reported = doc.state.reported.unwrap_or_default();
        let error = reported
            .remove(CONFIG_ERROR)
            .and_then(|v| serde_json::from_value(v).ok());
        Self {
            camera_id: camera.to_string(),
            version: doc.version,
            desired: doc.state.desired.unwrap_or_default(),
            reported,
            pending: doc.state.delta.unwrap_or_default(),
            error,
        }
    }
}

/// The configuration service: validates with the protocol's types, writes `desired`.
#[derive(Debug, Clone)]
pub struct CameraConfigs<C, S> {
    cameras: C,
    shadows: S,
}

impl<C: CameraRegistry, S: ConfigShadows> CameraConfigs<C, S> {
    /// Over a camera registry and the shadow port.
    pub fn new(cameras: C, shadows: S) -> Self {
        Self { cameras, shadows }
    }

    /// The shadow port.
    pub fn shadows(&self) -> &S {
        &self.shadows
    }

    async fn camera(
        &self,
        caller: &Caller,
        needed: Role,
        camera: &str,
    ) -> Result<CameraId, DomainError> {
        let id = CameraId::parse(camera)?;
        caller.require(needed)?;
        visible_camera(&self.cameras, caller, &id).await?;
        Ok(id)
    }

    /// The camera's desired, reported and pending settings (any role of its organisation).
    pub async fn get(&self, caller: &Caller, camera: &str) -> Result<ConfigView, DomainError> {
        let id = self.camera(caller, Role::Viewer, camera).await?;
        let doc = self.shadows.read(&id).await?;
        Ok(ConfigView::new(&id, doc))
    }

    /// Sets desired settings (a partial document: only the given settings change); with
    /// `expected_version`, only if the shadow is still at that version. Admins of the
    /// camera's organisation only. A change of a connection setting
    /// ([`RemoteConfig::CONNECTION_SETTINGS`]: a value other than the one desired, or
    /// reported when none is desired) is refused if the camera's last one was accepted less
    /// than [`MIN_CONNECTION_CHANGE_INTERVAL_SECS`] before `now` (Unix seconds).
    pub async fn update(
        &self,
        caller: &Caller,
        camera: &str,
        doc: &Value,
        expected_version: Option<u64>,
        now: u64,
    ) -> Result<ConfigView, DomainError> {
        let id = self.camera(caller, Role::Admin, camera).await?;
        let settings = RemoteConfig::from_value(doc)?;
        if settings.is_empty() {
            return Err(DomainError::Invalid(anpr_protocol::ValidationError {
                field: "config",
                reason: "no setting given".into(),
            }));
        }
        let asked = settings.to_object();
        let mut claim = None;
        if let Some(setting) = self.connection_change(&id, &asked).await? {
            let min = MIN_CONNECTION_CHANGE_INTERVAL_SECS;
            match self.cameras.claim_connection_change(&id, now, min).await? {
                ConnectionClaim::TooSoon { last } => {
                    return Err(DomainError::ConnectionChangeTooSoon {
                        setting,
                        interval: min,
                        last,
                        next: last.saturating_add(min),
                        now,
                    });
                }
                ConnectionClaim::Claimed { previous } => claim = Some(previous),
            }
        }
        if let Err(e) = self.shadows.desire(&id, &asked, expected_version).await {
            // Not written: the change did not happen, so it must not count. If giving the
            // claim back fails too, the caller still learns why the write failed; the claim
            // then stands (the next change waits the hour).
            if let Some(previous) = claim
                && let Err(r) = self
                    .cameras
                    .release_connection_change(&id, now, previous)
                    .await
            {
                tracing::error!(camera = %id, error = %r, "connection change claim not given back");
            }
            return Err(e.into());
        }
        let doc = self.shadows.read(&id).await?;
        Ok(ConfigView::new(&id, doc))
    }

    /// The first connection setting `asked` changes: one whose value differs from the one
    /// desired (or reported, when none is desired). Reads the shadow only when `asked` names
    /// a connection setting.
    async fn connection_change(
        &self,
        id: &CameraId,
        asked: &Map<String, Value>,
    ) -> Result<Option<&'static str>, DomainError> {
        let named: Vec<&'static str> = RemoteConfig::CONNECTION_SETTINGS
            .iter()
            .copied()
            .filter(|k| asked.contains_key(*k))
            .collect();
        if named.is_empty() {
            return Ok(None);
        }
        let doc = self.shadows.read(id).await?.unwrap_or_default();
        let desired = doc.state.desired.unwrap_or_default();
        let reported = doc.state.reported.unwrap_or_default();
        Ok(named.into_iter().find(|k| {
            let now = desired.get(*k).or_else(|| reported.get(*k));
            now != asked.get(*k)
        }))
    }
}

impl From<Rejected> for StoreError {
    fn from(r: Rejected) -> Self {
        if r.code == 409 {
            StoreError::Conflict
        } else {
            StoreError::Corrupt(format!(
                "shadow refused the update: {} {}",
                r.code, r.message
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryCameraRegistry, MemoryShadows};
    use crate::model::Camera;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_desired_change_produces_a_delta_of_what_differs_from_reported() {
        let mut s = Shadow::default();
        s.update(&json!({"state":{"reported":{"a":1,"b":2}}}), 1)
            .unwrap();
        let u = s
            .update(&json!({"state":{"desired":{"a":1,"b":3}}}), 2)
            .unwrap();
        let d = u.delta.unwrap();
        assert_eq!(d.state, map(json!({"b":3})));
        assert_eq!(d.version, 2);
        let u = s.update(&json!({"state":{"reported":{"b":3}}}), 3).unwrap();
        assert!(u.delta.is_none());
        assert!(s.document(3).state.delta.is_none());
    }

    #[test]
    fn null_deletes_a_key_and_a_stale_version_is_a_conflict() {
        let mut s = Shadow::default();
        s.update(&json!({"state":{"desired":{"a":1,"b":2}}}), 1)
            .unwrap();
        s.update(&json!({"state":{"desired":{"a":null}},"version":1}), 1)
            .unwrap();
        assert_eq!(s.desired, map(json!({"b":2})));
        let e = s
            .update(&json!({"state":{"desired":{"b":5}},"version":1}), 1)
            .unwrap_err();
        assert_eq!(e.code, 409);
        let e = s.update(&json!({"state":{"bogus":{}}}), 1).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(s.version, 2);
    }

    fn admin() -> Caller {
        Caller {
            sub: "ada".into(),
            org: crate::OrgId::parse("acme").unwrap(),
            role: Role::Admin,
        }
    }

    async fn service() -> CameraConfigs<MemoryCameraRegistry, MemoryShadows> {
        let cams = MemoryCameraRegistry::default();
        cams.register(Camera {
            camera_id: CameraId::parse("cam-1").unwrap(),
            name: None,
            registered_at: 0,
            org: Some(crate::OrgId::parse("acme").unwrap()),
            presence: None,
        });
        CameraConfigs::new(cams, MemoryShadows::default())
    }

    #[tokio::test]
    async fn an_update_is_validated_with_the_protocol_types_and_names_the_setting() {
        let svc = service().await;
        let e = svc
            .update(&admin(), "cam-1", &json!({"keep_alive_secs": 5}), None, 0)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("keep_alive_secs"), "{e}");
        let e = svc
            .update(&admin(), "cam-1", &json!({"colour": "red"}), None, 0)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = svc
            .update(&admin(), "cam-1", &json!({}), None, 0)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no setting"), "{e}");
        let e = svc
            .update(&admin(), "cam-9", &json!({"keep_alive_secs": 600}), None, 0)
            .await
            .unwrap_err();
        assert!(matches!(e, DomainError::CameraNotFound(_)), "{e}");
        assert_eq!(svc.shadows().get("cam-1"), None, "nothing written");
        let operator = Caller {
            role: Role::Operator,
            ..admin()
        };
        let e = svc
            .update(
                &operator,
                "cam-1",
                &json!({"keep_alive_secs": 600}),
                None,
                0,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, DomainError::Forbidden(Role::Admin)), "{e}");
        let stranger = Caller {
            org: crate::OrgId::parse("globex").unwrap(),
            ..admin()
        };
        let e = svc
            .update(
                &stranger,
                "cam-1",
                &json!({"keep_alive_secs": 600}),
                None,
                0,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, DomainError::CameraNotFound(_)), "{e}");
        assert_eq!(svc.shadows().get("cam-1"), None, "still nothing written");
    }

    #[tokio::test]
    async fn the_view_shows_desired_reported_pending_and_the_cameras_error() {
        let svc = service().await;
        let v = svc
            .update(&admin(), "cam-1", &json!({"keep_alive_secs": 600}), None, 0)
            .await
            .unwrap();
        assert_eq!(v.pending, map(json!({"keep_alive_secs": 600})));
        assert_eq!(v.version, 1);
        svc.shadows().report(
            "cam-1",
            map(json!({"keep_alive_secs": 1200, "config_error":
                {"version": 1, "setting": "keep_alive_secs", "reason": "no"}})),
        );
        let v = svc.get(&admin(), "cam-1").await.unwrap();
        assert_eq!(v.reported, map(json!({"keep_alive_secs": 1200})));
        assert_eq!(v.error.unwrap().setting.as_deref(), Some("keep_alive_secs"));
        let e = svc
            .update(
                &admin(),
                "cam-1",
                &json!({"keep_alive_secs": 900}),
                Some(1),
                3600,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, DomainError::Store(StoreError::Conflict)), "{e}");
        let v = svc
            .update(
                &admin(),
                "cam-1",
                &json!({"keep_alive_secs": 900}),
                Some(2),
                3600,
            )
            .await
            .unwrap();
        assert_eq!(v.desired, map(json!({"keep_alive_secs": 900})));
    }

    #[tokio::test]
    async fn a_connection_change_within_the_hour_is_refused_naming_the_setting() {
        let svc = service().await;
        let hour = MIN_CONNECTION_CHANGE_INTERVAL_SECS;
        let t0 = 1_700_000_000;
        svc.update(
            &admin(),
            "cam-1",
            &json!({"mqtt_port": 443, "mqtt_alpn": true}),
            None,
            t0,
        )
        .await
        .unwrap();
        let e = svc
            .update(
                &admin(),
                "cam-1",
                &json!({"keep_alive_secs": 600}),
                None,
                t0 + 60,
            )
            .await
            .unwrap_err();
        match &e {
            DomainError::ConnectionChangeTooSoon { setting, next, .. } => {
                assert_eq!(*setting, "keep_alive_secs");
                assert_eq!(*next, t0 + hour);
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains(&(t0 + hour).to_string()), "{e}");
        assert_eq!(
            svc.shadows().get("cam-1").unwrap().version,
            1,
            "nothing written"
        );
        // The values already desired, and other settings, are no connection change.
        svc.update(
            &admin(),
            "cam-1",
            &json!({"mqtt_port": 443, "health_interval_secs": 600}),
            None,
            t0 + 61,
        )
        .await
        .unwrap();
        // An hour later it is allowed.
        svc.update(
            &admin(),
            "cam-1",
            &json!({"keep_alive_secs": 600}),
            None,
            t0 + hour,
        )
        .await
        .unwrap();
    }
}
