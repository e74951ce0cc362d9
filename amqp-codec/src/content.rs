//! The frames on the hot paths, written by hand: `basic.deliver`,
//! `basic.publish`, `basic.ack`, content headers and body frames.

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::basic;
use bytes::BufMut;

use crate::frame::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD, FRAME_OVERHEAD};
use crate::method::{put_frame, CodecError};

/// The bytes a short string takes on the wire: at most 255, longer is cut.
fn short_bytes(s: &str) -> &[u8] {
    &s.as_bytes()[..s.len().min(255)]
}

/// Appends a short string (at most 255 bytes, longer is cut).
fn put_short(out: &mut impl BufMut, s: &str) {
    let b = short_bytes(s);
    out.put_u8(b.len() as u8);
    out.put_slice(b);
}

/// Appends the start of a method frame whose arguments take `args` bytes.
fn put_method_head(out: &mut impl BufMut, channel: u16, class: u16, method: u16, args: usize) {
    out.put_u8(FRAME_METHOD);
    out.put_u16(channel);
    out.put_u32(4 + args as u32);
    out.put_u16(class);
    out.put_u16(method);
}

/// Appends a `basic.deliver` method frame.
pub fn put_deliver(
    out: &mut impl BufMut,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    let [t, x, r] = [consumer_tag, exchange, routing_key].map(short_bytes);
    put_method_head(
        out,
        channel,
        60,
        60,
        3 + t.len() + 8 + 1 + x.len() + r.len(),
    );
    put_short(out, consumer_tag);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(redelivered));
    put_short(out, exchange);
    put_short(out, routing_key);
    out.put_u8(FRAME_END);
}

/// Appends a `basic.publish` method frame (not mandatory, not immediate).
pub fn put_publish(out: &mut impl BufMut, channel: u16, exchange: &str, routing_key: &str) {
    let [x, r] = [exchange, routing_key].map(short_bytes);
    put_method_head(out, channel, 60, 40, 2 + 2 + x.len() + r.len() + 1);
    out.put_u16(0); // reserved (ticket)
    put_short(out, exchange);
    put_short(out, routing_key);
    out.put_u8(0); // mandatory, immediate
    out.put_u8(FRAME_END);
}

/// Appends a `basic.ack` method frame.
pub fn put_ack(out: &mut impl BufMut, channel: u16, delivery_tag: u64, multiple: bool) {
    put_method_head(out, channel, 60, 80, 9);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(multiple));
    out.put_u8(FRAME_END);
}

/// Appends a content header for a body of `size` bytes: written by hand
/// without properties, by amq-protocol with them.
///
/// # Errors
/// amq-protocol cannot encode the properties.
pub fn put_header(
    out: &mut impl BufMut,
    channel: u16,
    props: Option<&basic::AMQPProperties>,
    size: u64,
) -> Result<(), CodecError> {
    let Some(p) = props else {
        out.put_u8(FRAME_HEADER);
        out.put_u16(channel);
        out.put_u32(14);
        out.put_u16(60);
        out.put_u16(0);
        out.put_u64(size);
        out.put_u16(0);
        out.put_u8(FRAME_END);
        return Ok(());
    };
    let header = AMQPContentHeader {
        class_id: 60,
        body_size: size,
        properties: p.clone(),
    };
    put_frame(out, &AMQPFrame::Header(channel, header))
}

/// Appends `body` as body frames of at most `frame_max` bytes each.
pub fn put_body(out: &mut impl BufMut, channel: u16, body: &[u8], frame_max: u32) {
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    for part in body.chunks(chunk) {
        out.put_u8(FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(part.len() as u32);
        out.put_slice(part);
        out.put_u8(FRAME_END);
    }
}

/// Appends a content header and the body frames.
///
/// # Errors
/// amq-protocol cannot encode the properties (nothing is appended then).
pub fn put_content(
    out: &mut impl BufMut,
    channel: u16,
    props: Option<&basic::AMQPProperties>,
    body: &[u8],
    frame_max: u32,
) -> Result<(), CodecError> {
    put_header(out, channel, props, body.len() as u64)?;
    put_body(out, channel, body, frame_max);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::parse_frame;
    use amq_protocol::protocol::AMQPClass;

    fn frames(mut rest: &[u8]) -> Vec<AMQPFrame> {
        let mut v = Vec::new();
        while !rest.is_empty() {
            let (r, f) = parse_frame(rest).unwrap();
            v.push(f);
            rest = r;
        }
        v
    }

    #[test]
    fn deliver_and_content_parse_back() {
        let mut out = Vec::new();
        put_deliver(&mut out, 3, "ctag", 42, true, "ex", "rk");
        put_content(&mut out, 3, None, &[7u8; 300], 4096).unwrap();
        let props = basic::AMQPProperties::default().with_delivery_mode(2);
        put_content(&mut out, 3, Some(&props), &[1u8; 10000], 4096).unwrap();
        let f = frames(&out);
        match &f[0] {
            AMQPFrame::Method(3, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                assert_eq!(d.consumer_tag.as_str(), "ctag");
                assert_eq!(d.delivery_tag, 42);
                assert!(d.redelivered);
                assert_eq!(d.exchange.as_str(), "ex");
                assert_eq!(d.routing_key.as_str(), "rk");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&f[1], AMQPFrame::Header(3, h) if h.body_size == 300));
        assert!(matches!(&f[2], AMQPFrame::Body(3, b) if b.len() == 300));
        assert!(
            matches!(&f[3], AMQPFrame::Header(3, h) if h.body_size == 10000 && h.properties.delivery_mode() == &Some(2))
        );
        // 10000 bytes in frames of at most 4096 - 8 bytes of payload.
        assert_eq!(f.len(), 4 + 3);
    }

    #[test]
    fn publish_and_ack_parse_back() {
        let mut out = Vec::new();
        put_publish(&mut out, 1, "bench.x", "eu.s1.trade");
        put_ack(&mut out, 1, 77, true);
        let f = frames(&out);
        match &f[0] {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Publish(p))) => {
                assert_eq!(p.exchange.as_str(), "bench.x");
                assert_eq!(p.routing_key.as_str(), "eu.s1.trade");
                assert!(!p.mandatory && !p.immediate);
            }
            other => panic!("{other:?}"),
        }
        match &f[1] {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                assert_eq!(a.delivery_tag, 77);
                assert!(a.multiple);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_short_strings_are_cut_consistently() {
        let long = "x".repeat(300);
        let mut out = Vec::new();
        put_deliver(&mut out, 1, &long, 1, false, &long, "k");
        match &frames(&out)[0] {
            AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) => {
                assert_eq!(d.consumer_tag.as_str().len(), 255);
                assert_eq!(d.exchange.as_str().len(), 255);
            }
            other => panic!("{other:?}"),
        }
    }
}
