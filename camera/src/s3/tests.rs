//! Request building and answer reading, on the documents S3 sends (AWS's API reference
//! examples, with the fields the agent reads).

use super::*;
use crate::creds::Credentials;
use std::time::SystemTime;

fn cfg(endpoint: Option<&str>, path_style: bool) -> UploadSection {
    UploadSection {
        endpoint_url: endpoint.map(str::to_owned),
        force_path_style: path_style,
        ..UploadSection::new("anpr-media", "eu-west-1")
    }
}

fn creds() -> Credentials {
    Credentials::new(
        "AKIAEXAMPLE",
        "secret",
        "token/with+symbols=",
        SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000),
    )
}

fn at() -> jiff::Timestamp {
    // 2026-12-02T06:00:00Z
    jiff::Timestamp::from_second(1_796_191_200).unwrap()
}

#[test]
fn aws_is_virtual_hosted_at_the_regions_endpoint_and_a_custom_endpoint_can_be_path_style() {
    let b = bucket(&cfg(None, false)).unwrap();
    let s = sign(
        &b,
        &creds(),
        at(),
        Method::Put,
        "media/cam-1/a b.jpg",
        vec![],
        vec![],
    );
    assert_eq!(s.host, "anpr-media.s3.eu-west-1.amazonaws.com");
    assert!(
        s.target.starts_with("/media/cam-1/a%20b.jpg?"),
        "{}",
        s.target
    );

    let b = bucket(&cfg(Some("http://127.0.0.1:5000"), true)).unwrap();
    let s = sign(
        &b,
        &creds(),
        at(),
        Method::Put,
        "media/cam-1/x.mp4",
        vec![],
        vec![],
    );
    assert_eq!(s.host, "127.0.0.1:5000");
    assert!(
        s.target.starts_with("/anpr-media/media/cam-1/x.mp4?"),
        "{}",
        s.target
    );
}

#[test]
fn an_upload_part_signs_its_checksum_header_and_carries_the_session_token() {
    let b = bucket(&cfg(Some("http://localhost:5000"), true)).unwrap();
    let s = sign(
        &b,
        &creds(),
        at(),
        Method::Put,
        "media/cam-1/x.mp4",
        vec![("uploadId", "2~abc".into()), ("partNumber", "3".into())],
        vec![(
            "x-amz-checksum-sha256",
            "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into(),
        )],
    );
    let head = s.head(5);
    assert!(
        head.starts_with("PUT /anpr-media/media/cam-1/x.mp4?"),
        "{head}"
    );
    for part in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Credential=AKIAEXAMPLE%2F20261202%2Feu-west-1%2Fs3%2Faws4_request",
        "X-Amz-Date=20261202T060000Z",
        "X-Amz-Expires=900",
        "X-Amz-Security-Token=token%2Fwith%2Bsymbols%3D",
        "X-Amz-SignedHeaders=host%3Bx-amz-checksum-sha256",
        "partNumber=3&uploadId=2~abc",
        "&X-Amz-Signature=",
    ] {
        assert!(s.target.contains(part), "{part} missing from {}", s.target);
    }
    assert!(head.contains("\r\nHost: localhost:5000\r\n"), "{head}");
    assert!(
        head.contains(
            "\r\nx-amz-checksum-sha256: n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=\r\n"
        ),
        "{head}"
    );
    assert!(head.ends_with("\r\nContent-Length: 5\r\n\r\n"), "{head}");
    // The same request a second later has another signature; the same instant the same one.
    let again = sign(
        &b,
        &creds(),
        at(),
        Method::Put,
        "media/cam-1/x.mp4",
        vec![("partNumber", "3".into()), ("uploadId", "2~abc".into())],
        vec![(
            "x-amz-checksum-sha256",
            "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into(),
        )],
    );
    assert_eq!(again, s);
}

