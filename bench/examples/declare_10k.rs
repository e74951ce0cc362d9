//! How long declaring N queues, each with a binding, takes over the native
//! protocol: sequentially (one request at a time) and pipelined.
//! `cargo run --release -p ringmq-bench --example declare_10k -- [addr] [n] [durable]`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::FieldTable;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5680".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let durable = args.next().is_some_and(|a| a == "durable");
    let mut c = Connection::connect(addr.as_str(), &ConnectOptions::default()).unwrap();
    let ch = c.open_channel().unwrap();
    let run = std::process::id();
    let exchange = format!("declare-bench-{run}");
    c.exchange_declare(ch, &exchange, "topic").unwrap();
    let declare = |name: String| {
        vec![
            Message::QueueDeclare(m::QueueDeclare {
                channel: ch,
                queue: name.clone(),
                durable,
                auto_delete: !durable,
                ..m::QueueDeclare::default()
            }),
            Message::QueueBind(m::Bind {
                channel: ch,
                destination: name.clone(),
                source: exchange.clone(),
                routing_key: format!("{name}.#"),
                arguments: FieldTable::new(),
            }),
        ]
    };
    let t = Instant::now();
    for i in 0..n {
        for msg in declare(format!("seq-{run}-{i}")) {
            c.call(msg).unwrap();
        }
    }
    let seq = t.elapsed();
    let t = Instant::now();
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(declare(format!("pipe-{run}-{i}")));
        if batch.len() >= 2000 {
            c.pipeline(std::mem::take(&mut batch)).unwrap();
        }
    }
    c.pipeline(batch).unwrap();
    let pipe = t.elapsed();
    println!(
        "{n} {} queues with one binding each: sequential {:.3} s, pipelined {:.3} s",
        if durable { "durable" } else { "auto-delete" },
        seq.as_secs_f64(),
        pipe.as_secs_f64()
    );
    let mut deletes = Vec::new();
    for i in 0..n {
        for prefix in ["seq", "pipe"] {
            deletes.push(Message::QueueDelete(m::QueueDelete {
                channel: ch,
                queue: format!("{prefix}-{run}-{i}"),
                ..m::QueueDelete::default()
            }));
        }
    }
    c.pipeline(deletes).unwrap();
    c.call(Message::ExchangeDelete(m::ExchangeDelete {
        channel: ch,
        exchange: exchange.clone(),
        if_unused: false,
    }))
    .unwrap();
}
