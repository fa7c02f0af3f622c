#!/usr/bin/env node
/*
 * sdk-interop.js - the official AWS SDK (@aws-sdk/client-s3) as a small CLI,
 * so that cairn's C tests can check that what cairn writes reads back with
 * the SDK, and the other way round.  Going through the verifying proxy
 * (tests/s3/server.js), it is also the check that the proxy accepts real
 * Signature V4.
 *
 *   node sdk-interop.js --endpoint URL [--bucket B] [--region R]
 *        [--access-key K] [--secret-key S] COMMAND ARGS...
 *
 *   put KEY FILE            PutObject with FILE's bytes; prints the ETag
 *   mput KEY FILE [PART_MIB] multipart upload, parts of PART_MIB (default 5);
 *                           prints the ETag
 *   get KEY OUTFILE         GetObject into OUTFILE
 *   list PREFIX             ListObjectsV2 (all pages); one key per line
 *   head KEY                HeadObject; prints "SIZE ETAG" (ETag with quotes)
 *   delete KEY              DeleteObject
 *   mkbucket                CreateBucket of --bucket (signed for us-east-1, so
 *                           that no LocationConstraint is sent)
 *
 * Exits 0 on success; on error prints "sdk-interop: ..." on stderr and
 * exits 1 (2 for a usage error).  Defaults are the test server's.
 */
'use strict';

const fs = require('fs');
const {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand,
} = require('@aws-sdk/client-s3');

const USAGE =
  'usage: node sdk-interop.js --endpoint URL [--bucket B] [--region R] [--access-key K] [--secret-key S]\n' +
  '         put KEY FILE | mput KEY FILE [PART_MIB] | get KEY OUTFILE | list PREFIX | head KEY | delete KEY\n' +
  '         | mkbucket\n';

function usage(msg) {
  process.stderr.write(`sdk-interop: ${msg}\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    endpoint: null,
    bucket: 'cairn-test',
    region: 'auto',
    accessKey: 'CAIRNTESTACCESSKEY01',
    secretKey: 'cairn/test/secret/key/0123456789abcdefghij',
    command: null,
    args: [],
  };
  const valued = {
    '--endpoint': 'endpoint',
    '--bucket': 'bucket',
    '--region': 'region',
    '--access-key': 'accessKey',
    '--secret-key': 'secretKey',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (valued[a]) {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      opts[valued[a]] = argv[++i];
    } else if (a.startsWith('--')) {
      usage(`unknown option ${a}`);
    } else if (!opts.command) {
      opts.command = a;
    } else {
      opts.args.push(a);
    }
  }
  if (!opts.endpoint) usage('--endpoint is required');
  if (!opts.command) usage('no command');
  return opts;
}

function makeClient(opts) {
  return new S3Client({
    endpoint: opts.endpoint,
    region: opts.region,
    forcePathStyle: true,
    credentials: { accessKeyId: opts.accessKey, secretAccessKey: opts.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1, // a test wants to see the first failure, not a retried success
  });
}

async function put(s3, bucket, [key, file]) {
  const out = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: fs.readFileSync(file) }));
  process.stdout.write(`${out.ETag}\n`);
}

async function mput(s3, bucket, [key, file, partMib = '5']) {
  const data = fs.readFileSync(file);
  const partSize = Math.round(Number(partMib) * 1024 * 1024);
  if (!(partSize > 0)) usage(`bad part size ${partMib}`);
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  try {
    const parts = [];
    for (let off = 0, n = 1; off < data.length || n === 1; off += partSize, n++) {
      const body = data.subarray(off, Math.min(off + partSize, data.length));
      const { ETag } = await s3.send(new UploadPartCommand({
        Bucket: bucket, Key: key, UploadId, PartNumber: n, Body: body,
      }));
      parts.push({ PartNumber: n, ETag });
    }
    const out = await s3.send(new CompleteMultipartUploadCommand({
      Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts },
    }));
    process.stdout.write(`${out.ETag}\n`);
  } catch (e) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => {});
    throw e;
  }
}

async function get(s3, bucket, [key, outFile]) {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = await out.Body.transformToByteArray();
  fs.writeFileSync(outFile, bytes);
}

async function list(s3, bucket, [prefix = '']) {
  let token;
  do {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const obj of out.Contents || []) process.stdout.write(`${obj.Key}\n`);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
}

async function head(s3, bucket, [key]) {
  const out = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  process.stdout.write(`${out.ContentLength} ${out.ETag}\n`);
}

async function del(s3, bucket, [key]) {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

async function mkbucket(s3, bucket) {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
}

const COMMANDS = {
  put: { fn: put, args: [2, 2] },
  mput: { fn: mput, args: [2, 3] },
  get: { fn: get, args: [2, 2] },
  list: { fn: list, args: [0, 1] },
  head: { fn: head, args: [1, 1] },
  delete: { fn: del, args: [1, 1] },
  mkbucket: { fn: mkbucket, args: [0, 0], region: 'us-east-1' },
};

let what = 'sdk-interop';

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  what = [opts.command, ...opts.args].join(' ');
  const cmd = COMMANDS[opts.command];
  if (!cmd) usage(`unknown command ${opts.command}`);
  const [min, max] = cmd.args;
  if (opts.args.length < min || opts.args.length > max) usage(`${opts.command}: wrong number of arguments`);
  const s3 = makeClient(cmd.region ? { ...opts, region: cmd.region } : opts);
  try {
    await cmd.fn(s3, opts.bucket, opts.args);
  } finally {
    s3.destroy();
  }
}

main().catch(e => {
  const status = e.$metadata && e.$metadata.httpStatusCode;
  const name = e.name || e.Code || 'Error';
  process.stderr.write(`sdk-interop: ${what}: ` +
    `${name}: ${e.message}${status ? ` (HTTP ${status})` : ''}\n`);
  process.exit(1);
});
