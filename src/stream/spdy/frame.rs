//! SPDY/3 frame layout, encoding and decoding.
//!
//! Control frame: `1 | version(15) | type(16) | flags(8) | length(24) | payload`.
//! Data frame: `0 | stream id(31) | flags(8) | length(24) | payload`.

use super::header::{HeaderDecoder, HeaderEncoder, HeaderError, Headers};
use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const VERSION: u16 = 3;
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest value the 24-bit length field can carry.
pub const MAX_LENGTH_FIELD: usize = 0x00FF_FFFF;
/// Default bound on the payload of one received frame.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;

pub const TYPE_SYN_STREAM: u16 = 1;
pub const TYPE_SYN_REPLY: u16 = 2;
pub const TYPE_RST_STREAM: u16 = 3;
pub const TYPE_SETTINGS: u16 = 4;
pub const TYPE_PING: u16 = 6;
pub const TYPE_GOAWAY: u16 = 7;
pub const TYPE_HEADERS: u16 = 8;
pub const TYPE_WINDOW_UPDATE: u16 = 9;

pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_INVALID_STREAM: u32 = 2;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_UNSUPPORTED_VERSION: u32 = 4;
pub const RST_CANCEL: u32 = 5;
pub const RST_INTERNAL_ERROR: u32 = 6;
pub const RST_FLOW_CONTROL_ERROR: u32 = 7;
pub const RST_STREAM_IN_USE: u32 = 8;
pub const RST_STREAM_ALREADY_CLOSED: u32 = 9;
pub const RST_FRAME_TOO_LARGE: u32 = 11;

pub const GOAWAY_OK: u32 = 0;
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;
pub const GOAWAY_INTERNAL_ERROR: u32 = 2;

const ID_MASK: u32 = 0x7FFF_FFFF;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// Entries are (flags, id, value).
    Settings {
        entries: Vec<(u8, u32, u32)>,
        clear: bool,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported SPDY version {0} (expected 3)")]
    UnsupportedVersion(u16),
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("invalid {kind} frame: {reason}")]
    Invalid { kind: &'static str, reason: &'static str },
    #[error("header block: {0}")]
    Header(#[from] HeaderError),
    #[error("connection closed in the middle of a frame")]
    UnexpectedEof,
}

fn invalid(kind: &'static str, reason: &'static str) -> FrameError {
    FrameError::Invalid { kind, reason }
}

