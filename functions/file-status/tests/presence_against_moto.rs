//! Camera presence against moto: lifecycle events as the presence rule hands them to
//! file-status, out of order and twice, recorded on the camera's registry item by one
//! conditional write each, told to the camera's organisation only; the organisation's cameras
//! listed in pages from the index.

use anpr_aws::{DynamoCameraRegistry, IotDataPublisher};
use anpr_core::model::Camera;
use anpr_core::ports::CameraRegistry;
use anpr_core::presence::Presences;
use anpr_core::{OrgId, presence};
use anpr_protocol::notify::PresenceNotification;
use anpr_protocol::{CameraId, decode, topics};
use anpr_test_support::moto;
use file_status::{Handled, handle_lifecycle, lifecycle_event};

fn camera(id: &str, org: &OrgId) -> Camera {
    Camera {
        camera_id: CameraId::parse(id).unwrap(),
        name: Some(format!("{id} at the gate")),
        registered_at: 1,
        org: Some(org.clone()),
        presence: None,
    }
}

fn told(org: &OrgId) -> Vec<(String, bool, u64)> {
    moto::iot_published(&topics::org_notifications(org.as_str()))
        .into_iter()
        .map(|p| {
            let n: PresenceNotification = decode(&p.payload).unwrap();
            (n.camera_id.to_string(), n.online, n.last_seen_ms)
        })
        .collect()
}

#[tokio::test]
async fn lifecycle_events_in_any_order_leave_the_latest_connection_and_tell_its_organisation_only()
{
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let registry = DynamoCameraRegistry::new(clients.dynamo.clone(), &table);
    // Organisations of this test only, so the IoT read-back is its own.
    let acme = OrgId::parse(&anpr_test_support::unique("acme")).unwrap();
    let globex = OrgId::parse(&anpr_test_support::unique("globex")).unwrap();
    for c in [
        camera("cam-001", &acme),
        camera("cam-002", &acme),
        camera("cam-101", &globex),
    ] {
        registry.register(&c).await.unwrap();
    }
    let presences = Presences::new(registry.clone(), IotDataPublisher::new(clients.iot.clone()));
    let cam = CameraId::parse("cam-001").unwrap();
    let apply = |online, at, version| {
        let presences = &presences;
        async move {
            handle_lifecycle(presences, &lifecycle_event("cam-001", online, at, version))
                .await
                .unwrap()
        }
    };

    // Connection 7, then 8 takes over; 7's disconnect arrives late; 8's connect twice.
    assert_eq!(apply(true, 1_000, 7).await, Handled::Presence(true));
    assert_eq!(apply(true, 2_000, 8).await, Handled::Presence(true));
    assert_eq!(apply(false, 2_001, 7).await, Handled::Presence(false));
    assert_eq!(apply(true, 2_000, 8).await, Handled::Presence(false));
    let now = registry.get_camera(&cam).await.unwrap().unwrap();
    let p = now.presence.expect("recorded");
    assert_eq!((p.online, p.at_ms, p.version), (true, 2_000, 8));
    // 8's disconnect is newer than its connect; its connect delivered again after it is not.
    assert_eq!(apply(false, 3_000, 8).await, Handled::Presence(true));
    assert_eq!(apply(true, 2_000, 8).await, Handled::Presence(false));
    let p = registry
        .get_camera(&cam)
        .await
        .unwrap()
        .unwrap()
        .presence
        .unwrap();
    assert_eq!((p.online, p.version), (false, 8));
    // The registration itself is kept (name, organisation).
    assert_eq!(
        registry.get_camera(&cam).await.unwrap().unwrap().org,
        Some(acme.clone())
    );

    assert_eq!(
        told(&acme),
        [
            ("cam-001".to_owned(), true, 1_000),
            ("cam-001".to_owned(), true, 2_000),
            ("cam-001".to_owned(), false, 3_000)
        ]
    );
    assert!(told(&globex).is_empty());

    // A console's client id, and an unregistered camera: nothing written, nobody told.
    for client in ["web-7d3e9a41-k3j9", "cam-999"] {
        let e = lifecycle_event(client, true, 5_000, 1);
        assert_eq!(
            handle_lifecycle(&presences, &e).await.unwrap(),
            Handled::Presence(false)
        );
        let id = CameraId::parse(client).unwrap();
        assert!(registry.get_camera(&id).await.unwrap().is_none());
    }
    // A malformed event is dropped.
    assert_eq!(
        handle_lifecycle(
            &presences,
            &serde_json::json!({"clientId": "cam-001", "eventType": "connected"})
        )
        .await
        .unwrap(),
        Handled::Dropped
    );
    assert_eq!(told(&acme).len(), 3);
}

#[tokio::test]
async fn an_organisation_lists_its_own_cameras_in_pages_and_a_forged_cursor_is_refused() {
    let clients = moto::clients();
    let table = moto::fresh_table(&clients.dynamo).await;
    let registry = DynamoCameraRegistry::new(clients.dynamo.clone(), &table);
    let acme = OrgId::parse("acme").unwrap();
    let globex = OrgId::parse("globex").unwrap();
    for c in [
        camera("cam-002", &acme),
        camera("cam-001", &acme),
        camera("cam-101", &globex),
    ] {
        registry.register(&c).await.unwrap();
    }
    let caller = |org: &OrgId| anpr_core::Caller {
        sub: "7d3e9a41".into(),
        org: org.clone(),
        role: anpr_core::Role::Viewer,
    };
    let first = presence::list_cameras(&registry, &caller(&acme), None, Some(1))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].camera_id.as_str(), "cam-001");
    assert_eq!(first.items[0].name.as_deref(), Some("cam-001 at the gate"));
    let cursor = first.next_cursor.expect("a second page");
    let second = presence::list_cameras(&registry, &caller(&acme), Some(&cursor), Some(1))
        .await
        .unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|c| c.camera_id.as_str())
            .collect::<Vec<_>>(),
        ["cam-002"]
    );
    let globex_page = presence::list_cameras(&registry, &caller(&globex), None, None)
        .await
        .unwrap();
    assert_eq!(globex_page.items.len(), 1);
    assert_eq!(globex_page.items[0].camera_id.as_str(), "cam-101");
    // acme's cursor cannot page through globex's cameras.
    assert!(matches!(
        presence::list_cameras(&registry, &caller(&globex), Some(&cursor), None).await,
        Err(anpr_core::DomainError::Store(
            anpr_core::StoreError::BadCursor
        ))
    ));
}
