"""Browser test of the management dashboard (mgmt/ui) in headless Chromium.

Needs a server that serves the dashboard at UI_URL (/, /app.js, /app.css) and the management API
under UI_URL/api/..., plus the broker's AMQP port (AMQP_PORT) for pika. run.sh beside this file
sets these up; against a real RabbitMQ it puts proxy.py in front of RabbitMQ's API.

Environment: UI_URL (required), AMQP_HOST (127.0.0.1), AMQP_PORT (5672), UI_USER / UI_PASS
(guest / guest), VHOST (/), SCREENSHOT_DIR (/tmp/ringmq-ui-screenshots), CHROMIUM
(/usr/bin/chromium), STATS_WAIT (seconds to wait for lagging statistics, 25).

The tests share one logged-in page and run in file order.
"""
import base64
import json
import os
import pathlib
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pika
import pytest
from playwright.sync_api import expect, sync_playwright

UI_URL = os.environ.get("UI_URL", "").rstrip("/")
AMQP_HOST = os.environ.get("AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("AMQP_PORT", "5672"))
USER = os.environ.get("UI_USER", "guest")
PASS = os.environ.get("UI_PASS", "guest")
VHOST = os.environ.get("VHOST", "/")
SHOTS = pathlib.Path(os.environ.get("SCREENSHOT_DIR", "/tmp/ringmq-ui-screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
STATS_WAIT = float(os.environ.get("STATS_WAIT", "25"))   # RabbitMQ's stats lag about 5 s
WAIT_MS = int(STATS_WAIT * 1000)

RUN = uuid.uuid4().hex[:8]
QUEUE = f"ui-test-{RUN}"
CONN_NAME = f"ringmq-ui-test-{RUN}"
V = urllib.parse.quote(VHOST, safe="")


def tid(name):
    """Locator string for a data-testid."""
    return f'[data-testid="{name}"]'


def api(method, path, body=None):
    """(status, parsed JSON or None) of a call to the management API behind UI_URL."""
    req = urllib.request.Request(UI_URL + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASS}".encode()).decode())
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            text = res.read()
            return res.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None)


def eventually(fn, what, timeout=STATS_WAIT, interval=0.5):
    """fn()'s first truthy result within `timeout` seconds, else an AssertionError."""
    deadline, last = time.time() + timeout, None
    while True:
        try:
            got = fn()
            if got:
                return got
            last = got
        except Exception as e:  # noqa: BLE001 - keep polling, report the last failure
            last = e
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def amqp_connection(name):
    params = pika.ConnectionParameters(
        host=AMQP_HOST, port=AMQP_PORT, virtual_host=VHOST,
        credentials=pika.PlainCredentials(USER, PASS),
        heartbeat=0, blocked_connection_timeout=15,
        client_properties={"connection_name": name})
    return pika.BlockingConnection(params)


@pytest.fixture(scope="session")
def browser():
    if not UI_URL:
        pytest.fail("set UI_URL to the base URL of a server serving the dashboard and /api")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser):
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    pg.on("dialog", lambda d: d.accept())      # Purge / Delete / Close ask for confirmation
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors in the dashboard: {errors}"


@pytest.fixture(scope="module")
def amqp():
    """A pika connection holding a fresh queue with 3 messages in it."""
    conn = amqp_connection(CONN_NAME)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(QUEUE, durable=False, auto_delete=False)
    for i in range(3):
        ch.basic_publish("", QUEUE, f"message {i + 1}".encode())
    yield conn, ch
    try:
        ch.queue_delete(QUEUE)
        conn.close()
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


def queue_depth(ch):
    """Messages in QUEUE as the broker counts them now (no stats lag)."""
    return ch.queue_declare(QUEUE, passive=True).method.message_count


def test_login_rejects_a_bad_password(page):
    page.goto(UI_URL + "/")
    expect(page.locator(tid("login-form"))).to_be_visible()
    shot(page, "01-login")
    page.fill(tid("login-username"), USER)
    page.fill(tid("login-password"), PASS + "-wrong")
    page.click(tid("login-submit"))
    expect(page.locator(tid("login-error"))).to_contain_text("Login failed")
    expect(page.locator(tid("nav"))).to_be_hidden()


def test_login(page):
    page.fill(tid("login-username"), USER)
    page.fill(tid("login-password"), PASS)
    page.click(tid("login-submit"))
    expect(page.locator(tid("nav"))).to_be_visible()
    expect(page.locator(tid("current-user"))).to_have_text(USER)
    assert page.evaluate("() => sessionStorage.getItem('ringmq.auth')"), "credentials not kept in sessionStorage"


def test_overview(page, amqp):
    page.goto(UI_URL + "/#/overview")
    expect(page.locator(tid("product"))).not_to_be_empty()
    status, overview = api("GET", "/api/overview")
    assert status == 200
    expect(page.locator(tid("product"))).to_contain_text(overview["product_name"])
    expect(page.locator(tid("rates-chart"))).to_be_visible()
    expect(page.locator(tid("queued-chart"))).to_be_visible()
    expect(page.locator(tid("total-queues"))).not_to_have_text("–")
    expect(page.locator(tid("nodes-table"))).to_be_visible()
    # two polls (5 s apart) so the charts draw lines, not just points
    expect(page.locator(tid("rates-chart"))).to_have_attribute("data-points", re.compile(r"^([2-9]|\d\d)$"), timeout=15_000)
    _, nodes = api("GET", "/api/nodes")
    if any(n.get("mem_alarm") or n.get("disk_free_alarm") for n in nodes):
        expect(page.locator(tid("alarm-banner")).first).to_be_visible()
    shot(page, "02-overview")


def test_alarms_are_shown_in_red(page):
    """A memory or disk alarm on a node shows as a red banner (the nodes answer is mocked, with
    the alarms turned on, from the server's real one)."""
    _, nodes = api("GET", "/api/nodes")
    for n in nodes:
        n["mem_alarm"] = n["disk_free_alarm"] = True
    pattern = re.compile(r".*/api/nodes$")
    page.route(pattern, lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(nodes)))
    try:
        page.goto(UI_URL + "/#/queues")
        page.goto(UI_URL + "/#/overview")
        banners = page.locator(tid("alarm-banner"))
        expect(banners).to_have_count(2 * len(nodes))
        expect(banners.first).to_contain_text("Memory alarm")
        expect(banners.nth(1)).to_contain_text("Disk alarm")
        assert banners.first.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(220, 38, 38)"
        expect(page.locator(tid("nodes-table"))).to_contain_text("memory ALARM")
        shot(page, "02-overview-alarms")
    finally:
        page.unroute(pattern)


