// RPC as in RabbitMQ's tutorial six with amqplib: a server consuming a
// request queue with prefetch 1, clients with an exclusive reply queue
// matching replies by correlationId; and direct reply-to where the server
// announces it.

const { describe, it } = require('node:test');
const assert = require('node:assert');
const { unique, within, withConn } = require('./lib');

function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/** Starts an RPC server on its own channel of `c`; answers fib(n). */
async function startServer(c, queue) {
  const ch = await c.createChannel();
  await ch.assertQueue(queue, { durable: false, autoDelete: true });
  await ch.prefetch(1);
  await ch.consume(queue, (msg) => {
    const n = Number.parseInt(msg.content.toString(), 10);
    ch.sendToQueue(msg.properties.replyTo, Buffer.from(String(fib(n))), {
      correlationId: msg.properties.correlationId,
    });
    ch.ack(msg);
  });
  return ch;
}

/** A client calling over `replyQueue` (consumed with noAck). */
async function client(c, requestQueue, replyQueue) {
  const ch = await c.createChannel();
  const waiting = new Map();
  let replyTo = replyQueue;
  if (replyTo === null) {
    replyTo = (await ch.assertQueue('', { exclusive: true })).queue;
  }
  await ch.consume(
    replyTo,
    (msg) => {
      const resolve = waiting.get(msg.properties.correlationId);
      if (resolve) {
        waiting.delete(msg.properties.correlationId);
        resolve(Number.parseInt(msg.content.toString(), 10));
      }
    },
    { noAck: true },
  );
  let next = 0;
  return (n) =>
    new Promise((resolve) => {
      const id = `call-${next++}`;
      waiting.set(id, resolve);
      ch.sendToQueue(requestQueue, Buffer.from(String(n)), { correlationId: id, replyTo });
    });
}

describe('rpc', () => {
  it('answers calls over an exclusive reply queue', withConn(async (c, open) => {
    const queue = unique('rpc');
    await startServer(c, queue);
    const call = await client(await open(), queue, null);
    const ns = [0, 1, 2, 10, 20, 25];
    const answers = await within(10000, Promise.all(ns.map(call)), 'rpc calls');
    assert.deepEqual(answers, ns.map(fib));
  }));

  it('serves several clients from two servers', withConn(async (c, open) => {
    const queue = unique('rpc');
    await startServer(c, queue);
    await startServer(await open(), queue);
    const calls = [];
    for (let i = 0; i < 3; i++) {
      const call = await client(await open(), queue, null);
      for (let n = 0; n < 15; n++) calls.push(call(n).then((v) => assert.equal(v, fib(n))));
    }
    await within(10000, Promise.all(calls), '45 rpc calls');
  }));

  it('uses direct reply-to where the server announces it', withConn(async (c, open, t) => {
    if (!c.connection.serverProperties.capabilities.direct_reply_to) {
      t.skip('direct_reply_to is not announced');
      return;
    }
    const queue = unique('rpc');
    await startServer(c, queue);
    const call = await client(await open(), queue, 'amq.rabbitmq.reply-to');
    const answers = await within(10000, Promise.all([5, 6, 7].map(call)), 'direct reply-to calls');
    assert.deepEqual(answers, [5, 8, 13]);
  }));
});
