"""RabbitMQ's rabbitmqadmin, unchanged, against the server's management API
(MGMT_PORT, default 15672, guest/guest): list, declare, delete, purge,
publish, get, export and import work and print what RabbitMQ would."""
import json
import os
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = os.environ.get("MGMT_PORT", "15672")
RUN = uuid.uuid4().hex[:6]


def admin(*args, check=True):
    cmd = [sys.executable, os.path.join(HERE, "rabbitmqadmin"), "-P", PORT, "-f", "raw_json", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check:
        assert out.returncode == 0, f"{args}: {out.stdout} {out.stderr}"
    return out


def listing(kind, *columns):
    return json.loads(admin("list", kind, *columns).stdout)


@pytest.fixture
def names():
    q, x = f"ra-q-{RUN}", f"ra-x-{RUN}"
    yield q, x
    admin("delete", "queue", f"name={q}", check=False)
    admin("delete", "exchange", f"name={x}", check=False)


def test_declare_publish_get_purge_delete(names):
    q, x = names
    admin("declare", "queue", f"name={q}", "durable=true", 'arguments={"x-max-length": 10}')
    admin("declare", "exchange", f"name={x}", "type=topic")
    admin("declare", "binding", f"source={x}", f"destination={q}", "routing_key=a.*")
    assert "Message published" in admin("-f", "tsv", "publish", f"exchange={x}", "routing_key=a.b", "payload=hello").stdout
    admin("publish", f"routing_key={q}", "payload=world")

    queue = [r for r in listing("queues", "name", "messages", "durable", "arguments") if r["name"] == q][0]
    assert queue["messages"] == 2 and queue["durable"] is True
    assert queue["arguments"] == {"x-max-length": 10}
    assert {"source": x, "destination": q, "routing_key": "a.*"} in [
        {k: b[k] for k in ("source", "destination", "routing_key")} for b in listing("bindings")
    ]
    got = json.loads(admin("get", f"queue={q}", "count=2", "ackmode=ack_requeue_true").stdout)
    assert [m["payload"] for m in got] == ["hello", "world"]
    assert [m["routing_key"] for m in got] == ["a.b", q]

    admin("purge", "queue", f"name={q}")
    assert [r["messages"] for r in listing("queues", "name", "messages") if r["name"] == q] == [0]
    admin("delete", "binding", f"source={x}", f"destination={q}", "destination_type=queue", "properties_key=a.%2A")
    assert not [b for b in listing("bindings") if b["source"] == x]
    admin("delete", "queue", f"name={q}")
    admin("delete", "exchange", f"name={x}")
    assert q not in [r["name"] for r in listing("queues", "name")]
    assert x not in [r["name"] for r in listing("exchanges", "name")]


def test_export_then_import_restores_what_was_deleted(names, tmp_path):
    q, x = names
    admin("declare", "queue", f"name={q}", "durable=true")
    admin("declare", "exchange", f"name={x}", "type=fanout")
    admin("declare", "binding", f"source={x}", f"destination={q}")
    path = tmp_path / "defs.json"
    assert "Exported definitions" in admin("-f", "tsv", "export", str(path)).stdout
    exported = json.loads(path.read_text())
    assert q in [i["name"] for i in exported["queues"]]
    admin("delete", "queue", f"name={q}")
    admin("delete", "exchange", f"name={x}")
    admin("import", str(path))
    assert q in [r["name"] for r in listing("queues", "name")]
    assert [b["destination"] for b in listing("bindings") if b["source"] == x] == [q]


def test_lists_and_overview():
    for kind in ("connections", "channels", "consumers", "users", "vhosts", "permissions", "exchanges", "nodes"):
        assert isinstance(listing(kind), list), kind
    assert "guest" in [u["name"] for u in listing("users")]
    overview = json.loads(admin("show", "overview").stdout)
    assert overview[0]["rabbitmq_version"]


def test_errors_are_reported_with_the_servers_reason():
    out = admin("delete", "queue", f"name=missing-{RUN}", check=False)
    assert out.returncode != 0
    assert "Not found" in out.stdout + out.stderr
