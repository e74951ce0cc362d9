//! The gateway's AMQP frame handling and translation, both ways, without
//! sockets.
//!
//! Input: one control byte, then a stream. Bit 0 picks the direction,
//! bit 1 the frame limit (4096 or the gateway's default 131072), bits 2-7
//! the read size (0: all at once).
//!
//! - Client to broker: the AMQP stream through `ringmq_amqp_codec`'s
//!   `Decoder`; each method through the field-table depth check and,
//!   only if it passes (as the gateway does), `parse_method` and
//!   `translate::inbound`; each content header through its depth check,
//!   `parse_header` and `props_to_native`; publishes assembled from method,
//!   header and body frames as `gateway/src/amqp/content.rs` does (its
//!   `Content` is `pub(super)` in the gateway's private `amqp` module, out
//!   of reach from outside that module).
//! - Broker to client: a native stream whose frames are translated as
//!   `gateway/src/amqp/from_broker.rs` does (`translate::reply`,
//!   `props_to_amqp`, the hand-written deliver and content frames).
//!
//! Checks: no panic and no stack overflow; every native request the
//! gateway would send decodes as the broker decodes it; every AMQP frame
//! it would send a client parses.
#![no_main]

use amq_protocol::frame::AMQPContentHeader;
use amq_protocol::protocol::{basic, AMQPClass};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringmq_amqp_codec::content::{put_content, put_deliver};
use ringmq_amqp_codec::method::{parse_header, parse_method, put_method};
use ringmq_amqp_codec::table::{check_header_tables, check_method_tables, check_table_body};
use ringmq_amqp_codec::{Decoder, FRAME_BODY, FRAME_HEADER, FRAME_METHOD, PROTOCOL_HEADER};
use ringmq_gateway::translate::{self, Inbound};
use ringmq_protocol::frame::{FrameDecoder, Kind};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::verify::{dense_bodies, view};
use ringmq_protocol::{wire, Encoder, Properties};

/// The gateway's default `max_message_size`.
const MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

/// Most body bytes assembled per input (the gateway's limit is far above
/// what an input holds).
const MAX_ASSEMBLED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let frame_max = if ctl & 2 == 0 { 4096 } else { 131_072 };
    let step = match usize::from(ctl >> 2) {
        0 => stream.len().max(1),
        n => n,
    };
    if ctl & 1 == 0 {
        from_client(stream, frame_max, step);
    } else {
        from_broker(stream, frame_max);
    }
});

/// A publish being assembled.
struct Content {
    publish: basic::Publish,
    props: Properties,
    size: Option<u64>,
    body: BytesMut,
}

fn from_client(stream: &[u8], frame_max: u32, step: usize) {
    let mut dec = Decoder::new(frame_max);
    let mut header_due = stream.starts_with(b"AMQP");
    let mut content: Option<Content> = None;
    let mut enc = Encoder::new();
    for piece in stream.chunks(step) {
        dec.extend(piece);
        if header_due {
            match dec.take_raw(PROTOCOL_HEADER.len()) {
                Some(h) => {
                    let _ = h[..] == PROTOCOL_HEADER[..];
                    header_due = false;
                }
                None => continue,
            }
        }
        loop {
            let frame = match dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let _ = e.to_string();
                    return;
                }
            };
            match frame.kind {
                FRAME_METHOD => method(&mut enc, frame.channel, &frame.payload, &mut content),
                FRAME_HEADER => header(&frame.payload, &mut content),
                FRAME_BODY => body(&mut enc, &frame.payload, &mut content),
                _ => {}
            }
        }
    }
}

fn method(enc: &mut Encoder, ch: u16, payload: &[u8], content: &mut Option<Content>) {
    if check_method_tables(payload).is_err() {
        return;
    }
    let Ok(class) = parse_method(payload) else {
        return;
    };
    login_tables(&class);
    let _ = (class.get_amqp_class_id(), class.get_amqp_method_id());
    match translate::inbound(ch, class) {
        Inbound::Request { msg, .. } => round_trip(enc, &msg),
        Inbound::Publish(p) => {
            *content = Some(Content {
                publish: p,
                props: Properties::default(),
                size: None,
                body: BytesMut::new(),
            })
        }
        Inbound::Settle(s) => {
            let batch = m::SettleBatch {
                channel: ch,
                items: vec![s],
            };
            round_trip(enc, &Message::Settle(batch));
        }
        Inbound::Invalid(r) => {
            let _ = (r.code, r.text);
        }
        _ => {}
    }
}

