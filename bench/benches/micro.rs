//! Micro-benchmarks of ringmq's hot paths, one suite per area:
//! - `codec`: a `PublishBatch` of 100 × 16 B messages, encoded and decoded
//!   (owned `Message` and zero-copy verified view);
//! - `topic`: `TopicMatcher` decisions with 1 k and 100 k bindings of 3–4
//!   words (the harness's generated binding set);
//! - `routing`: one publish through `Vhost::route` (topic exchange, 10 k
//!   bindings to 100 queues);
//! - `segment`: `Record::encode` of an enqueue record (16 B and 1 KiB).
//!
//! Run with `cargo bench -p ringmq-bench --bench micro`; `cargo test`
//! runs each once (test mode).
// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringmq_bench::scenario::{topic_key, topic_pattern};
use ringmq_core::exchange::topic::TopicMatcher;
use ringmq_core::exchange::{ExchangeDef, ExchangeKind, QueueId, Targets};
use ringmq_core::log::record::Record;
use ringmq_core::meta::{DestName, Meta, MetaOp, QueueDef};
use ringmq_core::queue::args::QueueArgs;
use ringmq_protocol::frame::{FrameDecoder, Kind};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::verify::view;
use ringmq_protocol::{wire, Encoder, FieldTable};

const BATCH: usize = 100;

fn publish_batch(same_key: bool) -> Message {
    let messages = (0..BATCH)
        .map(|i| m::Publish {
            exchange: "bench.x".into(),
            routing_key: if same_key {
                "bench.q0".into()
            } else {
                topic_key(i as u32)
            },
            body: Bytes::from(vec![i as u8; 16]),
            ..m::Publish::default()
        })
        .collect();
    Message::Publish(m::PublishBatch {
        channel: 1,
        messages,
    })
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, same_key) in [("one key", true), ("100 keys", false)] {
        let msg = publish_batch(same_key);
        let mut enc = Encoder::new();
        let mut out = BytesMut::with_capacity(64 * 1024);
        g.bench_function(format!("encode PublishBatch 100x16B, {name}"), |b| {
            b.iter(|| {
                out.clear();
                enc.encode(&mut out, 0, black_box(&msg));
                black_box(out.len())
            })
        });
        out.clear();
        enc.encode(&mut out, 0, &msg);
        let wire_bytes = out.clone().freeze();
        g.bench_function(format!("decode PublishBatch 100x16B, {name}"), |b| {
            b.iter_batched(
                || {
                    let mut d = FrameDecoder::new(1 << 20);
                    d.extend(&wire_bytes);
                    d
                },
                |mut d| {
                    let frame = d.next_frame().ok().flatten();
                    frame.and_then(|f| Message::decode(&f).ok())
                },
                BatchSize::SmallInput,
            )
        });
        let body = wire_bytes.slice(16..);
        g.bench_function(format!("verify+view PublishBatch 100x16B, {name}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                if let Ok(batch) = view::<wire::PublishBatch>(Kind::Publish, black_box(&body)) {
                    for p in batch.messages().iter().flatten() {
                        n += p.body().map_or(0, |b| b.len());
                    }
                    if let Some(d) = batch.dense() {
                        n += d.bodies().map_or(0, |b| b.len());
                    }
                }
                n
            })
        });
    }
    g.finish();
}

fn topic(c: &mut Criterion) {
    let mut g = c.benchmark_group("topic");
    const KEYS: usize = 1000;
    for bindings in [1_000u32, 100_000] {
        let mut matcher = TopicMatcher::new();
        for j in 0..bindings {
            matcher.insert(&topic_pattern(j), j % 1000);
        }
        // Keys spread over the binding set, plus some that match nothing.
        let keys: Vec<String> = (0..KEYS as u32)
            .map(|i| {
                let j = i.wrapping_mul(2_654_435_761) % bindings;
                if i % 10 == 9 {
                    format!("zz.s{j}.none")
                } else {
                    topic_key(j)
                }
            })
            .collect();
        g.throughput(Throughput::Elements(KEYS as u64));
        g.bench_function(format!("match {bindings} bindings, 1000 keys"), |b| {
            b.iter(|| {
                let mut hits = 0u32;
                for k in &keys {
                    matcher.for_each_match(black_box(k), |_| hits += 1);
                }
                hits
            })
        });
        // The trie alone, as if every key were new (no result cache).
        g.bench_function(
            format!("match {bindings} bindings, 1000 keys, trie only"),
            |b| {
                b.iter(|| {
                    let mut hits = 0u32;
                    for k in &keys {
                        matcher.match_trie(black_box(k), |_| hits += 1);
                    }
                    hits
                })
            },
        );
    }
    g.finish();
}

fn queue_def(id: u64, name: &str) -> QueueDef {
    QueueDef {
        id: QueueId(id),
        name: name.into(),
        shard: (id % 2) as u16,
        durable: false,
        auto_delete: false,
        exclusive_owner: None,
        arguments: FieldTable::new(),
        args: QueueArgs::default(),
    }
}

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    let vhost = || "/".to_owned();
    let mut meta = Meta::new(["/"]);
    meta.apply(&MetaOp::DeclareExchange {
        vhost: vhost(),
        def: ExchangeDef {
            name: "market".into(),
            kind: ExchangeKind::Topic,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        },
    });
    for q in 0..100u64 {
        meta.apply(&MetaOp::DeclareQueue {
            vhost: vhost(),
            def: queue_def(q + 1, &format!("q{q}")),
        });
    }
    const BINDINGS: u32 = 10_000;
    for j in 0..BINDINGS {
        meta.apply(&MetaOp::Bind {
            vhost: vhost(),
            source: "market".into(),
            dest: DestName::Queue(format!("q{}", j % 100)),
            key: topic_pattern(j),
            args: FieldTable::new(),
        });
    }
    let keys: Vec<String> = (0..1000u32)
        .map(|i| topic_key(i.wrapping_mul(2_654_435_761) % BINDINGS))
        .collect();
    let Some(v) = meta.vhost("/") else { return };
    let Some(x) = v.exchange("market") else {
        return;
    };
    let mut targets = Targets::default();
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function(
        "route via Vhost::route, topic, 10k bindings, 1000 keys",
        |b| {
            b.iter(|| {
                let mut n = 0usize;
                for k in &keys {
                    targets.clear();
                    v.route(x, black_box(k), None, &mut targets);
                    n += targets.queues.len();
                }
                n
            })
        },
    );
    g.finish();
}

fn segment(c: &mut Criterion) {
    let mut g = c.benchmark_group("segment");
    for size in [16usize, 1024] {
        let body = vec![7u8; size];
        let rec = Record::Enqueue {
            queue: 42,
            id: 1_000_000,
            expires_at: 0,
            exchange: "bench.x",
            routing_key: "eu.s17.trade",
            props: &[],
            body: &body,
            transient: false,
        };
        g.throughput(Throughput::Bytes(rec.encoded_len() as u64));
        let mut out = Vec::with_capacity(64 * 1024);
        g.bench_function(format!("encode enqueue record, {size} B body"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&rec).encode(&mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codec, topic, routing, segment);
criterion_main!(benches);
