#!/usr/bin/env node
/*
 * s3rver-tls.js - s3rver 3.7.1 served directly over TLS on loopback, for the
 * benchmarks (tests/bench/s3-tls.sh starts and stops it).
 *
 * Plain s3rver, no proxy: restic and cairn both talk to it straight, over
 * HTTPS.  TLS is not decoration: over plain HTTP restic (minio-go) sends
 * `aws-chunked` bodies, which s3rver stores with the chunk framing in them.
 *
 *   node s3rver-tls.js --dir DIR --key KEY.pem --cert CERT.pem
 *                      [--port 0] [--bucket bench]...
 *
 * Listens on 127.0.0.1 only (port 0: a free one), prints "READY <port>" on
 * stdout, and stops on SIGTERM/SIGINT.  It counts requests; two paths that
 * no S3 bucket can have serve the counters:
 *   GET  /__bench/stats  ->  {"requests":N,"by_method":{...},"by_status":{...},
 *                             "bytes_in":N,"bytes_out":N}
 *   POST /__bench/reset  ->  zeroes them
 * bytes_in/bytes_out sum the Content-Length of request and response bodies.
 *
 * Needs NODE_PATH=tests/node_modules (`cd tests && npm ci`).
 */
'use strict';

const fs = require('fs');
const https = require('https');
const S3rver = require('s3rver');

function parseArgs(argv) {
  const a = { dir: null, key: null, cert: null, port: 0, buckets: [] };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--dir': a.dir = v; i++; break;
      case '--key': a.key = v; i++; break;
      case '--cert': a.cert = v; i++; break;
      case '--port': a.port = Number(v); i++; break;
      case '--bucket': a.buckets.push(v); i++; break;
      default:
        process.stderr.write(`s3rver-tls: unknown argument ${argv[i]}\n`);
        process.exit(2);
    }
  }
  if (!a.dir || !a.key || !a.cert) {
    process.stderr.write('usage: node s3rver-tls.js --dir DIR --key KEY --cert CERT [--port N] [--bucket NAME]...\n');
    process.exit(2);
  }
  if (!a.buckets.length) a.buckets.push('bench');
  return a;
}

function zero() {
  return { requests: 0, by_method: {}, by_status: {}, bytes_in: 0, bytes_out: 0 };
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  fs.mkdirSync(a.dir, { recursive: true });
  const app = new S3rver({
    directory: a.dir,
    silent: true,
    configureBuckets: a.buckets.map(name => ({ name })),
  });
  app.on('error', () => {}); /* s3rver answers the client; keep stderr quiet */
  await app.configureBuckets();
  const handle = app.callback();
  let stats = zero();

  const server = https.createServer(
    { key: fs.readFileSync(a.key), cert: fs.readFileSync(a.cert) },
    (req, res) => {
      if (req.url === '/__bench/stats') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(stats) + '\n');
        return;
      }
      if (req.url === '/__bench/reset') {
        stats = zero();
        res.end('{}\n');
        return;
      }
      const s = stats;
      s.requests++;
      s.by_method[req.method] = (s.by_method[req.method] || 0) + 1;
      s.bytes_in += Number(req.headers['x-amz-decoded-content-length'] || req.headers['content-length'] || 0);
      res.on('finish', () => {
        const k = `${res.statusCode}`;
        s.by_status[k] = (s.by_status[k] || 0) + 1;
        if (req.method !== 'HEAD') s.bytes_out += Number(res.getHeader('content-length') || 0);
      });
      handle(req, res);
    },
  );
  server.keepAliveTimeout = 60000;
  server.headersTimeout = 65000;
  server.requestTimeout = 0;
  server.listen(a.port, '127.0.0.1', () => {
    process.stdout.write(`READY ${server.address().port}\n`);
  });

  const stop = () => {
    server.close(() => process.exit(0));
    if (server.closeAllConnections) server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  process.stderr.write(`s3rver-tls: ${err.stack || err}\n`);
  process.exit(1);
});
