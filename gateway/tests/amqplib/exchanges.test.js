// Exchanges and bindings through amqplib: the four kinds, unbinding,
// exchange-to-exchange bindings, alternate exchanges, declare checks.

const { describe, it } = require('node:test');
const assert = require('node:assert');
const { consumeN, next, unique, waitCount, withConn } = require('./lib');

/** Routing keys of the messages waiting in `queue`, in order. */
async function keysIn(ch, queue, expected) {
  await waitCount(ch, queue, expected);
  const got = await consumeN(ch, queue, expected);
  return got.map((m) => m.fields.routingKey);
}

describe('exchanges and bindings', () => {
  it('fanout copies to every bound queue', withConn(async (c) => {
    const ch = await c.createChannel();
    const ex = unique('fanout');
    await ch.assertExchange(ex, 'fanout', { autoDelete: true });
    const queues = [];
    for (let i = 0; i < 3; i++) {
      const { queue } = await ch.assertQueue('', { exclusive: true });
      assert.match(queue, /^amq\.gen-/);
      await ch.bindQueue(queue, ex, '');
      queues.push(queue);
    }
    ch.publish(ex, 'ignored', Buffer.from('to all'));
    for (const q of queues) assert.deepEqual(await keysIn(ch, q, 1), ['ignored']);
  }));

  it('direct routes by key; unbind stops the route', withConn(async (c) => {
    const ch = await c.createChannel();
    const ex = unique('direct');
    await ch.assertExchange(ex, 'direct', { autoDelete: true });
    const { queue: errors } = await ch.assertQueue('', { exclusive: true });
    const { queue: all } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(errors, ex, 'error');
    for (const key of ['info', 'warning', 'error']) await ch.bindQueue(all, ex, key);
    for (const key of ['info', 'error', 'debug']) ch.publish(ex, key, Buffer.from(key));
    assert.deepEqual(await keysIn(ch, errors, 1), ['error']);
    assert.deepEqual(await keysIn(ch, all, 2), ['info', 'error']);
    await ch.unbindQueue(all, ex, 'info');
    ch.publish(ex, 'info', Buffer.from('info'));
    ch.publish(ex, 'warning', Buffer.from('warning'));
    assert.deepEqual(await keysIn(ch, all, 1), ['warning']);
  }));

  it('topic matches * and #', withConn(async (c) => {
    const ch = await c.createChannel();
    const ex = unique('topic');
    await ch.assertExchange(ex, 'topic', { autoDelete: true });
    const { queue: star } = await ch.assertQueue('', { exclusive: true });
    const { queue: hash } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(star, ex, '*.orange.*');
    await ch.bindQueue(hash, ex, 'lazy.#');
    const keys = ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox',
      'lazy.brown.fox', 'lazy', 'quick.orange.male.rabbit', 'orange'];
    for (const key of keys) ch.publish(ex, key, Buffer.from(key));
    assert.deepEqual(await keysIn(ch, star, 3),
      ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox']);
    assert.deepEqual(await keysIn(ch, hash, 3), ['lazy.orange.elephant', 'lazy.brown.fox', 'lazy']);
  }));

  it('headers matches x-match all and any', withConn(async (c) => {
    const ch = await c.createChannel();
    const ex = unique('headers');
    await ch.assertExchange(ex, 'headers', { autoDelete: true });
    const { queue: all } = await ch.assertQueue('', { exclusive: true });
    const { queue: any } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(all, ex, '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    await ch.bindQueue(any, ex, '', { 'x-match': 'any', format: 'pdf', type: 'report' });
    ch.publish(ex, 'both', Buffer.from('1'), { headers: { format: 'pdf', type: 'report' } });
    ch.publish(ex, 'one', Buffer.from('2'), { headers: { format: 'pdf', type: 'log' } });
    ch.publish(ex, 'none', Buffer.from('3'), { headers: { format: 'zip' } });
    assert.deepEqual(await keysIn(ch, all, 1), ['both']);
    assert.deepEqual(await keysIn(ch, any, 2), ['both', 'one']);
  }));

  it('exchange-to-exchange bindings route through', withConn(async (c) => {
    const ch = await c.createChannel();
    const src = unique('src');
    const dst = unique('dst');
    // Not auto-delete: unbinding dst would delete src.
    await ch.assertExchange(src, 'topic', { durable: false });
    await ch.assertExchange(dst, 'direct', { durable: false });
    await ch.bindExchange(dst, src, 'a.*');
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, dst, 'a.b');
    ch.publish(src, 'a.b', Buffer.from('through'));
    ch.publish(src, 'a.c', Buffer.from('no queue'));
    ch.publish(src, 'b.b', Buffer.from('no binding'));
    assert.deepEqual(await keysIn(ch, queue, 1), ['a.b']);
    await ch.unbindExchange(dst, src, 'a.*');
    ch.publish(src, 'a.b', Buffer.from('unbound'));
    ch.publish(dst, 'a.b', Buffer.from('direct'));
    assert.deepEqual((await consumeN(ch, queue, 1)).map((m) => m.content.toString()), ['direct']);
    await ch.deleteExchange(src);
    await ch.deleteExchange(dst);
  }));

  it('an alternate exchange takes what routes nowhere', withConn(async (c) => {
    const ch = await c.createChannel();
    const ae = unique('ae');
    const ex = unique('main');
    await ch.assertExchange(ae, 'fanout', { autoDelete: true });
    await ch.assertExchange(ex, 'direct', { autoDelete: true, alternateExchange: ae });
    const { queue: lost } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(lost, ae, '');
    const { queue: routed } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(routed, ex, 'known');
    ch.publish(ex, 'known', Buffer.from('a'));
    ch.publish(ex, 'unknown', Buffer.from('b'));
    assert.deepEqual(await keysIn(ch, routed, 1), ['known']);
    assert.deepEqual(await keysIn(ch, lost, 1), ['unknown']);
  }));

  it('checkExchange and redeclare errors; deleteExchange', withConn(async (c) => {
    const ch = await c.createChannel();
    ch.on('error', () => {}); // amqplib closes the connection on an unhandled channel error
    const ex = unique('check');
    await ch.assertExchange(ex, 'direct', { durable: false });
    await ch.checkExchange(ex);
    await ch.checkExchange('amq.topic');
    await assert.rejects(ch.assertExchange(ex, 'fanout', { durable: false }), (err) => {
      assert.equal(err.code, 406);
      assert.match(err.message, /inequivalent arg 'type'/);
      return true;
    });
    const ch2 = await c.createChannel();
    await ch2.deleteExchange(ex);
    const error = next(ch2, 'error');
    await assert.rejects(ch2.checkExchange(ex), /404/);
    await error;
    const ch3 = await c.createChannel();
    ch3.on('error', () => {});
    await assert.rejects(ch3.assertExchange('amq.custom', 'direct'), (err) => {
      assert.equal(err.code, 403);
      assert.match(err.message, /ACCESS_REFUSED/);
      return true;
    });
  }));
});
