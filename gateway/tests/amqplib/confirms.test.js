// Publisher confirms through amqplib's ConfirmChannel: per-message
// callbacks, waitForConfirms, nacks from reject-publish, and mandatory
// returns arriving before the confirm.

const { describe, it } = require('node:test');
const assert = require('node:assert');
const { next, unique, waitCount, within, withConn } = require('./lib');

/** publish on a confirm channel as a promise: resolves acked, rejects nacked. */
function confirmed(ch, exchange, key, body, options = {}) {
  return new Promise((resolve, reject) =>
    ch.publish(exchange, key, body, options, (err) => (err ? reject(err) : resolve())),
  );
}

describe('confirm channels', () => {
  it('confirms every publish, in order', withConn(async (c) => {
    const ch = await c.createConfirmChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const order = [];
    const all = [];
    for (let i = 0; i < 500; i++) {
      all.push(confirmed(ch, '', queue, Buffer.from(String(i))).then(() => order.push(i)));
    }
    await within(10000, Promise.all(all), '500 confirms');
    assert.deepEqual(order, Array.from({ length: 500 }, (_, i) => i));
    await waitCount(ch, queue, 500);
  }));

  it('waitForConfirms resolves once everything is confirmed', withConn(async (c) => {
    const ch = await c.createConfirmChannel();
    const name = unique('durable');
    await ch.assertQueue(name, { durable: true });
    for (let i = 0; i < 1000; i++) ch.sendToQueue(name, Buffer.alloc(1024), { persistent: true });
    await within(10000, ch.waitForConfirms(), 'waitForConfirms');
    await waitCount(ch, name, 1000);
    await ch.deleteQueue(name);
  }));

  it('nacks publishes refused by a full reject-publish queue', withConn(async (c) => {
    const ch = await c.createConfirmChannel();
    const { queue } = await ch.assertQueue('', {
      exclusive: true,
      maxLength: 1,
      arguments: { 'x-overflow': 'reject-publish' },
    });
    await confirmed(ch, '', queue, Buffer.from('fits'));
    await assert.rejects(confirmed(ch, '', queue, Buffer.from('refused')), /nack/i);
    await waitCount(ch, queue, 1);
  }));

  it('returns an unroutable mandatory publish before its ack', withConn(async (c) => {
    const ch = await c.createConfirmChannel();
    const events = [];
    const returned = next(ch, 'return');
    ch.on('return', () => events.push('return'));
    const key = unique('nowhere');
    await confirmed(ch, 'amq.direct', key, Buffer.from('lost'), { mandatory: true });
    events.push('ack');
    const [msg] = await returned;
    assert.equal(msg.fields.replyCode, 312);
    assert.equal(msg.fields.replyText, 'NO_ROUTE');
    assert.equal(msg.fields.exchange, 'amq.direct');
    assert.equal(msg.fields.routingKey, key);
    assert.equal(msg.content.toString(), 'lost');
    assert.deepEqual(events, ['return', 'ack']);
  }));

  it('a mandatory publish on a plain channel is returned too', withConn(async (c) => {
    const ch = await c.createChannel();
    const returned = next(ch, 'return');
    ch.publish('', unique('no-queue'), Buffer.from('x'), { mandatory: true });
    const [msg] = await returned;
    assert.equal(msg.fields.replyCode, 312);
  }));

  it('publish reports backpressure and drains', withConn(async (c) => {
    const ch = await c.createConfirmChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    // sendToQueue answers false once 1024 publishes wait in amqplib's
    // channel buffer.
    const body = Buffer.alloc(1024);
    let full = false;
    let sent = 0;
    while (!full && sent < 10000) {
      full = !ch.sendToQueue(queue, body);
      sent++;
    }
    if (full) await next(ch, 'drain', 10000);
    await within(20000, ch.waitForConfirms(), `waitForConfirms of ${sent}`);
    await ch.purgeQueue(queue);
  }));
});
