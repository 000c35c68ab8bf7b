//! The local certificate authority: generated on first run under `{data}/pki`, never shipped.
//! It issues the server certificate (for `localhost` and `127.0.0.1`, used by the broker's TLS
//! listener and the credentials provider stand-in) and one client certificate per camera
//! (CN = camera id = thing name, like AWS IoT). No Organization is set in client subjects:
//! the embedded broker would take it for a tenant id and move the camera's topics under a
//! tenant prefix. Every private key is written owner-only (0600).

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

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
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
}

/// The PKI directory: `ca.pem`, `ca.key`, `server.pem`, `server.key`, `{camera}.pem`,
/// `{camera}.key`.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    std::fs::write(path, text).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes a private key owner-only (0600), also tightening a file that already exists.
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
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
    f.sync_all().map_err(io)
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

impl Pki {
    /// Opens the PKI in `dir`, creating the CA and server certificate on first use.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let pki = Pki {
            dir: dir.to_owned(),
        };
        if !pki.ca_path().exists() || !dir.join("ca.key").exists() {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(Vec::<String>::new())?;
            p.distinguished_name.push(
                DnType::CommonName,
                "anpr-local CA (generated on this machine)",
            );
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca = p.self_signed(&key)?;
            write_secret(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
            write(&pki.ca_path(), &ca.pem())?;
            let _ = std::fs::remove_file(pki.server_cert());
        }
        if !pki.server_cert().exists() || !pki.server_key().exists() {
            let (ca, ca_key) = pki.ca()?;
            let key = KeyPair::generate()?;
            let mut p =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
            p.distinguished_name.push(DnType::CommonName, "localhost");
            let cert = p.signed_by(&key, &ca, &ca_key)?;
            write_secret(&pki.server_key(), key.serialize_pem().as_bytes())?;
            write(&pki.server_cert(), &cert.pem())?;
        }
        tighten(&dir.join("ca.key"))?;
        tighten(&pki.server_key())?;
        Ok(pki)
    }

    fn ca(&self) -> Result<(Certificate, KeyPair), PkiError> {
        let key = KeyPair::from_pem(&read(&self.dir.join("ca.key"))?)?;
        let params = CertificateParams::from_ca_cert_pem(&read(&self.ca_path())?)?;
        // Re-signing the same subject with the same key gives an issuer equivalent to the
        // stored CA certificate (same name, same key): what signing needs.
        let ca = params.self_signed(&key)?;
        Ok((ca, key))
    }

    /// The CA certificate.
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

    /// The camera's certificate and key paths, issued on first use.
    pub fn camera(&self, camera: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        let (cert_path, key_path) = (
            self.dir.join(format!("{camera}.pem")),
            self.dir.join(format!("{camera}.key")),
        );
        if !cert_path.exists() || !key_path.exists() {
            let (ca, ca_key) = self.ca()?;
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(Vec::<String>::new())?;
            p.distinguished_name.push(DnType::CommonName, camera);
            let cert = p.signed_by(&key, &ca, &ca_key)?;
            write_secret(&key_path, key.serialize_pem().as_bytes())?;
            write(&cert_path, &cert.pem())?;
        }
        Ok((cert_path, key_path))
    }
}
