//! The few XML documents of the calls the agent makes, written and read by hand (no XML
//! library in the agent): CompleteMultipartUpload's body; CreateMultipartUpload's,
//! ListParts' and `<Error>` answers.

use super::{CompletePart, ListedPart, PartsPage, S3Error};

/// The CompleteMultipartUpload document, parts in the order given.
pub fn complete_body(parts: &[CompletePart<'_>]) -> String {
    let mut s = String::from(
        r#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
    );
    for p in parts {
        s.push_str(&format!(
            "<Part><ChecksumSHA256>{}</ChecksumSHA256><ETag>{}</ETag><PartNumber>{}</PartNumber></Part>",
            escape(p.sha256),
            escape(p.etag),
            p.n
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

/// The upload id of a CreateMultipartUpload answer.
pub fn parse_upload_id(body: &[u8]) -> Result<String, S3Error> {
    let xml = std::str::from_utf8(body).map_err(|_| S3Error::Malformed("answer is not UTF-8"))?;
    first(xml, "UploadId")
        .filter(|id| !id.is_empty())
        .ok_or(S3Error::Malformed(
            "CreateMultipartUpload answer without an UploadId",
        ))
}

/// One page of a ListParts answer.
pub fn parse_list_parts(body: &[u8]) -> Result<PartsPage, S3Error> {
    let xml = std::str::from_utf8(body).map_err(|_| S3Error::Malformed("answer is not UTF-8"))?;
    // `ListPartsResult` from S3 (moto names the root after the API's output shape).
    if matches!(root(body), None | Some("Error")) {
        return Err(S3Error::Malformed("ListParts answer is not a listing"));
    }
    let mut parts = Vec::new();
    for p in all(xml, "Part") {
        let n = first(p, "PartNumber")
            .and_then(|n| n.parse().ok())
            .ok_or(S3Error::Malformed("listed part without a number"))?;
        parts.push(ListedPart {
            n,
            etag: first(p, "ETag").unwrap_or_default(),
            sha256: first(p, "ChecksumSHA256").unwrap_or_default(),
            size: first(p, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
        });
    }
    let truncated = first(xml, "IsTruncated").as_deref() == Some("true");
    let next = if truncated {
        Some(
            first(xml, "NextPartNumberMarker")
                .and_then(|m| m.parse().ok())
                .ok_or(S3Error::Malformed(
                    "truncated ListParts without a next marker",
                ))?,
        )
    } else {
        None
    };
    Ok(PartsPage { parts, next })
}

/// The error an answer with `status` and `body` (S3's `<Error>` document, or nothing) stands for.
pub fn service_error(status: u16, body: &[u8]) -> S3Error {
    let xml = String::from_utf8_lossy(body);
    let code = first(&xml, "Code").unwrap_or_else(|| format!("HTTP {status}"));
    let message: String = first(&xml, "Message")
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    S3Error::Service {
        status,
        code,
        message,
    }
}

/// The name of the root element of an XML document.
pub fn root(body: &[u8]) -> Option<&str> {
    let mut s = std::str::from_utf8(body).ok()?.trim_start();
    while let Some(rest) = s.strip_prefix("<?").or_else(|| s.strip_prefix("<!")) {
        s = rest.split_once('>')?.1.trim_start();
    }
    let name = s.strip_prefix('<')?;
    let end = name.find(|c: char| c == '>' || c == '/' || c.is_whitespace())?;
    Some(&name[..end])
}

/// The inner text of every `<name>…</name>` element (not nested in one another).
fn all<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// The unescaped text of the first `<name>…</name>` element.
fn first(xml: &str, name: &str) -> Option<String> {
    all(xml, name).first().map(|t| unescape(t))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let decoded = after.find(';').and_then(|j| {
            let ent = &after[..j];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => ent
                    .strip_prefix("#x")
                    .map(|h| u32::from_str_radix(h, 16))
                    .or_else(|| ent.strip_prefix('#').map(str::parse))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, j))
        });
        match decoded {
            Some((c, j)) => {
                out.push(c);
                rest = &after[j + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
