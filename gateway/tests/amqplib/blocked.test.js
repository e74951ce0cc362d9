// connection.blocked / connection.unblocked as amqplib reports them: a
// publisher is told 'blocked' (with the reason) while the server is over
// its memory watermark, what it publishes meanwhile is held, not lost, and
// 'unblocked' follows when the alarm clears. amqplib's close() while
// blocked resolves at once (it does not wait for close-ok).
//
// How the alarm is raised depends on the server:
// - ringmq (RINGMQ_BIN and RINGMQ_BROKER, as with_ringmq.sh sets them): a
//   second gateway with a 1 MiB watermark in front of the same broker, and
//   a consumer process that stops reading while 16 MiB are delivered to it,
//   so the gateway holds more than its watermark; killing it clears that.
// - RabbitMQ (RABBITMQCTL, a shell command prefix for rabbitmqctl):
//   set_vm_memory_high_watermark, back to 0.4 afterwards.
// Skipped when neither is set.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const { execSync, spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { URL, connect, getOne, next, sleep, unique, within } = require('./lib');

const BIN = process.env.RINGMQ_BIN;
const BROKER = process.env.RINGMQ_BROKER;
const RABBITMQCTL = process.env.RABBITMQCTL;
const skip = !(BIN && BROKER) && !RABBITMQCTL && 'needs RINGMQ_BIN+RINGMQ_BROKER or RABBITMQCTL';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitListening(port, proc) {
  const end = Date.now() + 20000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`gateway exited with ${proc.exitCode}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.end() && resolve(true));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`gateway did not listen on ${port}`);
    await sleep(50);
  }
}

/**
 * ringmq: a gateway with a 1 MiB watermark. A consumer that stops reading
 * after its first delivery, with 16 MiB waiting in its queue, leaves the
 * gateway holding its maximum output for that client (4 MiB) for as long as
 * it lives: the alarm stays raised, without flapping, until it is killed.
 */
function ringmqAlarm() {
  let gateway;
  let consumer;
  let probe;
  const queue = unique('stalled');
  const alarm = {
    url: null,
    async start() {
      const port = await freePort();
      gateway = spawn(path.join(BIN, 'ringmq-gateway'), [
        '--listen', `127.0.0.1:${port}`, '--broker', BROKER, '--memory-high-watermark', '1MiB',
      ], { stdio: 'inherit', env: { ...process.env, RINGMQ_LOG: 'error' } });
      await waitListening(port, gateway);
      const url = new globalThis.URL(URL);
      url.port = String(port);
      alarm.url = url.toString();
    },
    async raise() {
      // The backlog goes in through the main gateway.
      const filler = await connect();
      try {
        const ch = await filler.createConfirmChannel();
        await ch.assertQueue(queue, { autoDelete: false });
        for (let i = 0; i < 64; i++) ch.sendToQueue(queue, Buffer.alloc(256 * 1024));
        await within(30000, ch.waitForConfirms(), 'backlog confirmed');
      } finally {
        await filler.close();
      }
      // A consumer in its own process whose event loop stops at its first
      // delivery: it never reads its socket again.
      consumer = spawn(process.execPath, ['-e', `
        const amqp = require('amqplib');
        (async () => {
          const c = await amqp.connect(${JSON.stringify(alarm.url)});
          const ch = await c.createChannel();
          await ch.consume(${JSON.stringify(queue)}, () => {
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000);
          }, { noAck: true });
        })();
      `], { cwd: __dirname, stdio: 'inherit' });
      // A connection that has published is told when the alarm is raised.
      probe = await connect(alarm.url);
      probe.on('error', () => {});
      const blocked = next(probe, 'blocked', 30000);
      (await probe.createChannel()).sendToQueue(unique('nowhere'), Buffer.from('probe'));
      await blocked;
    },
    async clear() {
      const unblocked = next(probe, 'unblocked', 20000);
      consumer.kill('SIGKILL');
      await unblocked;
    },
    async stop() {
      if (consumer && consumer.exitCode === null) consumer.kill('SIGKILL');
      if (probe) await probe.close().catch(() => {});
      const c = await connect().catch(() => null);
      if (c) {
        await (await c.createChannel()).deleteQueue(queue).catch(() => {});
        await c.close().catch(() => {});
      }
      if (gateway && gateway.exitCode === null) {
        const exited = new Promise((resolve) => gateway.once('exit', resolve));
        gateway.kill('SIGTERM');
        await within(10000, exited, 'gateway exit').catch(() => gateway.kill('SIGKILL'));
      }
    },
  };
  return alarm;
}

/** RabbitMQ: the memory watermark set through rabbitmqctl. */
function rabbitmqAlarm() {
  const ctl = (args) => execSync(`${RABBITMQCTL} ${args}`, { stdio: 'ignore', shell: '/bin/bash' });
  return {
    url: URL,
    async start() {},
    async raise() {
      ctl('set_vm_memory_high_watermark 0.0000001');
    },
    async clear() {
      ctl('set_vm_memory_high_watermark 0.4');
    },
    async stop() {
      ctl('set_vm_memory_high_watermark 0.4');
    },
  };
}

describe('connection.blocked', { skip }, () => {
  const alarm = BIN && BROKER ? ringmqAlarm() : rabbitmqAlarm();
  before(() => alarm.start());
  after(() => alarm.stop());

  it('blocks a publisher over the watermark, holds its publishes, unblocks it', async () => {
    const c = await connect(alarm.url);
    const closer = await connect(alarm.url);
    try {
      const events = [];
      c.on('blocked', (reason) => events.push(`blocked: ${reason}`));
      c.on('unblocked', () => events.push('unblocked'));
      const ch = await c.createChannel();
      const { queue } = await ch.assertQueue('', { exclusive: true });
      const closerCh = await closer.createChannel();
      closerCh.on('error', () => {});

      await alarm.raise();
      const blocked = next(c, 'blocked', 10000);
      const closerBlocked = next(closer, 'blocked', 10000);
      ch.sendToQueue(queue, Buffer.from('held'));
      closerCh.sendToQueue(unique('nowhere'), Buffer.from('from the closer'));
      const [reason] = await blocked;
      assert.match(reason, /low on memory/);
      await closerBlocked;
      // amqplib closes a blocked connection without waiting for close-ok.
      await within(2000, closer.close(), 'close() while blocked');

      const unblocked = next(c, 'unblocked', 20000);
      await alarm.clear();
      await unblocked;
      assert.deepEqual(events, [`blocked: ${reason}`, 'unblocked']);
      const msg = await getOne(ch, queue);
      assert.equal(msg.content.toString(), 'held');
    } finally {
      await c.close().catch(() => {});
      await closer.close().catch(() => {});
    }
  });
});
