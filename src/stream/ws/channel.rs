//! Kubernetes channel framing over WebSocket messages.
//!
//! Checked against kubernetes/kubernetes sources:
//!
//! * `apimachinery/pkg/util/httpstream/wsstream/conn.go`: `channel.k8s.io` prefixes each
//!   binary message with one channel byte, both ways; `base64.channel.k8s.io` sends the
//!   char `'0'+n` then standard padded base64. A connection without a subprotocol is
//!   binary. Empty messages and unknown channels are ignored. The close signal
//!   `[255, channel]` is honoured only for `v5.channel.k8s.io`; another length ends the
//!   connection.
//! * `apimachinery/pkg/util/remotecommand/constants.go`: stdin 0, stdout 1, stderr 2,
//!   error 3, resize 4, `StreamClose` 255; v4 "adds support for exit codes", v5 "adds
//!   support for a CLOSE signal".
//! * kubelet `cri/streaming/remotecommand/websocket.go`: exec/attach over WebSocket accepts
//!   `""`, `channel.k8s.io`, `base64.channel.k8s.io`, `v4.channel.k8s.io`,
//!   `v4.base64.channel.k8s.io`; right after the upgrade it writes one empty message on
//!   the lowest writable channel (stdout, else stderr, else error). v4 writes
//!   `metav1.Status` JSON on the error channel, v1 the plain error text (none on success).
//! * apiserver `util/proxy/websocket.go`: kube-apiserver's WebSocket exec server speaks
//!   only `v5.channel.k8s.io`. client-go `tools/remotecommand/websocket.go` asks for v5,
//!   rejects text messages, sends `[255, id]` when it closes a stream, pings every 5 s.
//!   Resize is JSON `{"Width":W,"Height":H}` (Go `TerminalSize`, no json tags).
//! * `v5.base64.channel.k8s.io` is not defined upstream: offered here as an extension,
//!   its close signal is the binary message `[255, channel]`.
//! * kubelet `cri/streaming/portforward/websocket.go`: port-forward accepts `""`,
//!   `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`; ports come from the repeated,
//!   comma-separated `ports` query parameter; port i has data channel 2i and error channel
//!   2i+1 (server-to-client only); the server first writes the port, u16 little-endian,
//!   on both; a failure is plain text on the error channel. `portforward.k8s.io` and
//!   `v2.portforward.k8s.io` are SPDY names (`X-Stream-Protocol-Version`);
//!   `SPDY/3.1+portforward.k8s.io` is the apiserver's SPDY-in-WebSocket tunnel (KEP-4006).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use super::{Message, WsError};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Exec/attach result: `metav1.Status` JSON (v4, v5) or plain text (v1).
pub const ERROR: u8 = 3;
/// Terminal size JSON `{"Width":W,"Height":H}`.
pub const RESIZE: u8 = 4;
/// First byte of the v5 stream-close signal `[255, channel]`.
pub const CLOSE_SIGNAL: u8 = 255;

/// Exec/attach subprotocols in server preference order.
pub const EXEC_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v5.base64.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// Port-forward subprotocols (kubelet WebSocket port-forward) in preference order.
pub const PORTFORWARD_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v4.base64.channel.k8s.io"];

/// The apiserver's SPDY-over-WebSocket port-forward tunnel; not this framing.
pub const PORTFORWARD_SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// How payloads travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Binary message: channel byte + raw payload.
    Binary,
    /// Text message: `'0'+channel` + base64 of the payload.
    Base64,
}

/// A negotiated channel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    pub kind: Kind,
    /// 1 (unversioned), 4 or 5.
    pub version: u8,
}

const NAMES: [(&str, Kind, u8); 6] = [
    ("v5.channel.k8s.io", Kind::Binary, 5),
    ("v4.channel.k8s.io", Kind::Binary, 4),
    ("channel.k8s.io", Kind::Binary, 1),
    ("v5.base64.channel.k8s.io", Kind::Base64, 5),
    ("v4.base64.channel.k8s.io", Kind::Base64, 4),
    ("base64.channel.k8s.io", Kind::Base64, 1),
];

impl Protocol {
    /// Parses a subprotocol name; `""` (none negotiated) is `channel.k8s.io`.
    pub fn parse(name: &str) -> Option<Protocol> {
        let name = match name.trim() {
            "" => "channel.k8s.io",
            n => n,
        };
        NAMES
            .iter()
            .find(|e| e.0 == name)
            .map(|&(_, kind, version)| Protocol { kind, version })
    }