#[test]
fn the_completion_lists_each_parts_etag_and_checksum_in_order() {
    let body = complete_body(&[
        CompletePart {
            n: 1,
            etag: "\"a54357aff0632cce46d942af68356b38\"",
            sha256: "sha/one=",
        },
        CompletePart {
            n: 2,
            etag: "\"0c78aef83f66abc1fa1e8477f296d394\"",
            sha256: "sha+two=",
        },
    ]);
    assert_eq!(
        body,
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Part><ChecksumSHA256>sha/one=</ChecksumSHA256><ETag>&quot;a54357aff0632cce46d942af68356b38&quot;</ETag><PartNumber>1</PartNumber></Part>\
         <Part><ChecksumSHA256>sha+two=</ChecksumSHA256><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber>2</PartNumber></Part>\
         </CompleteMultipartUpload>"
    );
}

#[test]
fn the_upload_id_is_read_from_the_creation_answer() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>anpr-media</Bucket>
  <Key>media/cam-1/x.mp4</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA&amp;x</UploadId>
  <ChecksumAlgorithm>SHA256</ChecksumAlgorithm>
</InitiateMultipartUploadResult>"#;
    assert_eq!(
        parse_upload_id(body).unwrap(),
        "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA&x"
    );
    assert!(matches!(
        parse_upload_id(b"<InitiateMultipartUploadResult/>"),
        Err(S3Error::Malformed(_))
    ));
}

const LIST_PAGE_1: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>anpr-media</Bucket>
  <Key>media/cam-1/x.mp4</Key>
  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>
  <Initiator><ID>arn:aws:iam::111122223333:user/some-user-11116a31-17b5-4fb7-9df5-b288870f11xx</ID><DisplayName>umat-user-11116a31-17b5-4fb7-9df5-b288870f11xx</DisplayName></Initiator>
  <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>someName</DisplayName></Owner>
  <StorageClass>STANDARD</StorageClass>
  <PartNumberMarker>1</PartNumberMarker>
  <NextPartNumberMarker>3</NextPartNumberMarker>
  <MaxParts>2</MaxParts>
  <IsTruncated>true</IsTruncated>
  <Part>
    <PartNumber>2</PartNumber>
    <LastModified>2010-11-10T20:48:34.000Z</LastModified>
    <ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag>
    <ChecksumSHA256>wbhtGbmtx1Ke6UDd3R9TI5dQAdSrXF1B58FzSvf4Q2I=</ChecksumSHA256>
    <Size>10485760</Size>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <LastModified>2010-11-10T20:48:33.000Z</LastModified>
    <ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag>
    <ChecksumSHA256>hmwBKAl5LF6IpOh7qzmw3t2w6s1+ROGCeJvRmJDWCsk=</ChecksumSHA256>
    <Size>10485760</Size>
  </Part>
  <ChecksumAlgorithm>SHA256</ChecksumAlgorithm>
</ListPartsResult>"#;

const LIST_PAGE_2: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>anpr-media</Bucket><Key>media/cam-1/x.mp4</Key><UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId><PartNumberMarker>3</PartNumberMarker><NextPartNumberMarker>4</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>false</IsTruncated><Part><PartNumber>4</PartNumber><LastModified>2010-11-10T20:48:35.000Z</LastModified><ETag>&#34;bbbb18db4cc2f85cedef654fccc4a4x8&#34;</ETag><Size>123</Size></Part></ListPartsResult>"#;