/// `connection.start-ok`'s AMQPLAIN response is a field table without its
/// length; the gateway checks it before parsing it.
fn login_tables(class: &AMQPClass) {
    use amq_protocol::protocol::connection::AMQPMethod;
    if let AMQPClass::Connection(AMQPMethod::StartOk(s)) = class {
        let _ = check_table_body(s.response.as_bytes());
        let _ = translate::table_to_native(&s.client_properties);
    }
}

fn header(payload: &[u8], content: &mut Option<Content>) {
    if check_header_tables(payload).is_err() {
        return;
    }
    let Ok(h) = parse_header(payload) else {
        return;
    };
    let Some(c) = content.as_mut() else {
        return;
    };
    if c.size.is_some() || h.class_id != 60 || h.body_size > MAX_MESSAGE_SIZE {
        *content = None;
        return;
    }
    c.size = Some(h.body_size);
    c.props = translate::props_to_native(&h.properties);
    let _ = translate::props_to_native(&translate::props_to_amqp(&c.props));
}

fn body(enc: &mut Encoder, payload: &[u8], content: &mut Option<Content>) {
    let Some(c) = content.as_mut() else {
        return;
    };
    let Some(size) = c.size else {
        *content = None;
        return;
    };
    if c.body.len() + payload.len() > MAX_ASSEMBLED {
        *content = None;
        return;
    }
    c.body.extend_from_slice(payload);
    if c.body.len() as u64 > size {
        *content = None;
    } else if c.body.len() as u64 == size {
        if let Some(c) = content.take() {
            let p = m::Publish {
                exchange: c.publish.exchange.to_string(),
                routing_key: c.publish.routing_key.to_string(),
                mandatory: c.publish.mandatory,
                immediate: c.publish.immediate,
                properties: c.props,
                body: c.body.freeze(),
            };
            let batch = m::PublishBatch {
                channel: 1,
                messages: vec![p],
            };
            round_trip(enc, &Message::Publish(batch));
        }
    }
}

/// A native request as the gateway would send it must decode as the
/// broker decodes it.
fn round_trip(enc: &mut Encoder, msg: &Message) {
    let mut out = BytesMut::new();
    enc.encode(&mut out, 7, msg);
    let mut dec = FrameDecoder::new(u32::MAX);
    dec.extend(&out);
    let frame = dec.next_frame().expect("own frame").expect("whole frame");
    if let Err(e) = Message::decode(&frame) {
        panic!(
            "the gateway would send the broker a {:?} it cannot decode: {e}",
            msg.kind()
        );
    }
}

fn from_broker(stream: &[u8], frame_max: u32) {
    let mut dec = FrameDecoder::new(u32::MAX);
    dec.extend(stream);
    let mut out = BytesMut::new();
    loop {
        let frame = match dec.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        if frame.header.kind == Kind::Deliver.as_u16() {
            deliveries(&mut out, &frame.body, frame_max);
            continue;
        }
        let Ok(msg) = Message::decode(&frame) else {
            continue;
        };
        match &msg {
            Message::GetOk(g) if fits(&[&g.exchange, &g.routing_key]) => {
                let get_ok = basic::GetOk {
                    delivery_tag: g.delivery_tag,
                    redelivered: g.redelivered,
                    exchange: translate::short(&g.exchange),
                    routing_key: translate::short(&g.routing_key),
                    message_count: g.message_count,
                };
                let class = AMQPClass::Basic(basic::AMQPMethod::GetOk(get_ok));
                put_method(&mut out, g.channel, class).expect("get-ok encodes");
                message(&mut out, g.channel, &g.properties, &g.body, frame_max);
            }
            Message::Return(b) => {
                for r in &b.returns {
                    let ret = basic::Return {
                        reply_code: r.reply_code,
                        reply_text: translate::short(&r.reply_text),
                        exchange: translate::short(&r.exchange),
                        routing_key: translate::short(&r.routing_key),
                    };
                    let class = AMQPClass::Basic(basic::AMQPMethod::Return(ret));
                    put_method(&mut out, b.channel, class).expect("return encodes");
                    message(&mut out, b.channel, &r.properties, &r.body, frame_max);
                }
            }
            other => {
                if let Some(class) = translate::reply(other) {
                    put_method(&mut out, other.channel(), class).expect("reply encodes");
                }
            }
        }
    }
    client_parses(&out, frame_max);
}

