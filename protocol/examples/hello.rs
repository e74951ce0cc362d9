//! The tutorial's "Hello World!" with the native Rust client: declare the
//! queue `hello`, then send one message or receive until stopped.
//!
//! ```sh
//! cargo run -p ringmq-protocol --example hello -- receive   # in one terminal
//! cargo run -p ringmq-protocol --example hello -- send      # in another
//! ```
//!
//! `RINGMQ_ADDR` names the broker's native address (default
//! 127.0.0.1:5680); the login is guest/guest on vhost "/".

use std::time::Duration;

use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::message as m;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("RINGMQ_ADDR").unwrap_or_else(|_| "127.0.0.1:5680".into());
    let mut conn = Connection::connect(addr.as_str(), &ConnectOptions::default())?;
    let ch = conn.open_channel()?;
    conn.declare_simple_queue(ch, "hello")?;
    match std::env::args().nth(1).as_deref() {
        Some("send") => {
            conn.publish(
                ch,
                m::Publish {
                    routing_key: "hello".into(),
                    body: "Hello World!".into(),
                    ..m::Publish::default()
                },
            )?;
            conn.flush()?;
            println!(" [x] Sent 'Hello World!'");
            conn.close()?;
        }
        Some("receive") => {
            conn.consume(m::Consume {
                channel: ch,
                queue: "hello".into(),
                no_ack: true,
                ..m::Consume::default()
            })?;
            println!(" [*] Waiting for messages. To exit press CTRL+C");
            loop {
                if let Some((_, d)) = conn.next_delivery(Duration::from_secs(3600))? {
                    println!(" [x] Received {:?}", String::from_utf8_lossy(&d.body));
                }
            }
        }
        _ => eprintln!("usage: hello send | hello receive"),
    }
    Ok(())
}
