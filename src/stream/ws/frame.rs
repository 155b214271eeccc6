//! RFC 6455 section 5 frame format: encode and incremental decode.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::WsError;

/// Largest payload of a control frame (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes (RFC 6455 section 5.2); the reserved ones are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, `None` for reserved values.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// One frame, payload already unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Bytes,
}

impl Frame {
    /// A final (unfragmented) frame.
    pub fn new(opcode: OpCode, payload: impl Into<Bytes>) -> Frame {
        Frame {
            fin: true,
            opcode,
            payload: payload.into(),
        }
    }
}

/// XORs `data` with `mask` (RFC 6455 section 5.3); masking and unmasking are the same.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends the header of a frame to `dst`: FIN, opcode, the shortest of the
/// 7/16/64-bit length forms, and the masking key when `mask` is given.
pub fn encode_header(dst: &mut BytesMut, fin: bool, opcode: OpCode, len: usize, mask: Option<[u8; 4]>) {
    dst.put_u8(if fin { 0x80 } else { 0 } | opcode.as_u8());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len <= 125 {
        dst.put_u8(mask_bit | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        dst.put_u8(mask_bit | 126);
        dst.put_u16(len16);
    } else {
        dst.put_u8(mask_bit | 127);
        dst.put_u64(len as u64);
    }
    if let Some(m) = mask {
        dst.put_slice(&m);
    }
}

/// Appends a whole frame to `dst`. Servers pass `mask: None`; clients (tests) a key.
pub fn encode(frame: &Frame, mask: Option<[u8; 4]>, dst: &mut BytesMut) {
    encode_header(dst, frame.fin, frame.opcode, frame.payload.len(), mask);
    let start = dst.len();
    dst.put_slice(&frame.payload);
    if let Some(m) = mask {
        apply_mask(&mut dst[start..], m);
    }
}

/// Decodes one frame from the front of `src`, consuming it; `Ok(None)` when
/// more bytes are needed. `from_client` selects the role of the peer: frames
/// from a client must be masked, frames from a server must not be
/// (RFC 6455 section 5.1). A payload longer than `max_payload` fails with
/// [`WsError::TooBig`] as soon as the header is read, before it is buffered.
pub fn decode(src: &mut BytesMut, max_payload: usize, from_client: bool) -> Result<Option<Frame>, WsError> {
    if src.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (src[0], src[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::Protocol("reserved bits set without a negotiated extension"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(WsError::Protocol("reserved opcode"))?;
    let masked = b1 & 0x80 != 0;
    if masked != from_client {
        return Err(WsError::Protocol(if from_client {
            "client frame not masked"
        } else {
            "server frame masked"
        }));
    }
    let (len, mut header) = match b1 & 0x7F {
        126 if src.len() < 4 => return Ok(None),
        126 => (u64::from(u16::from_be_bytes([src[2], src[3]])), 4),
        127 if src.len() < 10 => return Ok(None),
        127 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&src[2..10]);
            (u64::from_be_bytes(raw), 10)
        }
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(WsError::Protocol("64-bit payload length with the top bit set"));
    }
    if opcode.is_control() {
        if !fin {
            return Err(WsError::Protocol("fragmented control frame"));
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(WsError::Protocol("control frame payload over 125 bytes"));
        }
    }
    let len = match usize::try_from(len) {
        Ok(l) if l <= max_payload => l,
        _ => return Err(WsError::TooBig(max_payload)),
    };
    let mask = if masked {
        if src.len() < header + 4 {
            return Ok(None);
        }
        let m = [src[header], src[header + 1], src[header + 2], src[header + 3]];
        header += 4;
        Some(m)
    } else {
        None
    };
    if src.len() < header + len {
        src.reserve(header + len - src.len());
        return Ok(None);
    }
    src.advance(header);
    let mut payload = src.split_to(len);
    if let Some(m) = mask {
        apply_mask(&mut payload, m);
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload: payload.freeze(),
    }))
}

/// Whether `code` may appear in a close frame on the wire (RFC 6455 section 7.4).
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// Close frame payload: 2-byte big-endian code and a UTF-8 reason, cut (on a
/// character boundary) so the payload stays within 125 bytes.
pub fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut b = BytesMut::with_capacity(2 + end);
    b.put_u16(code);
    b.put_slice(&reason.as_bytes()[..end]);
    b.freeze()
}