#[test]
fn list_parts_pages_give_each_parts_number_etag_checksum_and_size_and_the_next_marker() {
    let p1 = parse_list_parts(LIST_PAGE_1).unwrap();
    assert_eq!(p1.next, Some(3));
    assert_eq!(
        p1.parts,
        vec![
            ListedPart {
                n: 2,
                etag: "\"7778aef83f66abc1fa1e8477f296d394\"".into(),
                sha256: "wbhtGbmtx1Ke6UDd3R9TI5dQAdSrXF1B58FzSvf4Q2I=".into(),
                size: 10_485_760,
            },
            ListedPart {
                n: 3,
                etag: "\"aaaa18db4cc2f85cedef654fccc4a4x8\"".into(),
                sha256: "hmwBKAl5LF6IpOh7qzmw3t2w6s1+ROGCeJvRmJDWCsk=".into(),
                size: 10_485_760,
            },
        ]
    );
    let p2 = parse_list_parts(LIST_PAGE_2).unwrap();
    assert_eq!(p2.next, None, "the last page");
    assert_eq!(
        p2.parts,
        vec![ListedPart {
            n: 4,
            etag: "\"bbbb18db4cc2f85cedef654fccc4a4x8\"".into(),
            sha256: String::new(),
            size: 123,
        }]
    );
    // An empty upload, and answers that are not a listing.
    let empty = br#"<ListPartsResult><IsTruncated>false</IsTruncated></ListPartsResult>"#;
    assert_eq!(parse_list_parts(empty).unwrap().parts, vec![]);
    for bad in [
        &b"<Error><Code>NoSuchUpload</Code></Error>"[..],
        b"<ListPartsResult><IsTruncated>true</IsTruncated></ListPartsResult>",
        b"<ListPartsResult><Part><ETag>x</ETag></Part></ListPartsResult>",
        b"\xff\xfe",
    ] {
        assert!(
            parse_list_parts(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

const NO_SUCH_UPLOAD: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.</Message><UploadId>VXBsb2FkIElE</UploadId><RequestId>4442587FB7D0A2F9</RequestId><HostId>8yqXz0zFzUYbz1+NZ8Ra/OB4z9cjFNOlfrXtfbl6MuaaUzJNf4MvgsGqHAUSy8ELSN4XMyz+3wM=</HostId></Error>"#;

#[test]
fn error_documents_are_classified_retry_start_over_refused_or_give_up() {
    let e = service_error(404, NO_SUCH_UPLOAD);
    assert_eq!(e.code(), Some("NoSuchUpload"));
    assert_eq!(e.verdict(), Verdict::StartOver);
    assert!(
        e.to_string()
            .starts_with("HTTP 404 NoSuchUpload: The specified upload does not exist.")
    );

    let denied = service_error(
        403,
        br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>656c76696e6727732072657175657374</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#,
    );
    assert_eq!(denied.verdict(), Verdict::Refused);

    for (status, code, verdict, stale) in [
        (400, "ExpiredToken", Verdict::Retry, true),
        (403, "InvalidAccessKeyId", Verdict::Retry, true),
        (403, "SignatureDoesNotMatch", Verdict::Retry, true),
        (503, "SlowDown", Verdict::Retry, false),
        (500, "InternalError", Verdict::Retry, false),
        (400, "BadDigest", Verdict::Retry, false),
        (404, "NoSuchBucket", Verdict::GiveUp, false),
        (400, "EntityTooLarge", Verdict::GiveUp, false),
    ] {
        let body = format!("<Error><Code>{code}</Code><Message>m &amp; n</Message></Error>");
        let e = service_error(status, body.as_bytes());
        assert_eq!(
            (e.code(), e.verdict(), e.stale_credentials()),
            (Some(code), verdict, stale),
            "{code}"
        );
        assert!(e.to_string().ends_with("m & n"), "{e}");
    }

    // No document (a HEAD, a proxy's page): the status stands for the code, and is retried.
    let e = service_error(502, b"<html>Bad Gateway</html>");
    assert_eq!((e.code(), e.verdict()), (Some("HTTP 502"), Verdict::Retry));
    // Network failures and missing credentials are retried.
    let e = S3Error::from(HttpError::Timeout("connect"));
    assert_eq!(e.verdict(), Verdict::Retry);
}

#[test]
fn a_completion_answered_200_with_an_error_document_is_an_error() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>

<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>"#;
    assert_eq!(root(body), Some("Error"));
    let ok = br#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://x</Location><Bucket>anpr-media</Bucket><Key>k</Key><ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag><ChecksumSHA256>abc=-2</ChecksumSHA256></CompleteMultipartUploadResult>"#;
    assert_eq!(root(ok), Some("CompleteMultipartUploadResult"));
}

#[test]
fn a_file_range_is_hashed_in_pieces_and_a_short_file_has_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    assert_eq!(
        sha256_of(&mut f, 1000, 150_000).unwrap(),
        b64(&Sha256::digest(&data[1000..151_000]))
    );
    assert!(matches!(
        sha256_of(&mut f, 100_000, 150_000),
        Err(S3Error::FileChanged)
    ));
}
