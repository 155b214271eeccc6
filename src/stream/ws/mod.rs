//! Server side of WebSocket (RFC 6455) for Kubernetes streaming, plus the
//! Kubernetes channel framing (`channel.k8s.io` family).
//!
//! The HTTP upgrade itself is the caller's: [`is_upgrade`] and
//! [`parse_upgrade`] look at the request headers, [`choose_protocol`] picks the
//! subprotocol and [`response_headers`] gives the headers of the `101
//! Switching Protocols` answer. Once the connection is upgraded, [`serve`]
//! runs the framing over the raw byte stream.
//!
//! Modules: `frame` (wire format), `conn` (reader/writer over a stream),
//! `channel` (Kubernetes channel protocols and port-forward framing).

pub mod channel;
pub mod conn;
pub mod frame;

pub use conn::{serve, Message, Options, WsReader, WsWriter};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 section 1.3, appended to `Sec-WebSocket-Key`.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The only protocol version RFC 6455 defines (`Sec-WebSocket-Version`).
pub const WS_VERSION: &str = "13";

/// Close status codes (RFC 6455 section 7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
/// The endpoint is going away (also used for the idle timeout).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// The peer broke the protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A text message was not valid UTF-8.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// A frame or message exceeded the configured maximum.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// The server hit an unexpected condition.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Errors of the WebSocket layer and of the channel framing.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The peer violated RFC 6455 (close code 1002).
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    /// A frame or reassembled message exceeded `max_message` (close code 1009).
    #[error("websocket message larger than {0} bytes")]
    TooBig(usize),
    /// A text message or close reason was not UTF-8 (close code 1007).
    #[error("invalid UTF-8 in websocket text")]
    InvalidUtf8,
    /// Nothing was received for the idle timeout (close code 1001).
    #[error("websocket idle timeout")]
    IdleTimeout,
    /// The upgrade request is not an acceptable WebSocket handshake.
    #[error("bad websocket handshake: {0}")]
    Handshake(&'static str),
    /// A message did not follow the Kubernetes channel framing.
    #[error("bad channel message: {0}")]
    Channel(String),
    /// The underlying stream failed.
    #[error("websocket i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl WsError {
    /// The close code this error is reported to the peer with, if any.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            WsError::Protocol(_) | WsError::Channel(_) => Some(CLOSE_PROTOCOL_ERROR),
            WsError::TooBig(_) => Some(CLOSE_TOO_BIG),
            WsError::InvalidUtf8 => Some(CLOSE_INVALID_DATA),
            WsError::IdleTimeout => Some(CLOSE_GOING_AWAY),
            WsError::Handshake(_) | WsError::Io(_) => None,
        }
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_key(sec_websocket_key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(sec_websocket_key.trim().as_bytes());
    sha.update(WS_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Picks the first protocol of the server's preference list `supported` that
/// the client offered. `offered` is the `Sec-WebSocket-Protocol` value; several
/// header lines may be joined with commas. Tokens compare exactly, as in
/// Kubernetes' `wsstream` handshake. `None` when nothing matches (including an
/// empty offer: Kubernetes then treats the connection as `channel.k8s.io`, see
/// `channel::Protocol::parse("")`).
pub fn choose_protocol<'a>(offered: &str, supported: &[&'a str]) -> Option<&'a str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    supported.iter().copied().find(|s| offered.contains(s))
}

fn has_token(value: &str, token: &str) -> bool {
    value.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether the headers ask for a WebSocket upgrade: `Upgrade: websocket` and a
/// `Connection` header listing `upgrade` (both case-insensitive), the same test
/// as Kubernetes' `wsstream.IsWebSocketRequest`.
pub fn is_upgrade<'a, I>(headers: I) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let (mut upgrade, mut connection) = (false, false);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("upgrade") && has_token(value, "websocket") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case("connection") && has_token(value, "upgrade") {
            connection = true;
        }
    }
    upgrade && connection
}

/// What the server needs from a valid upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The `Sec-WebSocket-Key` as sent.
    pub key: String,
    /// Every `Sec-WebSocket-Protocol` header value, joined with `", "`; feed to
    /// [`choose_protocol`].
    pub protocols: String,
}