def test_queue_appears_with_its_messages(page, amqp):
    page.goto(UI_URL + "/#/queues")
    expect(page.locator(tid("queues-table"))).to_be_visible()
    page.fill(tid("queue-filter"), QUEUE)
    row = page.locator(tid(f"queue-row-{QUEUE}"))
    expect(row).to_be_visible()
    expect(page.locator(f"{tid('queues-table')} tbody tr")).to_have_count(1)
    # RabbitMQ's statistics lag: the page refreshes itself every 5 s
    expect(row.locator(".col-messages")).to_have_text("3", timeout=WAIT_MS)
    expect(row.locator(".col-ready")).to_have_text("3")
    expect(row.locator(".col-unacked")).to_have_text("0")
    expect(row.locator(".col-vhost")).to_have_text(VHOST)
    shot(page, "03-queues-filtered")
    page.fill(tid("queue-filter"), "")
    expect(page.locator(tid("page-info"))).to_contain_text("Page 1")
    page.click(f"{tid('queues-table')} th.col-messages")   # sort by total messages
    expect(page.locator(f"{tid('queues-table')} th.col-messages .arrow")).to_be_visible()
    shot(page, "03-queues")


def test_purge_from_the_queue_page(page, amqp):
    _, ch = amqp
    page.goto(UI_URL + "/#/queues")
    page.fill(tid("queue-filter"), QUEUE)
    page.locator(tid(f"queue-row-{QUEUE}")).get_by_role("link", name=QUEUE).click()
    expect(page).to_have_url(f"{UI_URL}/#/queues/{V}/{QUEUE}")
    expect(page.locator(tid("queue-messages"))).to_have_text("3", timeout=WAIT_MS)
    expect(page.locator(tid("page-title"))).to_contain_text(QUEUE)
    shot(page, "04-queue")
    page.click(tid("purge"))
    expect(page.locator(tid("action-result"))).to_contain_text("purged")
    assert queue_depth(ch) == 0
    expect(page.locator(tid("queue-messages"))).to_have_text("0", timeout=WAIT_MS)
    eventually(lambda: api("GET", f"/api/queues/{V}/{QUEUE}")[1]["messages"] == 0, "API messages == 0")


