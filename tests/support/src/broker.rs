//! Mosquitto configured like AWS IoT Core, started per test.
//!
//! Two TLS listeners, as AWS has two sides: the camera endpoint ([`Broker::port`]) takes
//! certificates of the camera CA only and forces the MQTT client id to the certificate CN
//! (`use_identity_as_username` + `use_username_as_clientid`: a camera that connects with
//! another camera's client id gets its own, so it can neither take over that camera's session
//! nor read what is queued for it); the cloud endpoint ([`Broker::cloud_port`], standing in
//! for IoT rules and the data plane) takes certificates of a separate cloud CA only, so the
//! cloud side may run several clients under [`CLOUD_IDENTITY`] with their own client ids.

pub use anpr_stand_ins::pki::{ClientIdentity, Pki};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Identity of the cloud side in the broker (stands in for IoT rules and the data plane): it
/// may publish and subscribe anywhere.
pub const CLOUD_IDENTITY: &str = "cloud-backend";

/// The ACL, the broker-side equivalent of the camera IoT policy in `infra/template.yaml`:
/// a camera (username = certificate CN = thing name) reads and writes its own topics, its own
/// shadow, and publishes to Basic Ingest rule topics under its own id; a web user subscribes to
/// its own notification topic only; the cloud identity may do anything.
pub fn acl() -> String {
    format!(
        "# cameras: their own topics only (IoT policy on ${{iot:Connection.Thing.ThingName}})\n\
         pattern readwrite %u/#\n\
         pattern readwrite $aws/things/%u/shadow/#\n\
         pattern write $aws/rules/+/%u/#\n\
         # web users: their own notifications only\n\
         pattern read web/%u/#\n\
         user {CLOUD_IDENTITY}\n\
         topic readwrite #\n\
         topic readwrite $aws/#\n"
    )
}

/// The mosquitto binary: `ANPR_MOSQUITTO`, else `/usr/sbin/mosquitto`, else `mosquitto` on PATH.
pub fn mosquitto_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ANPR_MOSQUITTO") {
        return p.into();
    }
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    if sbin.exists() {
        return sbin;
    }
    PathBuf::from("mosquitto")
}

/// The subject CN of the brokers' throw-away CAs.
pub const TEST_CA: &str = "anpr test CA";

/// A running Mosquitto with TLS client auth, the IoT-like ACL and persistence.
#[derive(Debug)]
pub struct Broker {
    /// The camera endpoint: TLS port on 127.0.0.1 (camera CA; client id forced to the CN).
    pub port: u16,
    /// The cloud endpoint: TLS port on 127.0.0.1 for [`CLOUD_IDENTITY`] (cloud CA).
    pub cloud_port: u16,
    /// The CA of the cameras (and of the broker's server certificate) and its identities.
    pub pki: Pki,
    /// The CA of the cloud side, trusted on [`Broker::cloud_port`] only.
    cloud_pki: Pki,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Messages queued per client beyond those in flight (`max_queued_messages`; 0: no limit).
    max_queued: u32,
}

impl Broker {
    /// Starts a broker on a free port. Panics (failing the test) if Mosquitto is missing.
    pub fn start() -> Self {
        Self::start_with_max_queued(10_000)
    }

