//! A throw-away certificate authority in one folder, never shipped: generated on first use and
//! reopened after (the local stack keeps its own across restarts; each test broker makes a new
//! one in a temporary folder). It issues the server certificate (for `localhost` and
//! `127.0.0.1`: the broker's TLS listener and the credentials provider) and client
//! certificates with CN = thing name = MQTT client id, like AWS IoT. No Organization is set in
//! client subjects: rumqttd would take it for a tenant id and move the camera's topics under a
//! tenant prefix. Every private key is written owner-only (0600).

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The PKI could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Generating or loading a key or certificate failed.
    #[error("certificate generation")]
    Cert(#[from] rcgen::Error),
}

/// A client certificate and key issued by a [`Pki`], as PEM files.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// Certificate CN (= thing name = MQTT client id).
    pub cn: String,
    /// Certificate PEM path.
    pub cert_path: PathBuf,
    /// Private key PEM path (PKCS#8, owner-only).
    pub key_path: PathBuf,
}

impl ClientIdentity {
    /// Certificate PEM bytes.
    pub fn cert_pem(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(&self.cert_path)
    }
    /// Key PEM bytes.
    pub fn key_pem(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(&self.key_path)
    }
}

/// The PKI folder: `ca.pem`, `ca.key`, `server.pem`, `server.key`, `{cn}.pem`, `{cn}.key`.
#[derive(Clone)]
pub struct Pki {
    dir: PathBuf,
    /// The CA as an issuer (its certificate re-signed from the stored subject and key) and
    /// its key, loaded once.
    ca: Arc<(Certificate, KeyPair)>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a secret (a private key, credentials) owner-only (0600) and durably, also tightening
/// a file that already exists.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    write_owner_only(path, bytes, true)
}

/// Writes `bytes` owner-only (0600), synced to disk when `sync`.
fn write_owner_only(path: &Path, bytes: &[u8], sync: bool) -> Result<(), PkiError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    if sync {
        f.sync_all().map_err(io)?;
    }
    Ok(())
}

/// Makes an existing key file owner-only (keys written before they were).
fn tighten(path: &Path) -> Result<(), PkiError> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PkiError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Signs a certificate with subject CN `cn` (and `names` as subject alternative names) by
/// `ca`, writing the key owner-only to `key_path` (synced to disk when `sync`) and the
/// certificate to `cert_path`.
fn sign(
    ca: &(Certificate, KeyPair),
    cn: &str,
    names: Vec<String>,
    (cert_path, key_path): (&Path, &Path),
    sync: bool,
) -> Result<(), PkiError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(names)?;
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.signed_by(&key, &ca.0, &ca.1)?;
    write_owner_only(key_path, key.serialize_pem().as_bytes(), sync)?;
    write(cert_path, &cert.pem())
}

impl Pki {
    /// Opens the PKI in `dir`, creating it on first use: a CA with subject CN `ca_name` and a
    /// server certificate for `localhost` / `127.0.0.1`.
    pub fn open(dir: &Path, ca_name: &str) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let (ca_path, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
        let ca = if ca_path.exists() && ca_key.exists() {
            let key = KeyPair::from_pem(&read(&ca_key)?)?;
            let params = CertificateParams::from_ca_cert_pem(&read(&ca_path)?)?;
            // Re-signing the same subject with the same key gives an issuer equivalent to the
            // stored CA certificate (same name, same key): what signing needs.
            (params.self_signed(&key)?, key)
        } else {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(Vec::<String>::new())?;
            p.distinguished_name.push(DnType::CommonName, ca_name);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let ca = p.self_signed(&key)?;
            write_secret(&ca_key, key.serialize_pem().as_bytes())?;
            write(&ca_path, &ca.pem())?;
            // A server certificate of an earlier CA would not verify.
            let _ = std::fs::remove_file(dir.join("server.pem"));
            (ca, key)
        };
        let pki = Pki {
            dir: dir.to_owned(),
            ca: Arc::new(ca),
        };
        if !pki.server_cert().exists() || !pki.server_key().exists() {
            let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let (cert, key) = (pki.server_cert(), pki.server_key());
            sign(&pki.ca, "localhost", names, (&cert, &key), true)?;
        }
        tighten(&ca_key)?;
        tighten(&pki.server_key())?;
        Ok(pki)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The CA certificate (what clients and servers trust).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    /// The server key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    /// Where the certificate issued to `cn` is (the credentials provider's record of which
    /// certificate is attached to which thing).
    pub fn cert_of(&self, cn: &str) -> PathBuf {
        self.dir.join(format!("{cn}.pem"))
    }

    fn identity(&self, cn: &str) -> ClientIdentity {
        ClientIdentity {
            cn: cn.to_owned(),
            cert_path: self.cert_of(cn),
            key_path: self.dir.join(format!("{cn}.key")),
        }
    }

    /// Issues a new client certificate with CN `cn`, replacing one issued before (whose
    /// certificate is then no longer the thing's). A throw-away identity: its key is not
    /// synced to disk (a test fleet issues thousands).
    pub fn issue(&self, cn: &str) -> Result<ClientIdentity, PkiError> {
        let id = self.identity(cn);
        sign(
            &self.ca,
            cn,
            Vec::new(),
            (&id.cert_path, &id.key_path),
            false,
        )?;
        Ok(id)
    }

    /// The client certificate of `cn`, issued on first use (durably) and kept after.
    pub fn camera(&self, cn: &str) -> Result<ClientIdentity, PkiError> {
        let id = self.identity(cn);
        if !(id.cert_path.exists() && id.key_path.exists()) {
            sign(
                &self.ca,
                cn,
                Vec::new(),
                (&id.cert_path, &id.key_path),
                true,
            )?;
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn keys_are_owner_only_and_a_reopened_ca_keeps_issuing_what_it_issued() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("pki");
        let pki = Pki::open(&dir, "test CA").expect("created");
        let cam = pki.camera("cam-1").expect("issued");
        for key in [dir.join("ca.key"), pki.server_key(), cam.key_path.clone()] {
            assert_eq!(mode(&key), 0o600, "{}", key.display());
        }
        let ca = std::fs::read(pki.ca_path()).expect("CA");
        let first = cam.cert_pem().expect("cert");
        let reopened = Pki::open(&dir, "another name").expect("reopened");
        assert_eq!(std::fs::read(reopened.ca_path()).expect("CA"), ca);
        let again = reopened.camera("cam-1").expect("kept");
        assert_eq!(again.cert_pem().expect("cert"), first);
        let renewed = reopened.issue("cam-1").expect("re-issued");
        assert_ne!(renewed.cert_pem().expect("cert"), first);
        assert_eq!(mode(&renewed.key_path), 0o600);
    }
}
