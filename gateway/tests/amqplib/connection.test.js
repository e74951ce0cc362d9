// Connecting and closing: the handshake amqplib drives, credentials,
// tuning, and close() completing when publishes are still queued.

const { describe, it } = require('node:test');
const assert = require('node:assert');
const { URL, amqp, connect, next, unique, within, withConn } = require('./lib');

describe('connection', () => {
  it('connects and closes', async () => {
    const c = await connect();
    const closed = next(c, 'close');
    await within(5000, c.close(), 'close()');
    const [err] = await closed;
    assert.equal(err, undefined, 'a clean close emits close without an error');
  });

  it('announces the capabilities amqplib relies on', withConn(async (c) => {
    const props = c.connection.serverProperties;
    for (const cap of ['publisher_confirms', 'basic.nack', 'consumer_cancel_notify',
      'connection.blocked', 'exchange_exchange_bindings', 'per_consumer_qos']) {
      assert.equal(props.capabilities[cap], true, cap);
    }
  }));

  it('refuses bad credentials with ACCESS_REFUSED', async () => {
    const bad = new globalThis.URL(URL);
    bad.username = 'guest';
    bad.password = 'not-the-password';
    await assert.rejects(amqp.connect(bad.toString()), /ACCESS_REFUSED|403/);
  });

  it('refuses an unknown vhost', async () => {
    const url = new globalThis.URL(URL);
    url.pathname = `/${unique('no-such-vhost')}`;
    await assert.rejects(amqp.connect(url.toString()), /ConnectionClose|NOT_ALLOWED|530/);
  });

  it('negotiates heartbeat and frame_max from the URL', withConn(async (_c, open) => {
    const url = new globalThis.URL(URL);
    url.searchParams.set('heartbeat', '7');
    url.searchParams.set('frameMax', '65536');
    const c = await open(url.toString());
    assert.equal(c.connection.heartbeat, 7);
    assert.equal(c.connection.frameMax, 65536);
  }));

  it('takes the server frame_max when the client asks for 0', withConn(async (_c, open) => {
    const url = new globalThis.URL(URL);
    url.searchParams.set('frameMax', '0');
    const c = await open(url.toString());
    assert.ok(c.connection.frameMax >= 4096, `frameMax ${c.connection.frameMax}`);
  }));

  it('closes with channels still open, and close() twice rejects', async () => {
    const c = await connect();
    const chs = await Promise.all([c.createChannel(), c.createChannel(), c.createConfirmChannel()]);
    const chClosed = chs.map((ch) => next(ch, 'close'));
    await within(5000, c.close(), 'close()');
    await Promise.all(chClosed);
    await assert.rejects(c.close(), /closed/i);
  });
});

// The reported bug: amqplib writes each channel's frames from its own
// buffer, round robin with channel 0, so close() right after about a
// thousand publishes sends connection.close before the last publishes. A
// server must answer close-ok and discard the late frames (RabbitMQ does);
// the gateway used to forward them to a broker that had closed, and the
// client got EPIPE and close() never completed.
describe('close() right after publishing', () => {
  for (const size of [100, 1000, 10000, 100000]) {
    for (const confirm of [false, true]) {
      const kind = confirm ? 'confirm channel' : 'channel';
      it(`completes after 1000 publishes of ${size} B on a ${kind}`, async () => {
        for (let round = 0; round < 3; round++) {
          const c = await connect();
          const errors = [];
          c.on('error', (e) => errors.push(e));
          const ch = confirm ? await c.createConfirmChannel() : await c.createChannel();
          ch.on('error', (e) => errors.push(e));
          const { queue } = await ch.assertQueue('', { exclusive: true });
          const body = Buffer.alloc(size, 'x');
          for (let i = 0; i < 1000; i++) ch.sendToQueue(queue, body);
          const closed = next(c, 'close', 10000);
          await within(10000, c.close(), `close() in round ${round}`);
          const [err] = await closed;
          assert.equal(err, undefined, `close event error in round ${round}: ${err}`);
          assert.deepEqual(errors.map(String), [], `errors in round ${round}`);
        }
      });
    }
  }

  it('keeps what was published before the close', async () => {
    const queue = unique('before-close');
    const c = await connect();
    const ch = await c.createConfirmChannel();
    await ch.assertQueue(queue);
    for (let i = 0; i < 1000; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
    await ch.waitForConfirms();
    await within(10000, c.close(), 'close()');

    const check = await connect();
    try {
      const ch2 = await check.createChannel();
      const { messageCount } = await ch2.checkQueue(queue);
      assert.equal(messageCount, 1000);
      await ch2.deleteQueue(queue);
    } finally {
      await check.close();
    }
  });
});