    /// Like [`Broker::start`] with another per-client queue limit (0: none). Above the limit
    /// Mosquitto drops QoS 1 messages for that client: the fleet simulator's cloud session
    /// stands in for IoT rules, which queue nothing of the kind, so it starts with none.
    pub fn start_with_max_queued(max_queued: u32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("anpr-broker-")
            .tempdir()
            .expect("tempdir");
        // Mosquitto started as root drops to its own user; let it read and write here.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777));
        }
        let pki = Pki::open(dir.path(), TEST_CA).expect("camera CA");
        let cloud_pki = Pki::open(&dir.path().join("cloud"), TEST_CA).expect("cloud CA");
        let mut b = Self {
            port: crate::free_port(),
            cloud_port: crate::free_port(),
            pki,
            cloud_pki,
            dir,
            child: None,
            max_queued,
        };
        // Another process may take a port between its pick and Mosquitto's bind: pick again.
        for attempt in 1.. {
            b.configure();
            match b.try_spawn() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("Address already in use") => {
                    b.port = crate::free_port();
                    b.cloud_port = crate::free_port();
                }
                Err(log) => panic!("{log}"),
            }
        }
        b
    }

    /// Writes the ACL and the configuration for the current ports.
    fn configure(&self) {
        std::fs::write(self.dir.path().join("acl"), acl()).expect("write acl");
        let d = self.dir.path().display();
        let (port, cloud_port, max_queued) = (self.port, self.cloud_port, self.max_queued);
        let conf = format!(
            "per_listener_settings false\n\
             allow_anonymous false\n\
             persistence true\n\
             persistence_location {d}/\n\
             autosave_interval 1\n\
             max_queued_messages {max_queued}\n\
             max_inflight_messages 20\n\
             message_size_limit 131072\n\
             acl_file {d}/acl\n\
             log_dest file {d}/mosquitto.log\n\
             log_type all\n\
             listener {port} 127.0.0.1\n\
             cafile {d}/ca.pem\n\
             certfile {d}/server.pem\n\
             keyfile {d}/server.key\n\
             require_certificate true\n\
             use_identity_as_username true\n\
             use_username_as_clientid true\n\
             listener {cloud_port} 127.0.0.1\n\
             cafile {d}/cloud/ca.pem\n\
             certfile {d}/server.pem\n\
             keyfile {d}/server.key\n\
             require_certificate true\n\
             use_identity_as_username true\n"
        );
        std::fs::write(self.dir.path().join("mosquitto.conf"), conf).expect("write conf");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // What Mosquitto reads, readable by its user (the server key included); the CA's
            // key stays owner-only.
            for e in std::fs::read_dir(self.dir.path()).expect("list").flatten() {
                if e.file_name() != "ca.key" {
                    let _ =
                        std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o644));
                }
            }
            let _ = std::fs::set_permissions(
                self.dir.path().join("cloud"),
                std::fs::Permissions::from_mode(0o755),
            );
        }
    }

    fn spawn(&mut self) {
        if let Err(log) = self.try_spawn() {
            panic!("{log}");
        }
    }

    /// Starts Mosquitto and waits until both listeners accept; on an early exit, the error
    /// names the status and carries the log.
    fn try_spawn(&mut self) -> Result<(), String> {
        let conf = self.dir.path().join("mosquitto.conf");
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start mosquitto ({}): {e}; run the tests through scripts/test",
                    mosquitto_bin().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", self.cloud_port)).is_err()
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "mosquitto exited with {status}; log:\n{}",
                    self.log()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the broker gracefully (SIGTERM: it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops and starts again on the same port with the same persistence.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Issues a client identity (certificate CN = `cn`): [`CLOUD_IDENTITY`] from the cloud CA
    /// (for [`Broker::cloud_port`]), any other name from the camera CA.
    pub fn identity(&self, cn: &str) -> ClientIdentity {
        let pki = if cn == CLOUD_IDENTITY {
            &self.cloud_pki
        } else {
            &self.pki
        };
        pki.issue(cn).expect("client certificate")
    }

    /// The endpoint `id` connects to: the cloud's for [`CLOUD_IDENTITY`], else the cameras'.
    pub fn port_for(&self, id: &ClientIdentity) -> u16 {
        if id.cn == CLOUD_IDENTITY {
            self.cloud_port
        } else {
            self.port
        }
    }

    /// The broker's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// The CA certificate PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.pki.ca_path()).expect("read CA")
    }

    /// rumqttc MQTT 5 options for `id` (client id = CN) on its endpoint, TLS with its
    /// certificate.
    pub fn v5_options(&self, id: &ClientIdentity) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(&id.cn, "localhost", self.port_for(id));
        o.set_transport(rumqttc::Transport::tls_with_config(self.tls(id)));
        o.set_keep_alive(Duration::from_secs(30));
        // Messages up to the broker's 128 KiB (AWS IoT's limit); rumqttc's default is 10 KiB.
        o.set_max_packet_size(Some(256 * 1024));
        o
    }

    /// rumqttc MQTT 3.1.1 options for `id`.
    pub fn v4_options(&self, id: &ClientIdentity) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(&id.cn, "localhost", self.port_for(id));
        o.set_transport(rumqttc::Transport::tls_with_config(self.tls(id)));
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    fn tls(&self, id: &ClientIdentity) -> rumqttc::TlsConfiguration {
        crate::init_crypto();
        rumqttc::TlsConfiguration::Simple {
            ca: self.ca_pem(),
            alpn: None,
            client_auth: Some((
                id.cert_pem().expect("read client cert"),
                id.key_pem().expect("read client key"),
            )),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
