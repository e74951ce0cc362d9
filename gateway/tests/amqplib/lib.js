// Shared helpers for the amqplib suite. The suite pins down what RabbitMQ
// 3.10 does, so it runs unchanged against RabbitMQ and ringmq's gateway.
//
//   AMQP_URL   the server under test (default amqp://guest:guest@127.0.0.1:5672)
//   AMQP_PORT  used instead when AMQP_URL is unset (run.sh under with_ringmq.sh)

const crypto = require('node:crypto');
const amqp = require('amqplib');

const URL =
  process.env.AMQP_URL || `amqp://guest:guest@127.0.0.1:${process.env.AMQP_PORT || 5672}`;

// How long a helper waits for something before the test fails.
const DEADLINE_MS = 5000;

/** A fresh name, e.g. 't-3f2a9c1b7d0e'. */
function unique(prefix = 't') {
  return `${prefix}-${crypto.randomBytes(6).toString('hex')}`;
}

/** amqplib's promise API connect, to the server under test (or `url`). */
function connect(url = URL, socketOptions = undefined) {
  return amqp.connect(url, socketOptions);
}

/** Rejects when `promise` has not settled within `ms`. */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next `event` emitted by `emitter`, or a rejection after `ms`. */
function next(emitter, event, ms = DEADLINE_MS) {
  return within(
    ms,
    new Promise((resolve) => emitter.once(event, (...args) => resolve(args))),
    `event '${event}'`,
  );
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** basic.get until a message arrives; fails after the deadline. */
async function getOne(ch, queue, options = { noAck: true }) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    const msg = await ch.get(queue, options);
    if (msg) return msg;
    if (Date.now() > end) throw new Error(`no message on ${queue} within ${DEADLINE_MS} ms`);
    await sleep(20);
  }
}

/** Polls checkQueue until its messageCount is `expected`. */
async function waitCount(ch, queue, expected) {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    const { messageCount } = await ch.checkQueue(queue);
    if (messageCount === expected) return;
    if (Date.now() > end) {
      throw new Error(`${queue} has ${messageCount} messages, expected ${expected}`);
    }
    await sleep(20);
  }
}

/**
 * Consumes `count` messages from `queue` on `ch` and resolves with them;
 * `onMessage(msg)` runs for each (e.g. to ack). Cancels the consumer.
 */
async function consumeN(ch, queue, count, options = { noAck: true }, onMessage = () => {}) {
  const got = [];
  let done;
  const all = new Promise((resolve) => {
    done = resolve;
  });
  const { consumerTag } = await ch.consume(
    queue,
    (msg) => {
      got.push(msg);
      onMessage(msg);
      if (got.length === count) done();
    },
    options,
  );
  if (count === 0) done();
  await within(DEADLINE_MS, all, `${count} deliveries from ${queue} (got ${got.length})`);
  await ch.cancel(consumerTag);
  return got;
}

/**
 * Opens a connection for the test and closes it (and any it opened with
 * `open(url)`) afterwards, even when the test failed. Use as
 * `it('...', withConn(async (c, open, t) => { ... }))`; `t` is node:test's
 * context.
 */
function withConn(body) {
  return async (t) => {
    const opened = [];
    const open = async (url = URL) => {
      const c = await connect(url);
      c.on('error', () => {}); // a test that expects errors asserts on them itself
      opened.push(c);
      return c;
    };
    try {
      await body(await open(), open, t);
    } finally {
      for (const c of opened.reverse()) {
        await within(DEADLINE_MS, c.close(), 'connection close').catch(() => {});
      }
    }
  };
}

module.exports = {
  URL,
  DEADLINE_MS,
  amqp,
  connect,
  consumeN,
  getOne,
  next,
  sleep,
  unique,
  waitCount,
  withConn,
  within,
};