/// Checks an upgrade request (RFC 6455 section 4.2.1: `Upgrade`/`Connection`,
/// `Sec-WebSocket-Version: 13`, a key that is base64 of 16 bytes). On a version
/// mismatch the caller should answer `426 Upgrade Required` with
/// `Sec-WebSocket-Version: 13`; on other errors `400 Bad Request`. The method
/// (`GET`) is the caller's to check.
pub fn parse_upgrade<'a, I>(headers: I) -> Result<Upgrade, WsError>
where
    I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
{
    if !is_upgrade(headers.clone()) {
        return Err(WsError::Handshake("not a websocket upgrade"));
    }
    let (mut key, mut version, mut protocols) = (None, None, Vec::new());
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value.trim());
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(value.trim());
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocols.push(value.trim());
        }
    }
    if version != Some(WS_VERSION) {
        return Err(WsError::Handshake("unsupported Sec-WebSocket-Version"));
    }
    let key = key.ok_or(WsError::Handshake("missing Sec-WebSocket-Key"))?;
    match STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(WsError::Handshake("malformed Sec-WebSocket-Key")),
    }
    Ok(Upgrade {
        key: key.to_string(),
        protocols: protocols.join(", "),
    })
}

/// Headers of the `101 Switching Protocols` response (the status line is the
/// caller's). `protocol` is the subprotocol chosen, if any.
pub fn response_headers(key: &str, protocol: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("Upgrade", "websocket".to_string()),
        ("Connection", "Upgrade".to_string()),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ];
    if let Some(p) = protocol {
        headers.push(("Sec-WebSocket-Protocol", p.to_string()));
    }
    headers
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_rfc_example() {
        // RFC 6455 section 1.3 (also checked with Python hashlib + base64).
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn choose_protocol_uses_server_preference() {
        let supported = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];
        assert_eq!(
            choose_protocol("channel.k8s.io, v4.channel.k8s.io", &supported),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(
            choose_protocol("v4.channel.k8s.io,v5.channel.k8s.io", &supported),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(choose_protocol(" channel.k8s.io ", &supported), Some("channel.k8s.io"));
        assert_eq!(choose_protocol("V5.CHANNEL.K8S.IO", &supported), None);
        assert_eq!(choose_protocol("", &supported), None);
        assert_eq!(choose_protocol("x.k8s.io", &supported), None);
    }

    fn request<'a>(version: &'a str, key: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("Host", "node"),
            ("upgrade", "WebSocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Version", version),
            ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"),
            ("sec-websocket-protocol", "v4.channel.k8s.io, channel.k8s.io"),
        ]
    }

    #[test]
    fn upgrade_detection_and_parsing() {
        let req = request("13", "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(is_upgrade(req.iter().copied()));
        let up = parse_upgrade(req.iter().copied()).expect("valid");
        assert_eq!(up.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(up.protocols, "v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io");
        assert_eq!(
            choose_protocol(&up.protocols, channel::EXEC_PROTOCOLS),
            Some("v5.channel.k8s.io")
        );

        let bad_version = request("8", "dGhlIHNhbXBsZSBub25jZQ==");
        assert!(matches!(
            parse_upgrade(bad_version.iter().copied()),
            Err(WsError::Handshake(_))
        ));
        let bad_key = request("13", "c2hvcnQ=");
        assert!(matches!(
            parse_upgrade(bad_key.iter().copied()),
            Err(WsError::Handshake(_))
        ));
        let plain = [("Connection", "keep-alive"), ("Upgrade", "websocket")];
        assert!(!is_upgrade(plain.iter().copied()));
        assert!(!is_upgrade([("Connection", "upgrade"), ("Upgrade", "h2c")]));
    }

    #[test]
    fn response_has_accept_and_protocol() {
        let h = response_headers("dGhlIHNhbXBsZSBub25jZQ==", Some("v4.channel.k8s.io"));
        assert!(h.contains(&("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string())));
        assert!(h.contains(&("Sec-WebSocket-Protocol", "v4.channel.k8s.io".to_string())));
        assert_eq!(response_headers("k", None).len(), 3);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod conn_tests;
