// Preloaded (node --require) into amqplib's own test suite.
//
// 1. Its tests connect to amqp://localhost (port 5672): those connections
//    go to the server under test instead, AMQP_PORT on 127.0.0.1.
//    Connections to other ports (the suite's own fake servers) are left
//    alone.
// 2. amqplib runs it with --test-timeout=1000, but Node 20 applies that to
//    each test file as a whole; here every `it`/`test` without a timeout of
//    its own, and every hook, gets TEST_TIMEOUT_MS (default 5000), so a test
//    that hangs fails alone and the rest of its file still runs.

const net = require('node:net');
const nodeTest = require('node:test');

const port = Number(process.env.AMQP_PORT);
if (!port) throw new Error('preload.js needs AMQP_PORT');

function redirect(args) {
  const [first] = args;
  if (first && typeof first === 'object' && Number(first.port) === 5672) {
    const host = first.host === 'localhost' || !first.host ? '127.0.0.1' : first.host;
    return [{ ...first, host, port }, ...args.slice(1)];
  }
  return args;
}

const connect = net.connect;
net.connect = (...args) => connect(...redirect(args));
net.createConnection = net.connect;

const timeout = Number(process.env.TEST_TIMEOUT_MS || 5000);

function withTimeout(fn) {
  const wrapped = (name, ...rest) => {
    if (typeof rest[0] === 'function' || rest.length === 0) return fn(name, { timeout }, ...rest);
    if (rest[0] && typeof rest[0] === 'object' && rest[0].timeout === undefined) {
      return fn(name, { ...rest[0], timeout }, ...rest.slice(1));
    }
    return fn(name, ...rest);
  };
  return Object.assign(wrapped, fn);
}

function hookWithTimeout(hook) {
  return (fn, options = {}) => hook(fn, { timeout, ...options });
}

nodeTest.it = withTimeout(nodeTest.it);
nodeTest.test = withTimeout(nodeTest.test);
for (const hook of ['before', 'after', 'beforeEach', 'afterEach']) {
  nodeTest[hook] = hookWithTimeout(nodeTest[hook]);
}