    /// The subprotocol name (versions other than 4 and 5 read as unversioned).
    pub fn name(&self) -> &'static str {
        let version = if matches!(self.version, 4 | 5) { self.version } else { 1 };
        NAMES
            .iter()
            .find(|e| e.1 == self.kind && e.2 == version)
            .map_or("channel.k8s.io", |e| e.0)
    }

    /// Whether the client may send the `[255, channel]` close signal (v5).
    pub fn supports_close(&self) -> bool {
        self.version >= 5
    }

    /// Whether the error channel carries `metav1.Status` JSON (v4, v5).
    pub fn status_json(&self) -> bool {
        self.version >= 4
    }
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Data {
        channel: u8,
        data: Bytes,
    },
    /// v5: the client closed its side of `channel` (e.g. stdin EOF).
    Close {
        channel: u8,
    },
}

fn data(channel: u8, data: Bytes) -> Inbound {
    Inbound::Data { channel, data }
}

/// Frames `data` for `channel`.
pub fn encode(p: &Protocol, channel: u8, data: &[u8]) -> Message {
    match p.kind {
        Kind::Binary => {
            let mut b = BytesMut::with_capacity(data.len() + 1);
            b.put_u8(channel);
            b.put_slice(data);
            Message::Binary(b.freeze())
        }
        Kind::Base64 => {
            // Go: string('0'+num) with byte arithmetic, then the rune of that byte.
            let mut s = String::with_capacity(2 + data.len().div_ceil(3) * 4);
            s.push(char::from(b'0'.wrapping_add(channel)));
            STANDARD.encode_string(data, &mut s);
            Message::Text(s)
        }
    }
}

/// Decodes a client message. Errors (empty message, bad base64, malformed
/// close signal) are per message: Kubernetes drops such messages, except a
/// malformed close signal, on which it ends the connection.
pub fn decode(p: &Protocol, m: &Message) -> Result<Inbound, WsError> {
    let raw: &[u8] = match m {
        Message::Binary(b) => b,
        Message::Text(s) => s.as_bytes(),
    };
    if raw.is_empty() {
        return Err(WsError::Channel("empty message".into()));
    }
    if p.supports_close() && raw[0] == CLOSE_SIGNAL {
        return match raw {
            [_, channel] => Ok(Inbound::Close { channel: *channel }),
            _ => Err(WsError::Channel(format!("close signal of {} bytes", raw.len()))),
        };
    }
    match (p.kind, m) {
        (Kind::Binary, Message::Binary(b)) => Ok(data(b[0], b.slice(1..))),
        (Kind::Binary, Message::Text(_)) => Ok(data(raw[0], Bytes::copy_from_slice(&raw[1..]))),
        (Kind::Base64, _) => {
            let text = std::str::from_utf8(raw).map_err(|_| WsError::Channel("base64 message not UTF-8".into()))?;
            let mut chars = text.chars();
            let first = chars.next().map_or(0, u32::from);
            let bad_channel = |_| WsError::Channel("bad channel character".into());
            let channel = u8::try_from(first).map_err(bad_channel)?.wrapping_sub(b'0');
            let bad = |e| WsError::Channel(format!("bad base64 payload: {e}"));
            Ok(data(channel, STANDARD.decode(chars.as_str()).map_err(bad)?.into()))
        }
    }
}

/// The first message on each port-forward channel: the port, little-endian.
pub fn port_prefix(port: u16) -> [u8; 2] {
    port.to_le_bytes()
}

/// `(data, error)` channels of the port at `index` in the `ports` list.
pub fn port_channels(index: usize) -> Option<(u8, u8)> {
    let data = u8::try_from(index.checked_mul(2)?).ok()?;
    Some((data, data.checked_add(1)?))
}

/// Ports from a raw query string: every `ports=` parameter, comma-separated,
/// each 1..=65535 (as the kubelet's `NewV4Options`). At least one is required.
pub fn parse_ports(query: &str) -> Result<Vec<u16>, WsError> {
    let bad = |s: &str| WsError::Channel(format!("bad port {s:?}"));
    let mut ports = Vec::new();
    for value in query.split('&').filter_map(|kv| kv.strip_prefix("ports=")) {
        for p in value
            .split("%2C")
            .flat_map(|v| v.split("%2c"))
            .flat_map(|v| v.split(','))
        {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(bad(p)),
            }
        }
    }
    if ports.is_empty() {
        return Err(WsError::Channel("query parameter \"ports\" is required".into()));
    }
    if port_channels(ports.len() - 1).is_none() {
        return Err(WsError::Channel("too many ports for one connection".into()));
    }
    Ok(ports)
}

