//! Prometheus text format on its own listener (RabbitMQ's 15692): the
//! metric names and labels RabbitMQ's `rabbitmq_prometheus` plugin uses for
//! what its Grafana dashboards and alerts read, aggregated on `/metrics`
//! and per queue on `/metrics/per-object`; plus what RabbitMQ does not
//! have: each queue's end-to-end latency as Prometheus histograms
//! (`ringmq_queue_publish_to_deliver_seconds`,
//! `ringmq_queue_publish_to_confirm_seconds`).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::http::ApiError;
use crate::view::{BrokerView, ConnectionRow, Histogram, MessageCounters, Node, QueueRow};

/// Text format 0.0.4, as Prometheus scrapes it.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes of the metrics listener.
pub fn router(view: std::sync::Arc<dyn BrokerView>) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .with_state(view)
}

/// One metric family being written: `# TYPE` then `# HELP` (RabbitMQ's
/// order), then samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }

    fn histogram(&mut self, name: &str, labels: &str, h: &Histogram) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = h
                .bounds_seconds
                .get(i)
                .map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                self.0,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, cumulative as f64);
    }
}

/// A label value escaped as the text format wants.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn node_metrics(out: &mut Out, node: &Node, conns: &[ConnectionRow], queues: usize) {
    out.family(
        "rabbitmq_identity_info",
        "untyped",
        "RabbitMQ node & cluster identity info",
    );
    let labels = format!(
        "rabbitmq_node=\"{n}\",rabbitmq_cluster=\"{n}\",rabbitmq_cluster_permanent_id=\"ringmq-{n}\"",
        n = escape(&node.name)
    );
    out.sample("rabbitmq_identity_info", &labels, 1.0);
    out.family(
        "rabbitmq_build_info",
        "untyped",
        "RabbitMQ & Erlang/OTP version info",
    );
    let labels = format!(
        "rabbitmq_version=\"{v}\",product_name=\"ringmq\",product_version=\"{v}\"",
        v = node.version
    );
    out.sample("rabbitmq_build_info", &labels, 1.0);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    out.one(
        "rabbitmq_alarms_file_descriptor_limit",
        "untyped",
        "is 1 if file descriptor limit alarm is in effect",
        0.0,
    );
    out.one(
        "rabbitmq_alarms_free_disk_space_watermark",
        "untyped",
        "is 1 if free disk space watermark alarm is in effect",
        flag(node.disk_alarm),
    );
    out.one(
        "rabbitmq_alarms_memory_used_watermark",
        "untyped",
        "is 1 if VM memory watermark alarm is in effect",
        flag(node.mem_alarm),
    );
    out.one(
        "rabbitmq_process_resident_memory_bytes",
        "gauge",
        "Memory used in bytes",
        node.memory_used as f64,
    );
    out.one(
        "rabbitmq_resident_memory_limit_bytes",
        "gauge",
        "Memory high watermark in bytes",
        node.memory_limit as f64,
    );
    out.one(
        "rabbitmq_disk_space_available_bytes",
        "gauge",
        "Disk space available in bytes",
        node.disk_free as f64,
    );
    out.one(
        "rabbitmq_disk_space_available_limit_bytes",
        "gauge",
        "Free disk space low watermark in bytes",
        node.disk_free_limit as f64,
    );
    out.one(
        "rabbitmq_erlang_uptime_seconds",
        "gauge",
        "Node uptime",
        crate::http::now_ms().saturating_sub(node.started_at_ms) as f64 / 1000.0,
    );
    out.one(
        "rabbitmq_connections",
        "gauge",
        "Connections currently open",
        node.connections as f64,
    );
    out.one(
        "rabbitmq_channels",
        "gauge",
        "Channels currently open",
        node.channels as f64,
    );
    out.one(
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
        node.consumers as f64,
    );
    out.one(
        "rabbitmq_queues",
        "gauge",
        "Queues available",
        queues as f64,
    );
    let publishers = conns
        .iter()
        .filter(|c| c.channels.iter().any(|ch| ch.confirm))
        .count();
    out.one(
        "rabbitmq_global_publishers",
        "gauge",
        "Current number of publishers (connections with a channel in confirm mode)",
        publishers as f64,
    );
    counter_metrics(out, &node.counters);
}

fn counter_metrics(out: &mut Out, c: &MessageCounters) {
    let rows: [(&str, &str, u64); 17] = [
        ("rabbitmq_channel_messages_published_total", "Total number of messages published into an exchange on a channel", c.published),
        ("rabbitmq_channel_messages_confirmed_total", "Total number of messages published into an exchange and confirmed on the channel", c.confirmed),
        ("rabbitmq_channel_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", c.returned_unroutable),
        ("rabbitmq_channel_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", c.dropped_unroutable),
        ("rabbitmq_channel_get_ack_total", "Total number of messages fetched with basic.get in manual acknowledgement mode", c.got),
        ("rabbitmq_channel_get_total", "Total number of messages fetched with basic.get in automatic acknowledgement mode", c.got_no_ack),
        ("rabbitmq_channel_messages_delivered_ack_total", "Total number of messages delivered to consumers in manual acknowledgement mode", c.delivered),
        ("rabbitmq_channel_messages_delivered_total", "Total number of messages delivered to consumers in automatic acknowledgement mode", c.delivered_no_ack),
        ("rabbitmq_channel_messages_redelivered_total", "Total number of messages redelivered to consumers", c.redelivered),
        ("rabbitmq_channel_messages_acked_total", "Total number of messages acknowledged by consumers", c.acked),
        ("rabbitmq_connection_incoming_bytes_total", "Total number of bytes received on a connection", c.bytes_in),
        ("rabbitmq_connection_outgoing_bytes_total", "Total number of bytes sent on a connection", c.bytes_out),
        ("rabbitmq_global_messages_received_total", "Total number of messages received from publishers", c.published),
        ("rabbitmq_global_messages_routed_total", "Total number of messages routed to queues or streams", c.published.saturating_sub(c.returned_unroutable + c.dropped_unroutable)),
        ("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers", c.delivered + c.delivered_no_ack + c.got + c.got_no_ack),
        ("rabbitmq_global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", c.acked),
        ("rabbitmq_global_messages_confirmed_total", "Total number of messages confirmed to publishers", c.confirmed),
    ];
    for (name, help, v) in rows {
        out.one(name, "counter", help, v as f64);
    }
}