/// Takes one complete frame off the front of `buf`, skipping unknown control frames.
/// `Ok(None)` means more bytes are needed; nothing is consumed then.
pub fn decode_frame(
    buf: &mut BytesMut,
    dec: &mut HeaderDecoder,
    max_payload: usize,
) -> Result<Option<Frame>, FrameError> {
    loop {
        if buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let control = buf[0] & 0x80 != 0;
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if control {
            let version = (word >> 16) as u16 & 0x7FFF;
            if version != VERSION {
                return Err(FrameError::UnsupportedVersion(version));
            }
        } else if word == 0 {
            return Err(invalid("DATA", "stream id 0"));
        }
        if len > max_payload {
            return Err(FrameError::TooLarge { len, max: max_payload });
        }
        if buf.len() < FRAME_HEADER_LEN + len {
            buf.reserve(FRAME_HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(FRAME_HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        if !control {
            return Ok(Some(Frame::Data {
                stream_id: word & ID_MASK,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        if let Some(frame) = decode_control(word as u16, flags, payload, dec)? {
            return Ok(Some(frame));
        }
    }
}

fn decode_control(ty: u16, flags: u8, mut p: Bytes, dec: &mut HeaderDecoder) -> Result<Option<Frame>, FrameError> {
    let fin = flags & FLAG_FIN != 0;
    let frame = match ty {
        TYPE_SYN_STREAM => {
            if p.len() < 10 {
                return Err(invalid("SYN_STREAM", "shorter than 10 bytes"));
            }
            let stream_id = p.get_u32() & ID_MASK;
            let associated_to = p.get_u32() & ID_MASK;
            let priority = p.get_u8() >> 5;
            p.advance(1); // credential slot
            let unidirectional = flags & FLAG_UNIDIRECTIONAL != 0;
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers: dec.decode(&p)?,
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            if p.len() < 4 {
                return Err(invalid("SYN_REPLY/HEADERS", "shorter than 4 bytes"));
            }
            let stream_id = p.get_u32() & ID_MASK;
            let headers = dec.decode(&p)?;
            if ty == TYPE_SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    fin,
                    headers,
                }
            }
        }
        TYPE_RST_STREAM => {
            if p.len() != 8 {
                return Err(invalid("RST_STREAM", "length is not 8"));
            }
            Frame::RstStream {
                stream_id: p.get_u32() & ID_MASK,
                status: p.get_u32(),
            }
        }
        TYPE_SETTINGS => {
            if p.len() < 4 {
                return Err(invalid("SETTINGS", "shorter than 4 bytes"));
            }
            let count = p.get_u32() as usize;
            if count > p.len() / 8 || p.len() != count * 8 {
                return Err(invalid("SETTINGS", "entry count does not match the length"));
            }
            let entries = (0..count)
                .map(|_| {
                    let head = p.get_u32();
                    ((head >> 24) as u8, head & 0x00FF_FFFF, p.get_u32())
                })
                .collect();
            Frame::Settings {
                entries,
                clear: flags & FLAG_SETTINGS_CLEAR != 0,
            }
        }
        TYPE_PING => {
            if p.len() != 4 {
                return Err(invalid("PING", "length is not 4"));
            }
            Frame::Ping { id: p.get_u32() }
        }
        TYPE_GOAWAY => {
            if p.len() != 8 {
                return Err(invalid("GOAWAY", "length is not 8"));
            }
            Frame::GoAway {
                last_good_stream_id: p.get_u32() & ID_MASK,
                status: p.get_u32(),
            }
        }
        TYPE_WINDOW_UPDATE => {
            if p.len() != 8 {
                return Err(invalid("WINDOW_UPDATE", "length is not 8"));
            }
            Frame::WindowUpdate {
                stream_id: p.get_u32() & ID_MASK,
                delta: p.get_u32() & ID_MASK,
            }
        }
        other => {
            tracing::debug!(frame_type = other, len = p.len(), "skipping unknown SPDY control frame");
            return Ok(None);
        }
    };
    Ok(Some(frame))
}

fn put_control(dst: &mut BytesMut, ty: u16, flags: u8, len: usize) -> Result<(), FrameError> {
    if len > MAX_LENGTH_FIELD {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_LENGTH_FIELD,
        });
    }
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(ty);
    dst.put_u32(u32::from(flags) << 24 | len as u32);
    Ok(())
}

fn fin_flag(fin: bool) -> u8 {
    if fin {
        FLAG_FIN
    } else {
        0
    }
}

/// Appends the wire form of `frame` to `dst`, compressing header blocks with `enc`.
pub fn encode_frame(frame: &Frame, enc: &mut HeaderEncoder, dst: &mut BytesMut) -> Result<(), FrameError> {
    match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            fin,
            unidirectional,
            headers,
        } => {
            let block = enc.encode(headers)?;
            let flags = fin_flag(*fin) | if *unidirectional { FLAG_UNIDIRECTIONAL } else { 0 };
            put_control(dst, TYPE_SYN_STREAM, flags, 10 + block.len())?;
            dst.put_u32(stream_id & ID_MASK);
            dst.put_u32(associated_to & ID_MASK);
            dst.put_u8((priority & 0x07) << 5);
            dst.put_u8(0);
            dst.put_slice(&block);
        }
        Frame::SynReply {
            stream_id,
            fin,
            headers,
        }
        | Frame::Headers {
            stream_id,
            fin,
            headers,
        } => {
            let ty = if matches!(frame, Frame::SynReply { .. }) {
                TYPE_SYN_REPLY
            } else {
                TYPE_HEADERS
            };
            let block = enc.encode(headers)?;
            put_control(dst, ty, fin_flag(*fin), 4 + block.len())?;
            dst.put_u32(stream_id & ID_MASK);
            dst.put_slice(&block);
        }
        Frame::RstStream { stream_id, status } => {
            put_control(dst, TYPE_RST_STREAM, 0, 8)?;
            dst.put_u32(stream_id & ID_MASK);
            dst.put_u32(*status);
        }
        Frame::Settings { entries, clear } => {
            let flags = if *clear { FLAG_SETTINGS_CLEAR } else { 0 };
            put_control(dst, TYPE_SETTINGS, flags, 4 + 8 * entries.len())?;
            dst.put_u32(entries.len() as u32);
            for (f, id, value) in entries {
                dst.put_u32(u32::from(*f) << 24 | (id & 0x00FF_FFFF));
                dst.put_u32(*value);
            }
        }
        Frame::Ping { id } => {
            put_control(dst, TYPE_PING, 0, 4)?;
            dst.put_u32(*id);
        }
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => {
            put_control(dst, TYPE_GOAWAY, 0, 8)?;
            dst.put_u32(last_good_stream_id & ID_MASK);
            dst.put_u32(*status);
        }
        Frame::WindowUpdate { stream_id, delta } => {
            put_control(dst, TYPE_WINDOW_UPDATE, 0, 8)?;
            dst.put_u32(stream_id & ID_MASK);
            dst.put_u32(delta & ID_MASK);
        }
        Frame::Data { stream_id, fin, data } => {
            if data.len() > MAX_LENGTH_FIELD {
                return Err(FrameError::TooLarge {
                    len: data.len(),
                    max: MAX_LENGTH_FIELD,
                });
            }
            dst.put_u32(stream_id & ID_MASK);
            dst.put_u32(u32::from(fin_flag(*fin)) << 24 | data.len() as u32);
            dst.put_slice(data);
        }
    }
    Ok(())
}
