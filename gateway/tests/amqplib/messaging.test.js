// Publishing and consuming the way amqplib users do: sendToQueue and
// consume, manual acks, nack with and without requeue, prefetch, get,
// message properties, cancel.

const { describe, it } = require('node:test');
const assert = require('node:assert');
const { consumeN, getOne, next, sleep, unique, waitCount, within, withConn } = require('./lib');

describe('publish and consume', () => {
  it('delivers in order with auto-ack', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (let i = 0; i < 100; i++) ch.sendToQueue(queue, Buffer.from(`m${i}`));
    const got = await consumeN(ch, queue, 100);
    assert.deepEqual(
      got.map((m) => m.content.toString()),
      Array.from({ length: 100 }, (_, i) => `m${i}`),
    );
    assert.equal(got[0].fields.routingKey, queue);
    assert.equal(got[0].fields.exchange, '');
    assert.equal(got[0].fields.redelivered, false);
  }));

  it('keeps every basic property and header', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const props = {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      headers: { a: 1, b: 'two', nested: { c: true }, list: [1, 'x'] },
      deliveryMode: 2,
      priority: 3,
      correlationId: 'corr-1',
      replyTo: 'reply-queue',
      expiration: '60000',
      messageId: 'id-1',
      timestamp: 1700000000,
      type: 'greeting',
      userId: 'guest',
      appId: 'amqplib-suite',
    };
    ch.sendToQueue(queue, Buffer.from('{"hello":1}'), props);
    const msg = await getOne(ch, queue);
    const p = msg.properties;
    for (const key of Object.keys(props)) {
      if (key === 'headers') continue;
      assert.deepEqual(p[key], props[key], key);
    }
    assert.deepEqual(p.headers, props.headers);
  }));

  it('carries bodies byte for byte, empty to 1 MiB', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const sizes = [0, 1, 4095, 131064, 131065, 1 << 20];
    const bodies = sizes.map((n) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (i * 31 + n) & 0xff;
      return b;
    });
    for (const b of bodies) ch.sendToQueue(queue, b);
    const got = await consumeN(ch, queue, bodies.length);
    got.forEach((m, i) => assert.ok(m.content.equals(bodies[i]), `body of ${sizes[i]} B`));
  }));

  it('redelivers unacked messages when the consumer channel closes', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (const s of ['a', 'b', 'c']) ch.sendToQueue(queue, Buffer.from(s));
    const consumer = await c.createChannel();
    await consumeN(consumer, queue, 3, { noAck: false });
    await consumer.close();
    const again = await consumeN(ch, queue, 3, { noAck: false }, (m) => ch.ack(m));
    assert.deepEqual(again.map((m) => m.content.toString()), ['a', 'b', 'c']);
    assert.ok(again.every((m) => m.fields.redelivered));
  }));

  it('nack requeues at the head, nack without requeue drops', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (const s of ['1', '2']) ch.sendToQueue(queue, Buffer.from(s));
    const first = await getOne(ch, queue, { noAck: false });
    assert.equal(first.content.toString(), '1');
    ch.nack(first, false, true);
    const again = await getOne(ch, queue, { noAck: false });
    assert.equal(again.content.toString(), '1');
    assert.equal(again.fields.redelivered, true);
    ch.nack(again, false, false);
    const second = await getOne(ch, queue, { noAck: false });
    assert.equal(second.content.toString(), '2');
    ch.reject(second, false);
    await waitCount(ch, queue, 0);
  }));

  it('ack with allUpTo, ackAll and nackAll', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (let i = 0; i < 6; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
    const msgs = [];
    for (let i = 0; i < 6; i++) msgs.push(await getOne(ch, queue, { noAck: false }));
    ch.ack(msgs[2], true); // 0, 1, 2
    ch.nackAll(true); // 3, 4, 5 back
    await waitCount(ch, queue, 3);
    for (let i = 0; i < 3; i++) await getOne(ch, queue, { noAck: false });
    ch.ackAll();
    await waitCount(ch, queue, 0);
  }));

  it('prefetch(1) dispatches fairly to two workers', withConn(async (c) => {
    // A stuck worker holds one message; the other gets all the rest.
    const pub = await c.createChannel();
    const { queue } = await pub.assertQueue('', { exclusive: true });
    const stuck = await c.createChannel();
    const busy = await c.createChannel();
    await stuck.prefetch(1);
    await busy.prefetch(1);
    const held = [];
    const done = [];
    await stuck.consume(queue, (m) => held.push(m), { noAck: false });
    await busy.consume(queue, (m) => {
      done.push(m.content.toString());
      setTimeout(() => busy.ack(m), 5);
    }, { noAck: false });
    for (let i = 0; i < 20; i++) pub.sendToQueue(queue, Buffer.from(String(i)));
    await within(10000, (async () => { while (held.length + done.length < 20) await sleep(10); })(),
      'all 20 dispatched');
    await sleep(100);
    assert.equal(held.length, 1);
    assert.equal(done.length, 19);
    stuck.ack(held[0]);
  }));

  it('prefetch(n) caps unacked deliveries per consumer', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (let i = 0; i < 10; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
    await waitCount(ch, queue, 10);
    await ch.prefetch(3);
    const held = [];
    const until = (n) => within(5000, (async () => { while (held.length < n) await sleep(10); })(),
      `${n} deliveries`);
    await ch.consume(queue, (m) => held.push(m), { noAck: false });
    await until(3);
    await sleep(200);
    assert.equal(held.length, 3);
    ch.ack(held[2], true);
    await until(6);
    await sleep(200);
    assert.equal(held.length, 6);
  }));

  it('get returns false on an empty queue and the remaining count', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    assert.equal(await ch.get(queue), false);
    for (let i = 0; i < 3; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
    await waitCount(ch, queue, 3);
    const msg = await ch.get(queue, { noAck: true });
    assert.equal(msg.content.toString(), '0');
    assert.equal(msg.fields.messageCount, 2);
    assert.equal(msg.fields.redelivered, false);
  }));

  it('cancel stops deliveries; a deleted queue cancels its consumer', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const got = [];
    const { consumerTag } = await ch.consume(queue, (m) => got.push(m), { noAck: true });
    ch.sendToQueue(queue, Buffer.from('one'));
    await within(5000, (async () => { while (got.length < 1) await sleep(10); })(), 'delivery');
    await ch.cancel(consumerTag);
    ch.sendToQueue(queue, Buffer.from('two'));
    await waitCount(ch, queue, 1);
    assert.equal(got.length, 1);

    // consumer_cancel_notify: amqplib calls the callback with null.
    const q2 = unique('cancelled');
    const other = await c.createChannel();
    await other.assertQueue(q2);
    let cancelled;
    const notified = new Promise((resolve) => {
      cancelled = resolve;
    });
    await other.consume(q2, (m) => m === null && cancelled());
    await ch.deleteQueue(q2);
    await within(5000, notified, 'server cancel');
  }));

  it('recover redelivers unacked messages', withConn(async (c) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    ch.sendToQueue(queue, Buffer.from('again'));
    const first = await getOne(ch, queue, { noAck: false });
    assert.equal(first.fields.redelivered, false);
    await ch.recover();
    const second = await getOne(ch, queue, { noAck: false });
    assert.equal(second.content.toString(), 'again');
    assert.equal(second.fields.redelivered, true);
    ch.ack(second);
  }));

  it('purges and deletes with message counts', withConn(async (c) => {
    const ch = await c.createChannel();
    const name = unique('counts');
    await ch.assertQueue(name);
    for (let i = 0; i < 5; i++) ch.sendToQueue(name, Buffer.from('x'));
    await waitCount(ch, name, 5);
    assert.equal((await ch.purgeQueue(name)).messageCount, 5);
    for (let i = 0; i < 2; i++) ch.sendToQueue(name, Buffer.from('x'));
    await waitCount(ch, name, 2);
    assert.equal((await ch.deleteQueue(name)).messageCount, 2);
    const error = next(ch, 'error');
    await assert.rejects(ch.checkQueue(name), /404/);
    await error;
  }));

  it('dead-letters rejected messages and applies per-queue TTL', withConn(async (c) => {
    const ch = await c.createChannel();
    const dlx = unique('dlx');
    await ch.assertExchange(dlx, 'fanout', { autoDelete: true });
    const { queue: dead } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(dead, dlx, '');
    const { queue } = await ch.assertQueue('', {
      exclusive: true,
      deadLetterExchange: dlx,
      messageTtl: 200,
    });
    ch.sendToQueue(queue, Buffer.from('rejected'));
    const m = await getOne(ch, queue, { noAck: false });
    ch.reject(m, false);
    ch.sendToQueue(queue, Buffer.from('expired'));
    const got = await consumeN(ch, dead, 2);
    assert.deepEqual(got.map((x) => x.content.toString()), ['rejected', 'expired']);
    const deaths = got.map((x) => x.properties.headers['x-death'][0].reason);
    assert.deepEqual(deaths, ['rejected', 'expired']);
    await ch.deleteExchange(dlx);
  }));
});