/// Per-queue gauges: with `labels` per queue, or summed without labels.
const QUEUE_GAUGES: [(&str, &str); 9] = [
    (
        "rabbitmq_queue_messages_ready",
        "Messages ready to be delivered to consumers",
    ),
    (
        "rabbitmq_queue_messages_unacked",
        "Messages delivered to consumers but not yet acknowledged",
    ),
    (
        "rabbitmq_queue_messages",
        "Sum of ready and unacknowledged messages - total queue depth",
    ),
    (
        "rabbitmq_queue_messages_ready_bytes",
        "Size in bytes of ready messages",
    ),
    (
        "rabbitmq_queue_messages_unacked_bytes",
        "Size in bytes of all unacknowledged messages",
    ),
    (
        "rabbitmq_queue_messages_bytes",
        "Size in bytes of ready and unacknowledged messages",
    ),
    ("rabbitmq_queue_messages_persistent", "Persistent messages"),
    (
        "rabbitmq_queue_messages_ram_bytes",
        "Size of ready and unacknowledged messages stored in memory",
    ),
    ("rabbitmq_queue_consumers", "Consumers on a queue"),
];

fn gauge_values(q: &QueueRow) -> [f64; 9] {
    [
        q.ready as f64,
        q.unacked as f64,
        (q.ready + q.unacked) as f64,
        q.ready_bytes as f64,
        q.unacked_bytes as f64,
        (q.ready_bytes + q.unacked_bytes) as f64,
        q.persistent as f64,
        (q.ram_bytes + q.unacked_bytes) as f64,
        q.consumers as f64,
    ]
}

fn queue_metrics(out: &mut Out, queues: &[QueueRow], per_object: bool) {
    let labels: Vec<String> = queues
        .iter()
        .map(|q| {
            format!(
                "vhost=\"{}\",queue=\"{}\"",
                escape(&q.vhost),
                escape(&q.name)
            )
        })
        .collect();
    for (i, (name, help)) in QUEUE_GAUGES.iter().enumerate() {
        out.family(name, "gauge", help);
        if per_object {
            for (q, l) in queues.iter().zip(&labels) {
                out.sample(name, l, gauge_values(q)[i]);
            }
        } else {
            out.sample(name, "", queues.iter().map(|q| gauge_values(q)[i]).sum());
        }
    }
    out.family(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
    );
    if per_object {
        for (q, l) in queues.iter().zip(&labels) {
            out.sample(
                "rabbitmq_queue_messages_published_total",
                l,
                q.counters.published as f64,
            );
        }
    } else {
        let total: u64 = queues.iter().map(|q| q.counters.published).sum();
        out.sample("rabbitmq_queue_messages_published_total", "", total as f64);
    }
    for (name, help, pick) in [
        (
            "ringmq_queue_publish_to_deliver_seconds",
            "Time from publish to delivery (or basic.get) of messages of a queue",
            QueueRow::deliver_latency as fn(&QueueRow) -> &Histogram,
        ),
        (
            "ringmq_queue_publish_to_confirm_seconds",
            "Time from publish to confirm of messages confirmed once on disk",
            QueueRow::confirm_latency,
        ),
    ] {
        out.family(name, "histogram", help);
        if per_object {
            for (q, l) in queues.iter().zip(&labels) {
                if !pick(q).counts.is_empty() {
                    out.histogram(name, l, pick(q));
                }
            }
        } else {
            let mut all = Histogram::default();
            for q in queues {
                all.add(pick(q));
            }
            if !all.counts.is_empty() {
                out.histogram(name, "", &all);
            }
        }
    }
}

async fn render(view: &dyn BrokerView, per_object: bool) -> Result<String, ApiError> {
    let node = view.node().await?;
    let queues = view.queues(None).await?;
    let conns = view.connections().await?;
    let mut out = Out(String::with_capacity(
        4096 + queues.len() * if per_object { 1500 } else { 0 },
    ));
    node_metrics(&mut out, &node, &conns, queues.len());
    queue_metrics(&mut out, &queues, per_object);
    Ok(out.0)
}

/// `GET /metrics`: aggregated.
async fn aggregated(
    State(view): State<std::sync::Arc<dyn BrokerView>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(view.as_ref(), false).await?,
    ))
}

/// `GET /metrics/per-object`: queue metrics per queue.
async fn per_object(
    State(view): State<std::sync::Arc<dyn BrokerView>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(view.as_ref(), true).await?,
    ))
}
