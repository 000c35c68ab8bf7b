//! The agent's S3 client against moto's S3 (path-style at a custom endpoint): the multipart
//! calls one by one, ListParts page by page, abort, and how S3's refusals are classified.
#![allow(clippy::unwrap_used)]

use anpr_camera::config::UploadSection;
use anpr_camera::creds::{CachedCredentials, Credentials};
use anpr_camera::s3::{self, Body, CompletePart, S3, S3Error, Verdict};
use std::time::{Duration, SystemTime};

const MIB: usize = 1024 * 1024;

async fn client(bucket: &str) -> S3 {
    let cfg = UploadSection {
        endpoint_url: Some(anpr_test_support::moto::url()),
        force_path_style: true,
        ..UploadSection::new(bucket, "us-east-1")
    };
    let creds = Credentials::new(
        "testing",
        "testing",
        "token",
        SystemTime::now() + Duration::from_secs(3600),
    );
    S3::new(&cfg, CachedCredentials::fixed(creds)).unwrap()
}

async fn fresh_bucket() -> (String, aws_sdk_s3::Client) {
    let sdk = anpr_test_support::moto::clients().s3;
    let bucket = anpr_test_support::unique("s3client");
    sdk.create_bucket().bucket(&bucket).send().await.unwrap();
    (bucket, sdk)
}

fn file_of(data: &[u8]) -> (tempfile::TempDir, std::fs::File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, data).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    (dir, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_is_listed_page_by_page_completed_and_reads_back_whole() {
    let (bucket, sdk) = fresh_bucket().await;
    let s3 = client(&bucket).await;
    let key = "media/cam-1/clip.mp4";
    let data: Vec<u8> = (0..(11 * MIB + 123)).map(|i| (i % 253) as u8).collect();
    let (_dir, mut file) = file_of(&data);
    let ranges = [(0, 5 * MIB), (5 * MIB, 5 * MIB), (10 * MIB, MIB + 123)];

    let id = s3.create_multipart(key).await.unwrap();
    let mut done = Vec::new();
    for (i, (off, len)) in ranges.iter().enumerate() {
        let (off, len) = (*off as u64, *len as u64);
        let sha = s3::sha256_of(&mut file, off, len).unwrap();
        let etag = s3
            .upload_part(
                key,
                &id,
                i as i32 + 1,
                Body::File {
                    file: &mut file,
                    off,
                    len,
                    sha256: &sha,
                },
            )
            .await
            .unwrap();
        assert!(!etag.is_empty());
        done.push((i as i32 + 1, etag, sha, len));
    }

    // One part per page: three pages, each marker followed.
    let listed = s3.list_parts_paged(key, &id, 1).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| (p.n, p.etag.as_str(), p.size))
            .collect::<Vec<_>>(),
        done.iter()
            .map(|(n, e, _, l)| (*n, e.as_str(), *l))
            .collect::<Vec<_>>()
    );
    for (p, (_, _, sha, _)) in listed.iter().zip(&done) {
        // moto keeps each part's checksum; where a store lists it, it is the one sent.
        assert!(p.sha256.is_empty() || &p.sha256 == sha, "{p:?}");
    }
    assert_eq!(s3.list_parts(key, &id).await.unwrap(), listed);

    let parts: Vec<CompletePart<'_>> = done
        .iter()
        .map(|(n, e, sha, _)| CompletePart {
            n: *n,
            etag: e,
            sha256: sha,
        })
        .collect();
    s3.complete(key, &id, &parts).await.unwrap();
    let got = sdk
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(got[..] == data[..], "the object is the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_is_gone_and_a_missing_bucket_gives_up() {
    let (bucket, sdk) = fresh_bucket().await;
    let s3 = client(&bucket).await;
    let key = "media/cam-1/a.jpg";
    let id = s3.create_multipart(key).await.unwrap();
    s3.upload_part(key, &id, 1, Body::Bytes(vec![7; 1000]))
        .await
        .unwrap();
    s3.abort(key, &id).await.unwrap();
    let e = s3.list_parts(key, &id).await.unwrap_err();
    assert_eq!(
        (e.code(), e.verdict()),
        (Some("NoSuchUpload"), Verdict::StartOver),
        "{e}"
    );
    let listed = sdk
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(listed.uploads().is_empty(), "{listed:?}");

    let other = client(&anpr_test_support::unique("nobucket")).await;
    let e = other.create_multipart(key).await.unwrap_err();
    assert_eq!(
        (e.code(), e.verdict()),
        (Some("NoSuchBucket"), Verdict::GiveUp),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_put_carries_its_checksum_and_a_file_changed_under_it_is_caught() {
    let (bucket, sdk) = fresh_bucket().await;
    let s3 = client(&bucket).await;
    let data = vec![42u8; 300_000];
    let (dir, mut file) = file_of(&data);
    let sha = s3::sha256_of(&mut file, 0, data.len() as u64).unwrap();
    s3.put_object(
        "media/cam-1/p.jpg",
        Body::File {
            file: &mut file,
            off: 0,
            len: data.len() as u64,
            sha256: &sha,
        },
    )
    .await
    .unwrap();
    let head = sdk
        .head_object()
        .bucket(&bucket)
        .key("media/cam-1/p.jpg")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.checksum_sha256(), Some(sha.as_str()));

    // The file is rewritten between hashing and sending: the agent says so (S3 would refuse
    // the checksum), nothing is stored.
    std::fs::write(dir.path().join("f"), vec![43u8; 300_000]).unwrap();
    let e = s3
        .put_object(
            "media/cam-1/q.jpg",
            Body::File {
                file: &mut file,
                off: 0,
                len: data.len() as u64,
                sha256: &sha,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, S3Error::FileChanged), "{e}");
    // The connection the refused request was on is not reused for the next one.
    s3.put_object("media/cam-1/r.txt", Body::Bytes(b"next".to_vec()))
        .await
        .unwrap();
}