def test_publish_then_get_from_the_queue_page(page, amqp):
    _, ch = amqp
    payload = f"hello from the dashboard {RUN} <b>not html</b>"
    page.fill(tid("publish-payload"), payload)
    page.click(tid("publish"))
    expect(page.locator(tid("publish-result"))).to_contain_text("routed")
    eventually(lambda: queue_depth(ch) == 1, "the published message in the queue", timeout=5)
    page.select_option(tid("get-ackmode"), "ack_requeue_false")
    page.click(tid("get"))
    got = page.locator(tid("got-messages"))
    expect(got.locator(tid("got-payload"))).to_have_text(payload)   # shown as text, not markup
    expect(got).to_contain_text(QUEUE)                                # routing key
    assert queue_depth(ch) == 0, "ack_requeue_false should have removed the message"
    expect(page.locator(tid("latency"))).not_to_contain_text("Loading")
    shot(page, "05-queue-get")


def test_latency_histogram(page, amqp):
    """The queue page draws latency histograms; the endpoint's answer is mocked here so the
    drawing is tested whatever the server under test keeps (RabbitMQ has no such endpoint)."""
    les = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, None]
    per = [5, 40, 220, 610, 380, 150, 60, 20, 8, 4, 2, 1, 0, 0]
    cum = [sum(per[: i + 1]) for i in range(len(per))]
    body = {
        "publish_to_deliver": {"buckets": [{"le": le, "count": c} for le, c in zip(les, cum)],
                               "count": cum[-1], "sum": 1.234},
        "publish_to_confirm": {"buckets": [{"le": le, "count": c} for le, c in zip(les, per[::-1][1:] + [0])],
                               "count": sum(per), "sum": 40.5},
    }
    pattern = re.compile(r".*/api/queues/[^/]+/" + re.escape(QUEUE) + r"/latency$")
    page.route(pattern, lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(body)))
    try:
        page.goto(f"{UI_URL}/#/queues/{V}/{QUEUE}")
        for k in ("publish_to_deliver", "publish_to_confirm"):
            expect(page.locator(tid(f"latency-{k}"))).to_have_attribute("data-points", str(len(les)))
        expect(page.locator(tid("latency"))).to_contain_text(f"{sum(per):,} samples")
        expect(page.locator(tid("latency"))).to_contain_text("p50 ≤1 ms")
        shot(page, "05-queue-latency")
    finally:
        page.unroute(pattern)


def test_add_and_delete_a_queue(page):
    name = f"ui-added-{RUN}"
    page.goto(UI_URL + "/#/queues")
    page.select_option(tid("add-queue-vhost"), VHOST)
    page.fill(tid("add-queue-name"), name)
    page.click(tid("add-queue-submit"))
    expect(page.locator(tid("add-queue-result"))).to_contain_text("declared")
    status, q = api("GET", f"/api/queues/{V}/{name}")
    assert status == 200 and q["durable"] is True
    page.goto(f"{UI_URL}/#/queues/{V}/{name}")
    expect(page.locator(tid("queue-messages"))).to_have_text("0", timeout=WAIT_MS)
    page.click(tid("delete"))
    expect(page).to_have_url(f"{UI_URL}/#/queues")
    expect(page.locator(tid("flash"))).to_contain_text("deleted")
    assert api("GET", f"/api/queues/{V}/{name}")[0] == 404