/// Parses a resize message `{"Width":W,"Height":H}`. Keys match
/// case-insensitively and missing ones are 0, like Go's `encoding/json`;
/// other keys with scalar values are skipped. `None` if malformed.
pub fn parse_resize(data: &[u8]) -> Option<(u16, u16)> {
    let text = std::str::from_utf8(data).ok()?.trim();
    let body = text.strip_prefix('{')?.strip_suffix('}')?;
    let (mut width, mut height) = (0u16, 0u16);
    for field in body.split(',').filter(|f| !f.trim().is_empty()) {
        let (key, value) = field.split_once(':')?;
        let key = key.trim().strip_prefix('"')?.strip_suffix('"')?;
        let value = value.trim();
        if key.eq_ignore_ascii_case("width") {
            width = value.parse().ok()?;
        } else if key.eq_ignore_ascii_case("height") {
            height = value.parse().ok()?;
        } else if value.starts_with('{') || value.starts_with('[') {
            return None;
        }
    }
    Some((width, height))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => out.extend(['\\', c]),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Error-channel payload for a finished command, as the kubelet writes it:
/// v4/v5 always send Status JSON (`NonZeroExitCode` with an `ExitCode` cause
/// when `code != 0`); v1 sends nothing on success and the message otherwise.
pub fn exit_status(p: &Protocol, code: i32) -> Option<Vec<u8>> {
    if code == 0 {
        return p
            .status_json()
            .then(|| br#"{"metadata":{},"status":"Success"}"#.to_vec());
    }
    let message = format!("command terminated with non-zero exit code: exit status {code}");
    if !p.status_json() {
        return Some(message.into_bytes());
    }
    let (message, cause) = (
        json_string(&message),
        format!(r#"{{"reason":"ExitCode","message":"{code}"}}"#),
    );
    let reason = r#""reason":"NonZeroExitCode""#;
    let json = format!(
        r#"{{"metadata":{{}},"status":"Failure","message":{message},{reason},"details":{{"causes":[{cause}]}}}}"#
    );
    Some(json.into_bytes())
}

/// Error-channel payload for a failure to run the command (`NewInternalError`).
pub fn error_status(p: &Protocol, error: &str) -> Vec<u8> {
    let message = format!("Internal error occurred: {error}");
    if !p.status_json() {
        return message.into_bytes();
    }
    let (message, cause) = (json_string(&message), json_string(error));
    let details = format!(r#""details":{{"causes":[{{"message":{cause}}}]}}"#);
    format!(
        r#"{{"metadata":{{}},"status":"Failure","message":{message},"reason":"InternalError",{details},"code":500}}"#
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(name: &str) -> Protocol {
        Protocol::parse(name).expect("known protocol")
    }

    fn dec(p: &Protocol, raw: &'static [u8]) -> Result<Inbound, WsError> {
        decode(p, &Message::Binary(Bytes::from_static(raw)))
    }

    #[test]
    fn names_round_trip() {
        for name in EXEC_PROTOCOLS.iter().chain(PORTFORWARD_PROTOCOLS) {
            assert_eq!(proto(name).name(), *name);
        }
        assert_eq!(
            Protocol::parse(""),
            Some(Protocol {
                kind: Kind::Binary,
                version: 1
            })
        );
        assert_eq!(Protocol::parse("v3.channel.k8s.io"), None);
        assert_eq!(Protocol::parse(PORTFORWARD_SPDY_TUNNEL), None);
    }

    #[test]
    fn round_trips_every_protocol() {
        let cases: [(u8, &[u8]); 4] = [(STDOUT, b"hello\n"), (STDIN, b""), (RESIZE, b"\x00\xff\x10"), (9, b"x")];
        for p in EXEC_PROTOCOLS.iter().map(|n| proto(n)) {
            for (ch, payload) in cases {
                let m = encode(&p, ch, payload);
                assert_eq!(matches!(m, Message::Text(_)), p.kind == Kind::Base64);
                let got = decode(&p, &m).expect("decodes");
                assert_eq!(got, data(ch, Bytes::copy_from_slice(payload)), "{}", p.name());
            }
        }
    }

    #[test]
    fn wire_examples_from_wsstream_docs() {
        let (bin, b64) = (proto("channel.k8s.io"), proto("base64.channel.k8s.io"));
        assert_eq!(encode(&bin, 1, b"\n"), Message::Binary(Bytes::from_static(&[1, 10])));
        assert_eq!(encode(&b64, 1, b"\n"), Message::Text("1Cg==".into()));
        let stdin = decode(&b64, &Message::Text("0Zm9vCg==".into())).expect("ok");
        assert_eq!(stdin, data(0, Bytes::from_static(b"foo\n")));
        // Channel 12 in base64 framing is the character '<'.
        assert_eq!(encode(&b64, 12, b""), Message::Text("<".into()));
    }

    #[test]
    fn base64_decode_errors() {
        let p = proto("v4.base64.channel.k8s.io");
        for bad in ["0Zm9v!", "0Zm9", "", "1====", "\u{1F600}AA=="] {
            let res = decode(&p, &Message::Text(bad.into()));
            assert!(matches!(res, Err(WsError::Channel(_))), "{bad:?}");
        }
        assert!(dec(&p, &[0xff, 0xfe]).is_err());
    }

    #[test]
    fn v5_close_signal() {
        let v5 = proto("v5.channel.k8s.io");
        assert_eq!(dec(&v5, &[255, 0]).expect("ok"), Inbound::Close { channel: STDIN });
        assert!(dec(&v5, &[255]).is_err());
        assert!(dec(&v5, &[255, 0, 1]).is_err());
        let v5b64 = proto("v5.base64.channel.k8s.io");
        assert_eq!(dec(&v5b64, &[255, 2]).expect("ok"), Inbound::Close { channel: STDERR });
        // Before v5, 255 is just a channel number.
        let v4 = proto("v4.channel.k8s.io");
        assert_eq!(dec(&v4, &[255, 0]).expect("ok"), data(255, Bytes::from_static(&[0])));
        assert!(dec(&v4, &[]).is_err());
    }

    #[test]
    fn port_forward_helpers() {
        assert_eq!(
            (port_prefix(80), port_prefix(8080), port_prefix(65535)),
            ([0x50, 0], [0x90, 0x1f], [0xff, 0xff])
        );
        assert_eq!((port_channels(0), port_channels(1)), (Some((0, 1)), Some((2, 3))));
        assert_eq!((port_channels(127), port_channels(128)), (Some((254, 255)), None));
        assert_eq!(
            parse_ports("ports=80,8080&x=1&ports=443").expect("ok"),
            vec![80, 8080, 443]
        );
        assert_eq!(parse_ports("ports=80%2C81").expect("ok"), vec![80, 81]);
        for bad in ["", "x=1", "ports=", "ports=0", "ports=70000", "ports=a"] {
            assert!(parse_ports(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resize_json() {
        assert_eq!(parse_resize(br#"{"Width":80,"Height":24}"#), Some((80, 24)));
        assert_eq!(parse_resize(br#" { "height" : 50 , "width": 132 } "#), Some((132, 50)));
        assert_eq!(parse_resize(br#"{"Width":80}"#), Some((80, 0)));
        assert_eq!(parse_resize(b"{}"), Some((0, 0)));
        assert_eq!(parse_resize(br#"{"Width":-1,"Height":2}"#), None);
        assert_eq!(parse_resize(b"80x24"), None);
    }

    #[test]
    fn status_payloads() {
        let (v4, v1) = (proto("v4.channel.k8s.io"), proto("channel.k8s.io"));
        assert_eq!(
            exit_status(&v4, 0).expect("some"),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(exit_status(&v1, 0), None);
        let failed = String::from_utf8(exit_status(&v4, 3).expect("some")).expect("utf8");
        let want = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(failed, want);
        let plain = exit_status(&v1, 3).expect("some");
        assert_eq!(plain, b"command terminated with non-zero exit code: exit status 3");
        let err = String::from_utf8(error_status(&v4, "no \"sh\"\n")).expect("utf8");
        let want = r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: no \"sh\"\n","reason":"InternalError","details":{"causes":[{"message":"no \"sh\"\n"}]},"code":500}"#;
        assert_eq!(err, want);
    }
}
