// Channels: opening many, closing, and soft errors that close one channel
// and leave the connection and its other channels working.

const { describe, it } = require('node:test');
const assert = require('node:assert');
const { getOne, next, unique, withConn } = require('./lib');

describe('channels', () => {
  it('opens and closes many channels on one connection', withConn(async (c) => {
    const chs = [];
    for (let i = 0; i < 50; i++) chs.push(await c.createChannel());
    const numbers = new Set(chs.map((ch) => ch.ch));
    assert.equal(numbers.size, 50);
    await Promise.all(chs.map((ch) => ch.close()));
    // Channel numbers are reused after close.
    const again = await c.createChannel();
    assert.ok(again.ch >= 1);
    await again.close();
  }));

  it('a 404 closes the channel only', withConn(async (c) => {
    const ch = await c.createChannel();
    const other = await c.createChannel();
    const error = next(ch, 'error');
    const closed = next(ch, 'close');
    await assert.rejects(ch.checkQueue(unique('missing')), /404|NOT_FOUND/);
    const [err] = await error;
    assert.equal(err.code, 404);
    assert.match(err.message, /NOT_FOUND - no queue/);
    await closed;
    // The connection and its other channels go on.
    const { queue } = await other.assertQueue('', { exclusive: true });
    other.sendToQueue(queue, Buffer.from('still here'));
    const msg = await getOne(other, queue);
    assert.equal(msg.content.toString(), 'still here');
    const fresh = await c.createChannel();
    await fresh.checkQueue(queue);
  }));

  it('redeclaring a queue with other properties is 406 PRECONDITION_FAILED', withConn(async (c) => {
    const name = unique('q');
    const ch = await c.createChannel();
    ch.on('error', () => {});
    await ch.assertQueue(name, { durable: false, autoDelete: true });
    await assert.rejects(ch.assertQueue(name, { durable: true }), (err) => {
      assert.equal(err.code, 406);
      assert.match(err.message, /PRECONDITION_FAILED - inequivalent arg 'durable'/);
      return true;
    });
    const ch2 = await c.createChannel();
    await ch2.deleteQueue(name);
  }));

  it('an exclusive queue of another connection is 405 RESOURCE_LOCKED', withConn(async (c, open) => {
    const ch = await c.createChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    const c2 = await open();
    const ch2 = await c2.createChannel();
    ch2.on('error', () => {});
    await assert.rejects(ch2.consume(queue, () => {}), (err) => {
      assert.equal(err.code, 405);
      assert.match(err.message, /RESOURCE_LOCKED/);
      return true;
    });
  }));

  it('publishing to a missing exchange closes the channel with 404', withConn(async (c) => {
    const ch = await c.createChannel();
    const error = next(ch, 'error');
    ch.publish(unique('no-such-exchange'), 'rk', Buffer.from('x'));
    const [err] = await error;
    assert.equal(err.code, 404);
    assert.match(err.message, /NOT_FOUND - no exchange/);
  }));
});