/// True when every string fits an AMQP short string: the broker refuses
/// longer names, so it never sends them.
fn fits(strings: &[&str]) -> bool {
    strings.iter().all(|s| s.len() <= 255)
}

fn deliveries(out: &mut BytesMut, body: &Bytes, frame_max: u32) {
    let Ok(batch) = view::<wire::DeliverBatch>(Kind::Deliver, body) else {
        return;
    };
    let ch = batch.channel();
    for run in batch.dense().iter().flatten() {
        let props = match run.properties() {
            None => None,
            Some(p) => match Properties::decode(Some(p)) {
                Ok(p) => Some(translate::props_to_amqp(&p)),
                Err(_) => return,
            },
        };
        let (tag, exchange, routing_key) = (
            run.consumer_tag().unwrap_or(""),
            run.exchange().unwrap_or(""),
            run.routing_key().unwrap_or(""),
        );
        if !fits(&[tag, exchange, routing_key]) {
            return;
        }
        let redelivered = run.redelivered();
        let Ok(bodies) = dense_bodies("DenseDelivery", run.sizes(), run.bodies()) else {
            return;
        };
        for (i, b) in bodies.enumerate() {
            let again = redelivered.is_some_and(|r| i < r.len() && r.get(i));
            let tag_n = run.first_tag().wrapping_add(i as u64);
            put_deliver(&mut *out, ch, tag, tag_n, again, exchange, routing_key);
            put_content(&mut *out, ch, props.as_ref(), b, frame_max).expect("content encodes");
        }
    }
    for d in batch.deliveries().iter().flatten() {
        let (tag, exchange, routing_key) = (
            d.consumer_tag().unwrap_or(""),
            d.exchange().unwrap_or(""),
            d.routing_key().unwrap_or(""),
        );
        if !fits(&[tag, exchange, routing_key]) {
            return;
        }
        let Ok(props) = Properties::decode(d.properties()) else {
            return;
        };
        let tag_n = d.delivery_tag();
        put_deliver(
            &mut *out,
            ch,
            tag,
            tag_n,
            d.redelivered(),
            exchange,
            routing_key,
        );
        let b = d.body().map(|b| b.bytes()).unwrap_or(&[]);
        message(out, ch, &props, b, frame_max);
    }
}

/// A message's content header and body frames, as the gateway writes them.
fn message(out: &mut BytesMut, ch: u16, props: &Properties, body: &[u8], frame_max: u32) {
    let amqp = (!props.is_empty()).then(|| translate::props_to_amqp(props));
    put_content(out, ch, amqp.as_ref(), body, frame_max).expect("content encodes");
}

/// Every frame the gateway would write to a client parses.
fn client_parses(out: &[u8], frame_max: u32) {
    let mut dec = Decoder::new(frame_max);
    dec.extend(out);
    while let Some(f) = dec.next_frame().expect("gateway frames frame") {
        match f.kind {
            FRAME_METHOD => {
                if let Err(e) = parse_method(&f.payload) {
                    panic!("a client cannot parse the gateway's method: {e}");
                }
            }
            FRAME_HEADER => {
                let h: AMQPContentHeader = parse_header(&f.payload)
                    .unwrap_or_else(|e| panic!("a client cannot parse the gateway's header: {e}"));
                let _ = translate::props_to_native(&h.properties);
            }
            _ => {}
        }
    }
    assert_eq!(dec.take_raw(1), None, "trailing bytes after the last frame");
}
