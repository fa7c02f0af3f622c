#!/usr/bin/env node
// server.js - the reference control plane of docs/control-plane.md, for
// the tests: HTTPS on 127.0.0.1 with a certificate the test made (from a
// private CA of its own), a bearer token, and a log of what it was told.
//
//   node server.js --cert CERT --key KEY --token-file FILE --log FILE
//                  [--status CODE]
//
// Prints "READY <port>" on stdout once listening; exits when its stdin
// closes (the test's end), so it never outlives the test.
//
// Endpoints:
//   POST /v1/idle   the idle report (JSON object); 204, or 401 on a wrong
//                   token, 400 on a body that is not a JSON object, or
//                   --status CODE when given (to test failures)
// Each accepted request is appended to --log as one JSON line:
//   {"path": "/v1/idle", "body": {...}}
'use strict';

const fs = require('fs');
const https = require('https');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
for (const need of ['cert', 'key', 'token-file', 'log']) {
  if (!args[need]) {
    console.error(`server.js: --${need} is required`);
    process.exit(2);
  }
}
const token = fs.readFileSync(args['token-file'], 'utf8').split('\n')[0].trim();
const forced = args.status ? Number(args.status) : 0;

function reply(res, code, obj) {
  const body = obj === undefined ? '' : JSON.stringify(obj) + '\n';
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = https.createServer({
  cert: fs.readFileSync(args.cert),
  key: fs.readFileSync(args.key),
}, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      return reply(res, 401, { error: 'bad or missing bearer token' });
    }
    if (req.method !== 'POST' || req.url !== '/v1/idle') {
      return reply(res, 404, { error: `no endpoint ${req.method} ${req.url}` });
    }
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      return reply(res, 400, { error: 'the body is not JSON' });
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) {
      return reply(res, 400, { error: 'the body is not a JSON object' });
    }
    if (forced) return reply(res, forced, { error: 'told to fail' });
    fs.appendFileSync(args.log, JSON.stringify({ path: req.url, body }) + '\n');
    return reply(res, 204);
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
