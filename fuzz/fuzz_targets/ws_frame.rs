//! WebSocket frames (`berth::stream::ws::frame`) over arbitrary bytes, from the client side
//! (masked) or the server side, then the Kubernetes channel framing of each data frame
//! (`berth::stream::ws::channel`). Decoded frames must re-encode to the same frame.
#![no_main]

use berth::stream::ws::channel::{self, Protocol};
use berth::stream::ws::frame::{self, OpCode};
use berth::stream::ws::Message;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const PROTOCOLS: [&str; 6] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "channel.k8s.io",
    "v5.base64.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "base64.channel.k8s.io",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 0x80 != 0 {
        // The text helpers: resize messages and port-forward queries.
        let _ = channel::parse_resize(rest);
        if let Ok(q) = std::str::from_utf8(rest) {
            if let Ok(ports) = channel::parse_ports(q) {
                assert!(!ports.is_empty() && ports.iter().all(|p| *p > 0));
            }
            let _ = Protocol::parse(q);
        }
        return;
    }
    let from_client = sel & 1 == 1;
    let proto = Protocol::parse(PROTOCOLS[usize::from(sel >> 1) % PROTOCOLS.len()]).expect("known protocol");
    let mut buf = BytesMut::from(rest);
    let mut out = BytesMut::new();
    while let Ok(Some(f)) = frame::decode(&mut buf, 64 * 1024, from_client) {
        out.clear();
        let mask = from_client.then_some([0x12, 0x34, 0x56, 0x78]);
        frame::encode(&f, mask, &mut out);
        let again = frame::decode(&mut out, usize::MAX, from_client)
            .expect("an encoded frame decodes")
            .expect("an encoded frame is complete");
        assert_eq!(again, f);
        assert!(out.is_empty());
        let msg = match f.opcode {
            OpCode::Binary => Message::Binary(f.payload.clone()),
            OpCode::Text => match std::str::from_utf8(&f.payload) {
                Ok(s) => Message::Text(s.to_owned()),
                Err(_) => continue,
            },
            _ => continue,
        };
        if let Ok(channel::Inbound::Data { channel, data }) = channel::decode(&proto, &msg) {
            // What the server would send back on that channel decodes to the same data.
            let echoed = channel::encode(&proto, channel, &data);
            match channel::decode(&proto, &echoed) {
                Ok(channel::Inbound::Data { data: d2, .. }) => assert_eq!(d2, data),
                Ok(channel::Inbound::Close { .. }) => {}
                Err(e) => panic!("re-encoded message does not decode: {e}"),
            }
        }
    }
});
