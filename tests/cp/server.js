#!/usr/bin/env node
// server.js - the reference control plane of docs/control-plane.md, for
// the tests: HTTPS on 127.0.0.1 with a certificate the test made (from a
// private CA of its own), a bearer token, and a log of what it was told.
//
//   node server.js --cert CERT --key KEY --token-file FILE --log FILE
//                  [--status CODE] [--keks FILE[,FILE...]] [--bad-reply-tenant T]
//                  [--decrypt-only-tenant T]
//                  [--record-keys FILE]
//
// Prints "READY <port>" on stdout once listening; exits when its stdin
// closes (the test's end), so it never outlives the test.
//
// Endpoints:
//   POST /v1/idle   the idle report (JSON object); 204, or 401 on a wrong
//                   token, 400 on a body that is not a JSON object, or
//                   --status CODE when given (to test failures)
//   POST /v1/lease  cairnd's lease report (waiting, taken, lost, held): as
//                   /v1/idle, logged only
//   POST /v1/unwrap  unwraps a workspace key with the tenant key of that id
//                   among --keks (files in cairn's tenant key text form),
//                   as a real control plane would with libsodium; 200
//                   {"key": base64}, 404 for a tenant key it lacks, 422 for
//                   a wrapped key that does not open; for tenant T of
//                   --bad-reply-tenant it answers 200 with no key in it;
//                   for --decrypt-only-tenant it does not compare the wrap's
//                   ids with the request's (a KMS that only decrypts);
//                   --record-keys FILE appends each key it hands out (hex)
//                   to FILE, so a test can look for them where they must
//                   not be (a real control plane never does this)
//   POST /v1/generation  records the highest head generation reported for
//                   the workspace and answers 200 {"generation": highest}
//   POST /v1/keyset  the same for the workspace's key set serial:
//                   200 {"keyset": highest}
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
const sodium = require('libsodium-wrappers');

// Tenant keys by id: "cairn-kek-v1:<16 hex id>:<base64 of 32 bytes>".
const keks = new Map();
for (const f of (args.keks || '').split(',').filter(Boolean)) {
  const m = /^cairn-kek-v1:([0-9a-f]{16}):([A-Za-z0-9+/=]{44})\n?$/.exec(fs.readFileSync(f, 'utf8'));
  if (!m) {
    console.error(`server.js: ${f} is not a tenant key`);
    process.exit(2);
  }
  keks.set(m[1], Buffer.from(m[2], 'base64'));
}
const generation = highest('generation', new Map());
const keyset = highest('keyset', new Map());

// The wrapped key layout of docs/format.md ("Wrapped workspace keys").
function unwrap(body) {
  const obj = Buffer.from(String(body.wrapped || ''), 'base64');
  if (obj.length < 52 || obj.subarray(0, 8).toString('latin1') !== 'cairnkey' || obj[8] !== 1 || obj[10] !== 1) {
    return [400, { error: 'wrapped is not a cairn wrapped key (version 1, XChaCha20-Poly1305)' }];
  }
  const hlen = 52 + obj[11];
  const kekId = obj.subarray(20, 28).toString('hex');
  const wsId = obj.subarray(52, hlen).toString('latin1');
  if (obj.length !== hlen + 24 + 32 + 16) return [400, { error: 'wrapped key has the wrong length' }];
  // --decrypt-only-tenant: a control plane that only decrypts, as a
  // third-party KMS might; the VM must have checked the ids itself
  const checks = body.tenant !== args['decrypt-only-tenant'];
  if (checks && (wsId !== body.workspace_id || kekId !== body.kek_id || obj.subarray(12, 20).toString('hex') !== body.key_id)) {
    return [400, { error: 'the wrapped key does not hold the ids of the request' }];
  }
  const kek = keks.get(kekId);
  if (!kek) return [404, { error: `no tenant key ${kekId}` }];
  const wrapKey = sodium.crypto_kdf_derive_from_key(32, 1, 'cairnwrp', kek);
  try {
    const key = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, obj.subarray(hlen + 24),
      obj.subarray(0, hlen), obj.subarray(hlen, hlen + 24), wrapKey);
    if (body.tenant === args['bad-reply-tenant']) return [200, { key: 'not-a-key' }];
    if (args['record-keys']) fs.appendFileSync(args['record-keys'], Buffer.from(key).toString('hex') + '\n');
    return [200, { key: Buffer.from(key).toString('base64') }];
  } catch (e) {
    return [422, { error: `key ${body.key_id} does not open with tenant key ${kekId}` }];
  }
}

// A counter the control plane keeps per workspace, never lowered: the
// endpoint for member `name` records it and answers the highest seen.
function highest(name, seen) {
  return (body) => {
    const v = body[name];
    if (!Number.isInteger(v) || v < 0 || typeof body.workspace_id !== 'string') {
      return [400, { error: `${name} (an integer >= 0) and workspace_id are required` }];
    }
    const k = `${body.tenant}/${body.workspace_id}`;
    seen.set(k, Math.max(seen.get(k) || 0, v));
    return [200, { [name]: seen.get(k) }];
  };
}

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
    const endpoints = { '/v1/idle': null, '/v1/lease': null, '/v1/unwrap': unwrap, '/v1/generation': generation,
      '/v1/keyset': keyset };
    if (req.method !== 'POST' || !(req.url in endpoints)) {
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
    const logged = req.url === '/v1/unwrap' ? { ...body, wrapped: '(not logged)' } : body;
    fs.appendFileSync(args.log, JSON.stringify({ path: req.url, body: logged }) + '\n');
    if (!endpoints[req.url]) return reply(res, 204);
    const [code, answer] = endpoints[req.url](body);
    return reply(res, code, answer);
  });
});

sodium.ready.then(() => server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
}));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