/// Parses a close payload: `None` for an empty one, else code and reason.
/// A 1-byte payload or a code not allowed on the wire is a protocol error, a
/// reason that is not UTF-8 is [`WsError::InvalidUtf8`].
pub fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::Protocol("close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) {
                return Err(WsError::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some((code, reason.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], from_client: bool) -> Result<Option<Frame>, WsError> {
        decode(&mut BytesMut::from(bytes), 1 << 20, from_client)
    }

    fn enc(frame: &Frame, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode(frame, mask, &mut b);
        b.to_vec()
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn rfc_5_7_examples() {
        // Single-frame unmasked text message "Hello" (server to client).
        let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(enc(&Frame::new(OpCode::Text, "Hello"), None), unmasked);
        assert_eq!(
            dec(&unmasked, false).expect("ok"),
            Some(Frame::new(OpCode::Text, "Hello"))
        );
        // Single-frame masked text message "Hello" (client to server).
        let masked = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(enc(&Frame::new(OpCode::Text, "Hello"), Some(MASK)), masked);
        assert_eq!(dec(&masked, true).expect("ok"), Some(Frame::new(OpCode::Text, "Hello")));
        // Fragmented unmasked text message "Hel" + "lo".
        let mut two = BytesMut::from(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f][..]);
        let first = decode(&mut two, 100, false).expect("ok").expect("frame");
        assert_eq!(
            (first.fin, first.opcode, &first.payload[..]),
            (false, OpCode::Text, &b"Hel"[..])
        );
        let second = decode(&mut two, 100, false).expect("ok").expect("frame");
        assert_eq!(
            (second.fin, second.opcode, &second.payload[..]),
            (true, OpCode::Continuation, &b"lo"[..])
        );
        assert!(two.is_empty());
        // Unmasked ping "Hello" and masked pong "Hello".
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(dec(&ping, false).expect("ok"), Some(Frame::new(OpCode::Ping, "Hello")));
        let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(dec(&pong, true).expect("ok"), Some(Frame::new(OpCode::Pong, "Hello")));
    }

    #[test]
    fn sixteen_and_sixty_four_bit_lengths() {
        // RFC 5.7: 256 bytes binary in a single unmasked frame: 0x82 0x7E 0x0100.
        let f256 = Frame::new(OpCode::Binary, vec![7u8; 256]);
        let wire = enc(&f256, None);
        assert_eq!(&wire[..4], &[0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(dec(&wire, false).expect("ok"), Some(f256));
        // RFC 5.7: 64 KiB binary: 0x82 0x7F 0x0000000000010000.
        let f64k = Frame::new(OpCode::Binary, vec![9u8; 65536]);
        let wire = enc(&f64k, Some(MASK));
        assert_eq!(&wire[..10], &[0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(dec(&wire, true).expect("ok"), Some(f64k));
        // 125 is the largest 7-bit length, 65535 the largest 16-bit one.
        assert_eq!(enc(&Frame::new(OpCode::Binary, vec![0u8; 125]), None)[1], 125);
        assert_eq!(enc(&Frame::new(OpCode::Binary, vec![0u8; 65535]), None)[1], 126);
    }

    #[test]
    fn incremental_decode_waits_for_bytes() {
        let wire = enc(&Frame::new(OpCode::Binary, vec![1u8; 300]), Some(MASK));
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            assert_eq!(decode(&mut buf, 1000, true).expect("ok"), None, "byte {i}");
            buf.put_u8(*b);
        }
        let f = decode(&mut buf, 1000, true).expect("ok").expect("frame");
        assert_eq!(f.payload.len(), 300);
    }

    #[test]
    fn protocol_violations() {
        let errs: [(&[u8], bool); 8] = [
            (&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o'], true), // client frame unmasked
            (&[0x81, 0x80, 0, 0, 0, 0], false),                  // server frame masked
            (&[0xC1, 0x80, 0, 0, 0, 0], true),                   // RSV1 set
            (&[0x83, 0x80, 0, 0, 0, 0], true),                   // reserved opcode 3
            (&[0x8B, 0x80, 0, 0, 0, 0], true),                   // reserved opcode 0xB
            (&[0x09, 0x80, 0, 0, 0, 0], true),                   // fragmented ping
            (&[0x88, 0xFE, 0x00, 0x7E], true),                   // close of 126 bytes
            (&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], true),    // 64-bit length top bit
        ];
        for (bytes, from_client) in errs {
            let e = dec(bytes, from_client).expect_err("must fail");
            assert!(matches!(e, WsError::Protocol(_)), "{bytes:?}: {e}");
            assert_eq!(e.close_code(), Some(1002));
        }
    }

    #[test]
    fn too_big_is_detected_from_the_header() {
        let mut head = BytesMut::new();
        encode_header(&mut head, true, OpCode::Binary, 70_000, Some(MASK));
        let e = decode(&mut head, 65_536, true).expect_err("too big");
        assert!(matches!(e, WsError::TooBig(65_536)));
        assert_eq!(e.close_code(), Some(1009));
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]).expect("ok"), None);
        assert_eq!(
            parse_close(&close_payload(1000, "bye")).expect("ok"),
            Some((1000, "bye".into()))
        );
        assert!(matches!(parse_close(&[3]), Err(WsError::Protocol(_))));
        assert!(matches!(
            parse_close(&close_payload(1005, "")),
            Err(WsError::Protocol(_))
        ));
        assert!(matches!(
            parse_close(&close_payload(999, "")),
            Err(WsError::Protocol(_))
        ));
        assert!(matches!(parse_close(&[0x03, 0xe8, 0xff]), Err(WsError::InvalidUtf8)));
        let long = "é".repeat(100);
        let p = close_payload(4000, &long);
        assert!(p.len() <= MAX_CONTROL_PAYLOAD);
        assert!(parse_close(&p).is_ok());
    }
}