def test_exchanges_and_publish_to_an_exchange(page, amqp):
    _, ch = amqp
    key = f"rk-{RUN}"
    ch.queue_bind(QUEUE, "amq.direct", routing_key=key)
    page.goto(UI_URL + "/#/exchanges")
    table = page.locator(tid("exchanges-table"))
    expect(table).to_contain_text("(AMQP default)")
    row = page.locator(tid("exchange-row-amq.direct") + f'[data-vhost="{VHOST}"]')
    expect(row.locator(".col-type")).to_have_text("direct")
    shot(page, "06-exchanges")
    row.get_by_role("link", name="amq.direct").click()
    expect(page).to_have_url(f"{UI_URL}/#/exchanges/{V}/amq.direct")
    bindings = page.locator(tid("bindings-table"))
    expect(bindings).to_contain_text(QUEUE)
    expect(bindings).to_contain_text(key)
    page.fill(tid("publish-routing-key"), key)
    page.fill(tid("publish-payload"), "via amq.direct")
    page.click(tid("publish"))
    expect(page.locator(tid("publish-result"))).to_contain_text("routed")
    shot(page, "07-exchange")
    method, _, body = eventually(lambda: ch.basic_get(QUEUE, auto_ack=True), "the message in the queue", timeout=5)
    assert body == b"via amq.direct" and method.routing_key == key


def test_connections_lists_and_closes(page, amqp):
    page.goto(UI_URL + "/#/connections")
    table = page.locator(tid("connections-table"))
    expect(table).to_contain_text(CONN_NAME, timeout=WAIT_MS)
    row = table.locator("tbody tr", has_text=CONN_NAME)
    expect(row.locator(".col-user")).to_have_text(USER)
    expect(row.locator(".col-product")).to_contain_text("Pika")
    shot(page, "08-connections")

    victim = amqp_connection(f"{CONN_NAME}-close-me")
    victim_row = table.locator("tbody tr", has_text=f"{CONN_NAME}-close-me")
    expect(victim_row).to_be_visible(timeout=WAIT_MS)
    victim_row.locator(tid("close-connection")).click()
    expect(page.locator(tid("close-result"))).to_contain_text("Closed")

    def closed():
        try:
            victim.process_data_events(time_limit=0.2)
        except pika.exceptions.AMQPConnectionError:
            return True
        return victim.is_closed
    eventually(closed, "the broker to close the connection", timeout=10)
    expect(victim_row).to_have_count(0, timeout=WAIT_MS)
    expect(row).to_be_visible()


def test_channels(page, amqp):
    _, conns = api("GET", "/api/connections")
    ours = next(c["name"] for c in conns if (c.get("client_properties") or {}).get("connection_name") == CONN_NAME)
    page.goto(UI_URL + "/#/channels")
    row = page.locator(tid("channels-table")).locator("tbody tr", has_text=ours).first
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row.locator(".col-connection")).to_have_text(ours)
    expect(row.locator(".col-user")).to_have_text(USER)
    shot(page, "09-channels")


def test_users_vhosts_permissions(page):
    page.goto(UI_URL + "/#/users")
    expect(page.locator(tid(f"user-row-{USER}"))).to_be_visible()
    shot(page, "10-users")
    page.goto(UI_URL + "/#/vhosts")
    expect(page.locator(tid(f"vhost-row-{VHOST}"))).to_be_visible()
    shot(page, "11-vhosts")
    page.goto(UI_URL + "/#/permissions")
    expect(page.locator(tid(f"permission-row-{USER}-{VHOST}"))).to_be_visible()
    shot(page, "12-permissions")


def test_logout(page):
    page.click(tid("logout"))
    expect(page.locator(tid("login-form"))).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('ringmq.auth')") is None
    page.goto(UI_URL + "/#/queues")
    expect(page.locator(tid("login-form"))).to_be_visible()


def test_rejected_stored_credentials_return_to_login(page):
    """A 401 on any page goes back to the login form with the server's reason."""
    page.evaluate("() => sessionStorage.setItem('ringmq.auth', JSON.stringify({user: 'nobody', pass: 'nothing'}))")
    page.goto(UI_URL + "/#/exchanges")
    expect(page.locator(tid("login-form"))).to_be_visible()
    expect(page.locator(tid("login-error"))).to_contain_text("log in again")
    shot(page, "13-login-after-401")
