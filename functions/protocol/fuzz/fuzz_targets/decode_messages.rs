//! Every decoder a camera or a Lambda runs on bytes from the network, fed arbitrary bytes.
//!
//! Properties checked beyond "no panic": whatever decodes re-encodes and decodes to the same
//! value (no lossy or ambiguous wire form), a decoded file request never names a path that could
//! leave the media directory, and a parsed topic or upload key rebuilds to the same string.

#![no_main]

use anpr_protocol::{
    FileRequest, FileStatus, Health, Notification, PlateReadBatch, Presence, ProtocolError, decode,
    encode, topics,
};
use libfuzzer_sys::fuzz_target;

fn round_trips<T>(bytes: &[u8])
where
    T: anpr_protocol::codec::Message + PartialEq + std::fmt::Debug,
{
    if let Ok(msg) = decode::<T>(bytes) {
        match encode(&msg) {
            Ok(again) => assert_eq!(decode::<T>(&again).expect("re-decodes"), msg),
            // Escaping can make the canonical form longer than a near-limit input.
            Err(ProtocolError::TooLarge { .. }) => {}
            Err(e) => panic!("a decoded message does not encode: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<FileRequest>(data) {
        let f = req.file.as_str();
        assert!(!f.starts_with('/') && !f.split('/').any(|c| c == ".." || c == "." || c.is_empty()));
        assert!(!f.chars().any(char::is_control));
        assert!(req.exp >= req.at);
    }
    round_trips::<FileRequest>(data);
    round_trips::<FileStatus>(data);
    round_trips::<Notification>(data);
    round_trips::<Health>(data);
    round_trips::<Presence>(data);
    round_trips::<PlateReadBatch>(data);
    if let Ok((good, bad)) = PlateReadBatch::decode_lenient(data) {
        assert!(good.iter().all(|r| r.c <= 100));
        let _ = bad.len();
    }
    // The configuration shadow's messages and the configuration document they carry.
    if let Ok(d) = serde_json::from_slice::<anpr_protocol::shadow::Delta>(data)
        && let Ok(c) = anpr_protocol::RemoteConfig::from_object(&d.state)
    {
        assert!(c.validate().is_ok());
        let again = anpr_protocol::RemoteConfig::from_object(&c.to_object()).expect("re-parses");
        assert_eq!(again, c);
    }
    let _ = serde_json::from_slice::<anpr_protocol::shadow::Document>(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok((cam, rest)) = topics::parse_camera_topic(s) {
            assert!(s.ends_with(&format!("{}/{}", cam.as_str(), rest)));
        }
        if let Ok((cam, req, file)) = topics::parse_upload_key(s) {
            let name = anpr_protocol::FileName::parse(file).expect("a parsed key's file is valid");
            assert_eq!(topics::upload_key(&cam, &req, &name), s);
        }
        let _ = anpr_protocol::normalize_plate(s);
    }
});
