//! The one MQTT session to AWS IoT Core: options for rumqttc built from the configuration.
//!
//! MQTT 5, TLS with the camera's certificate (ALPN `x-amzn-mqtt-ca` on port 443), client id =
//! thing name, persistent session (clean start off, session expiry), packets up to the 128 KiB
//! AWS allows, manual acknowledgements (a request is acknowledged only once journaled), and a
//! last will on the presence topic so the cloud sees the camera go offline.

use crate::config::{Config, MAX_PACKET};
use crate::machine::LinkDown;
use crate::tls::{self, TlsError};
use anpr_protocol::topics;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::LastWill;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode};
use rumqttc::v5::{ConnectionError, MqttOptions};
use std::sync::Arc;

/// Outgoing QoS 1 publishes in flight at once (AWS IoT Core allows 100 unacknowledged).
pub const MAX_OUTGOING_INFLIGHT: u16 = 32;

/// The ALPN protocol AWS IoT Core needs for MQTT on port 443.
pub const AWS_MQTT_ALPN: &[u8] = b"x-amzn-mqtt-ca";

/// Payload of the retained presence message (`anpr_protocol::Presence`): the last will and the
/// clean-stop message are `on: false`, the message sent on connect `on: true`.
pub fn presence_payload(on: bool) -> Vec<u8> {
    // A two-field message always encodes; the fallback is the same bytes, written out.
    anpr_protocol::encode(&anpr_protocol::Presence { on })
        .unwrap_or_else(|_| format!(r#"{{"v":1,"on":{on}}}"#).into_bytes())
}

/// The MQTT options could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS material was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Reads a file, naming it in the error.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, MqttSetupError> {
    std::fs::read(path).map_err(|source| MqttSetupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// rumqttc options for the configured session.
pub fn options(cfg: &Config) -> Result<MqttOptions, MqttSetupError> {
    let m = &cfg.mqtt;
    let alpn = m.alpn.then_some(AWS_MQTT_ALPN);
    let tls = tls::client_config(
        &read(&m.ca_file)?,
        &read(&m.cert_file)?,
        &read(&m.key_file)?,
        alpn,
    )?;
    let cam = cfg.camera();
    let mut o = MqttOptions::new(cam.as_str(), m.host.as_str(), m.port);
    o.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
    ));
    o.set_keep_alive(cfg.keep_alive());
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(m.session_expiry_secs));
    o.set_receive_maximum(Some(16));
    // rumqttc preallocates one slot per possible in-flight publish; its default (65 535 slots,
    // ~14 MB, touched at start) was most of the agent's idle memory. The agent has at most one
    // plate batch, a few statuses and a health report in flight.
    o.set_outgoing_inflight_upper_limit(MAX_OUTGOING_INFLIGHT);
    o.set_max_packet_size(Some(MAX_PACKET));
    o.set_manual_acks(true);
    o.set_connection_timeout(30);
    o.set_last_will(LastWill {
        topic: topics::presence(&cam).into(),
        message: presence_payload(false).into(),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: None,
    });
    Ok(o)
}

/// How a connection ended, for the reconnect rules: a CONNACK refusal or a DISCONNECT from the
/// broker that means "not allowed" or "slow down" is [`LinkDown::SlowDown`]; a connection that
/// had its CONNACK and was lost is [`LinkDown::Dropped`]; anything else [`LinkDown::Failed`].
pub fn link_down(
    err: &ConnectionError,
    was_up: bool,
    disconnect: Option<DisconnectReasonCode>,
) -> LinkDown {
    use ConnectReturnCode as C;
    use DisconnectReasonCode as D;
    let refused = matches!(
        err,
        ConnectionError::ConnectionRefused(
            C::NotAuthorized
                | C::BadUserNamePassword
                | C::Banned
                | C::QuotaExceeded
                | C::ConnectionRateExceeded
                | C::ServerBusy
                | C::ServerUnavailable
                | C::ServiceUnavailable
        )
    );
    let told_off = matches!(
        disconnect,
        Some(
            D::NotAuthorized
                | D::ServerBusy
                | D::QuotaExceeded
                | D::ConnectionRateExceeded
                | D::MessageRateTooHigh
                | D::AdministrativeAction
        )
    );
    if refused || told_off {
        LinkDown::SlowDown
    } else if was_up {
        LinkDown::Dropped
    } else {
        LinkDown::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_mean_slow_down_are_told_apart_from_plain_failures() {
        let refused = |c| ConnectionError::ConnectionRefused(c);
        for c in [
            ConnectReturnCode::NotAuthorized,
            ConnectReturnCode::QuotaExceeded,
            ConnectReturnCode::ConnectionRateExceeded,
            ConnectReturnCode::ServerBusy,
        ] {
            assert_eq!(link_down(&refused(c), false, None), LinkDown::SlowDown);
        }
        let io = || ConnectionError::Io(std::io::Error::other("reset"));
        assert_eq!(
            link_down(&refused(ConnectReturnCode::MalformedPacket), false, None),
            LinkDown::Failed
        );
        assert_eq!(link_down(&io(), false, None), LinkDown::Failed);
        assert_eq!(link_down(&io(), true, None), LinkDown::Dropped);
        assert_eq!(
            link_down(&io(), true, Some(DisconnectReasonCode::SessionTakenOver)),
            LinkDown::Dropped
        );
        assert_eq!(
            link_down(&io(), true, Some(DisconnectReasonCode::ServerBusy)),
            LinkDown::SlowDown
        );
    }
}
