#!/usr/bin/env node
/*
 * server.js - the S3 server cairn's tests talk to: s3rver 3.7.1 (npm), run
 * in-process, behind a proxy of our own that makes it behave like Cloudflare
 * R2 in strict mode.  One node process, two loopback ports.
 *
 * s3rver alone accepts any well-formed Signature V4, ignores conditional
 * PUT, accepts multipart parts of any size and DeleteObjects without
 * Content-MD5, lists in its own (per path component) order, mishandles some
 * Range headers and gives multipart objects a plain MD5 ETag.  The proxy in
 * front of it:
 *   - verifies every request's Signature V4 with AWS's own signer
 *     (@smithy/signature-v4) and the body's SHA-256, and requires `host` and
 *     every x-amz-* header to be signed (403 otherwise);
 *   - enforces conditional PUT (If-None-Match: *, If-Match), multipart part
 *     sizes (>= 5 MiB and all equal but the last), Content-MD5;
 *   - serves ListObjectsV2, Range, conditional GET, AbortMultipartUpload,
 *     ListMultipartUploads and ListParts itself, and gives multipart objects
 *     S3's "<md5 of md5s>-<parts>" ETag;
 *   - serialises writes per key (and reads against writes) so that s3rver's
 *     in-place writes look atomic;
 *   - counts requests and bytes, and injects faults on request;
 *   - on request, treats conditional writes and multipart completions the
 *     way another real server does (a "mode": Ceph RGW, plain s3rver), so
 *     that tests reproduce their quirks without that server.
 *
 * The C harness (tests/s3srv.h) depends on the command line, the READY line
 * and the /__proxy/ control API; tests/s3/README.md documents all three.
 *
 *   node server.js --dir DIR [--bucket NAME]... [--access-key K]
 *       [--secret-key S] [--region R] [--vhost-suffix SUFFIX] [--verbose]
 *       [--ignore-stdin]
 *   node server.js --self-check
 *
 * Must run on node 18.19 (Debian 12) as well as node 20: CommonJS, plain
 * require() (NODE_PATH may point at a node_modules elsewhere).
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const S3rver = require('s3rver');
const { SignatureV4, getCanonicalHeaders } = require('@smithy/signature-v4');
const { Hash } = require('@smithy/hash-node');

const MiB = 1024 * 1024;
const MIN_PART_SIZE = 5 * MiB;
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_LIST_KEYS = 1000;
const S3RVER_OBJECT_SUFFIX = '._S3rver_object';
const S3RVER_UPLOADS_DIR = '._S3rver_uploads';
const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

const DEFAULTS = {
  dir: null,
  buckets: [],
  accessKey: 'CAIRNTESTACCESSKEY01',
  secretKey: 'cairn/test/secret/key/0123456789abcdefghij',
  region: 'auto',
  vhostSuffix: 's3.cairn.test',
  verbose: false,
  ignoreStdin: false,
  selfCheck: false,
};

/* ------------------------------------------------------------------ */
/* Command line                                                        */

const USAGE =
  'usage: node server.js --dir DIR [--bucket NAME]... [--access-key K] [--secret-key S]\n' +
  '                      [--region R] [--vhost-suffix SUFFIX] [--mode PRESET] [--verbose]\n' +
  '                      [--ignore-stdin]\n' +
  '       node server.js --self-check\n';

function parseArgs(argv) {
  const cfg = { ...DEFAULTS, buckets: [] };
  const valued = {
    '--dir': v => (cfg.dir = v),
    '--bucket': v => cfg.buckets.push(v),
    '--access-key': v => (cfg.accessKey = v),
    '--secret-key': v => (cfg.secretKey = v),
    '--region': v => (cfg.region = v),
    '--vhost-suffix': v => (cfg.vhostSuffix = v.toLowerCase()),
    '--mode': v => {
      try {
        setMode({ preset: v });
      } catch (e) {
        usageError(e.message);
      }
    },
  };
  const flags = {
    '--verbose': () => (cfg.verbose = true),
    '--ignore-stdin': () => (cfg.ignoreStdin = true),
    '--self-check': () => (cfg.selfCheck = true),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (valued[a] && i + 1 < argv.length) {
      valued[a](argv[++i]);
    } else if (flags[a]) {
      flags[a]();
    } else {
      usageError(`unknown or incomplete argument: ${a}`);
    }
  }
  if (!cfg.buckets.length) cfg.buckets.push('cairn-test');
  if (!cfg.dir && !cfg.selfCheck) usageError('--dir is required');
  return cfg;
}

function usageError(msg) {
  process.stderr.write(`server.js: ${msg}\n${USAGE}`);
  process.exit(2);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

let cfg = DEFAULTS; // set by main()

function log(...args) {
  if (cfg.verbose) process.stderr.write(`s3proxy: ${args.join(' ')}\n`);
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const sha256hex = buf => crypto.createHash('sha256').update(buf).digest('hex');
const md5 = buf => crypto.createHash('md5').update(buf).digest();
const byteCompare = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const unquote = etag => String(etag || '').trim().replace(/^W\//, '').replace(/"/g, '');

/* URI-encode as SigV4 and S3 want it: all but A-Z a-z 0-9 - _ . ~ */
function uriEscape(s) {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    c => '%' + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/* The canonical (and backend) form of a decoded key: segments escaped, '/' kept. */
function escapeKey(key) {
  return key.split('/').map(uriEscape).join('/');
}

function xmlEscape(s) {
  return String(s).replace(/[&<>"']/g, c => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;',
  })[c]);
}

function xmlUnescape(s) {
  return String(s).replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (m, e) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(n);
    }
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e];
  });
}

/* Every <tag>text</tag> in xml, unescaped. */
function xmlAll(xml, tag) {
  const re = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g');
  const out = [];
  let m;
  while ((m = re.exec(xml))) out.push(xmlUnescape(m[1]));
  return out;
}

const xmlFirst = (xml, tag) => xmlAll(xml, tag)[0];

/* <tag>escaped value</tag>, or '' when the value is undefined. */
function el(tag, value) {
  return value === undefined ? '' : `<${tag}>${xmlEscape(value)}</${tag}>`;
}

function xmlDoc(body) {
  return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
}

function requestId() {
  return crypto.randomBytes(8).toString('hex').toUpperCase();
}

/* An error the proxy answers itself, in S3's XML form. */
class S3Fail extends Error {
  constructor(status, code, message, extra = {}, headers = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.extra = extra;
    this.headers = headers;
  }
}

const deny = (code, message, extra) => new S3Fail(403, code, message, extra);
const bad = (code, message, extra) => new S3Fail(400, code, message, extra);

/* ------------------------------------------------------------------ */
/* Counters                                                            */

const METHODS = ['get', 'put', 'post', 'delete', 'head'];

function newStats() {
  const s = {
    requests: 0,
    bytes_in: 0,
    bytes_out: 0,
    rejected: 0,
    last_rejection: '',
    faults: 0,
    fault_kinds: {},
    ops: {},
    status: {},
    objects: {},
  };
  for (const m of METHODS) s[m] = { count: 0, bytes_in: 0, bytes_out: 0 };
  return s;
}

let stats = newStats();

function methodStats(method) {
  const m = method.toLowerCase();
  if (!stats[m]) stats[m] = { count: 0, bytes_in: 0, bytes_out: 0 };
  return stats[m];
}

function countRequest(r) {
  stats.requests++;
  stats.bytes_in += r.body.length;
  const m = methodStats(r.method);
  m.count++;
  m.bytes_in += r.body.length;
  stats.ops[r.op] = (stats.ops[r.op] || 0) + 1;
}

/* The kind of a cairn object from its key: the segment after the
 * workspace id ("data", "tree", "index", "snapshots", "head", ...). */
function objectKind(key) {
  const m = /(?:^|\/)workspaces\/[^/]+\/([^/]+)/.exec(key || '');
  return m ? m[1] : 'other';
}

function countResponse(r, status, bytesOut) {
  stats.status[status] = (stats.status[status] || 0) + 1;
  stats.bytes_out += bytesOut;
  methodStats(r.method).bytes_out += bytesOut;
  if (r.method === 'GET' && r.key) {
    const k = `${r.method.toLowerCase()}_${objectKind(r.key)}`;
    if (!stats.objects[k]) stats.objects[k] = { count: 0, bytes_out: 0 };
    stats.objects[k].count++;
    stats.objects[k].bytes_out += bytesOut;
  }
}

function countRejection(fail) {
  stats.rejected++;
  stats.last_rejection = `${fail.code}: ${fail.message}`;
  log('rejected', stats.last_rejection);
}

/* ------------------------------------------------------------------ */
/* Fault rules                                                         */

let faultRules = [];

/* Parses "status:503", "reset", "reset-after", "short", "delay:250",
 * "stall", "stall:MS", "corrupt". */
function parseFaultKind(kind) {
  const m = /^(status|delay|stall):(\d+)$/.exec(kind || '');
  if (m && m[1] === 'status' && Number(m[2]) >= 400 && Number(m[2]) <= 599) {
    return { type: 'status', code: Number(m[2]) };
  }
  if (m && m[1] === 'delay') return { type: 'delay', ms: Number(m[2]) };
  if (m && m[1] === 'stall') return { type: 'stall', ms: Number(m[2]) };
  if (kind === 'stall') return { type: 'stall', ms: 120000 };
  /* "any" or "any:MS": each time one of the kinds above, at random (a
   * stall among them is reset after MS ms, default 3000) */
  const a = /^any(?::(\d+))?$/.exec(kind || '');
  if (a) return { type: 'any', stallMs: a[1] === undefined ? 3000 : Number(a[1]) };
  if (['reset', 'reset-after', 'short', 'corrupt'].includes(kind)) return { type: kind };
  return null;
}

/* A small seeded generator (xorshift32), so a run with prob= faults can be
 * repeated with the same seed. */
let faultSeed = 1;
function faultRandom() {
  faultSeed ^= faultSeed << 13;
  faultSeed >>>= 0;
  faultSeed ^= faultSeed >>> 17;
  faultSeed ^= faultSeed << 5;
  faultSeed >>>= 0;
  return faultSeed / 4294967296;
}

function addFaultRule(query) {
  const fault = parseFaultKind(query.kind);
  if (!fault) throw new Error(`bad fault kind ${JSON.stringify(query.kind)}`);
  const prob = query.prob === undefined ? 1 : Number(query.prob);
  if (!(prob > 0 && prob <= 1)) throw new Error('prob must be a number in (0, 1]');
  /* with a probability and no count, the rule stays until a reset */
  const count = query.count === undefined ? (query.prob === undefined ? 1 : Infinity) : Number(query.count);
  if (!(Number.isInteger(count) || count === Infinity) || count < 1) throw new Error('count must be an integer >= 1');
  if (query.seed !== undefined) {
    const seed = Number(query.seed);
    if (!Number.isInteger(seed) || seed < 1 || seed > 0xffffffff) throw new Error('seed must be an integer in [1, 2^32)');
    faultSeed = seed;
  }
  const rule = {
    kind: query.kind,
    fault,
    prob,
    remaining: count,
    method: query.method ? query.method.toUpperCase() : null,
    key: query.key === undefined ? null : query.key,
  };
  faultRules.push(rule);
  return rule;
}

/* The fault for this request, consuming one count of the first matching rule. */
function takeFault(r) {
  for (const rule of faultRules) {
    if (rule.remaining <= 0) continue;
    if (rule.method && rule.method !== r.method) continue;
    if (rule.key !== null && !r.key.includes(rule.key)) continue;
    if (rule.prob < 1 && faultRandom() >= rule.prob) continue;
    rule.remaining--;
    faultRules = faultRules.filter(x => x.remaining > 0);
    stats.faults++;
    let fault = rule.fault;
    if (fault.type === 'any') {
      const kinds = [{ type: 'status', code: 500 }, { type: 'status', code: 503 }, { type: 'reset' },
        { type: 'reset-after' }, { type: 'short' }, { type: 'delay', ms: 300 }, { type: 'corrupt' },
        { type: 'stall', ms: fault.stallMs }];
      fault = kinds[Math.floor(faultRandom() * kinds.length)];
    }
    const name = fault.type + (fault.code ? `:${fault.code}` : '');
    stats.fault_kinds[name] = (stats.fault_kinds[name] || 0) + 1;
    log('fault', name, r.method, r.key);
    return fault;
  }
  return null;
}

/* ------------------------------------------------------------------ */
/* Server modes: how conditional writes and multipart completions are  */
/* treated.  R2's way unless a test asks for another real server's.    */

const MODE_CHOICES = {
  /* r2: If-Match compared with the ETag, quotes aside; rgw: the header's
   * value, as sent, must be the start of the bare ETag (Ceph RGW 16.2: the
   * quoted ETag is refused, the bare one or a prefix of it accepted);
   * ignore: not looked at (s3rver) */
  'if-match': ['r2', 'rgw', 'ignore'],
  'if-none-match': ['r2', 'ignore'],
  /* empty: CompleteMultipartUpload answers <ETag></ETag> (Ceph RGW) */
  'complete-etag': ['r2', 'empty'],
  /* ignore: conditions on CompleteMultipartUpload are not looked at */
  'complete-cond': ['r2', 'ignore'],
};
const MODE_PRESETS = {
  r2: {},
  rgw: { 'if-match': 'rgw', 'complete-etag': 'empty', 'complete-cond': 'ignore' },
  s3rver: { 'if-match': 'ignore', 'if-none-match': 'ignore', 'complete-cond': 'ignore' },
};

let mode = {};

/* { preset, if-match, ... }: the preset first (every knob of it, the rest
 * R2's), then single knobs on top.  Throws on an unknown name or value. */
function setMode(query) {
  const next = query.preset === undefined ? { ...mode } : {};
  if (query.preset !== undefined) {
    if (!MODE_PRESETS[query.preset]) {
      throw new Error(`unknown mode preset ${JSON.stringify(query.preset)} (${Object.keys(MODE_PRESETS).join(', ')})`);
    }
    for (const k of Object.keys(MODE_CHOICES)) next[k] = MODE_PRESETS[query.preset][k] || 'r2';
  }
  for (const [k, v] of Object.entries(query)) {
    if (k === 'preset') continue;
    if (!MODE_CHOICES[k]) throw new Error(`unknown mode knob ${JSON.stringify(k)}`);
    if (!MODE_CHOICES[k].includes(v)) throw new Error(`${k} takes ${MODE_CHOICES[k].join(', ')}, not ${JSON.stringify(v)}`);
    next[k] = v;
  }
  mode = next;
  log('mode', JSON.stringify(mode));
}

setMode({ preset: 'r2' });

/* ------------------------------------------------------------------ */
/* Per-key locks: many readers or one writer, FIFO                      */

class KeyLocks {
  constructor() {
    this.map = new Map();
  }

  acquire(id, mode) {
    let st = this.map.get(id);
    if (!st) {
      st = { readers: 0, writer: false, queue: [] };
      this.map.set(id, st);
    }
    return new Promise(resolve => {
      st.queue.push({ mode, resolve });
      this.pump(id, st);
    });
  }

  pump(id, st) {
    while (st.queue.length) {
      const head = st.queue[0];
      if (head.mode === 'w') {
        if (st.writer || st.readers) break;
        st.writer = true;
      } else {
        if (st.writer) break;
        st.readers++;
      }
      st.queue.shift();
      head.resolve(this.releaser(id, st, head.mode));
    }
    if (!st.writer && !st.readers && !st.queue.length) this.map.delete(id);
  }

  releaser(id, st, mode) {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (mode === 'w') st.writer = false;
      else st.readers--;
      this.pump(id, st);
    };
  }
}

const locks = new KeyLocks();

/*
 * s3rver keeps a key as a file and removes emptied directories on delete,
 * so a delete racing a write into the same directory (or another delete)
 * can fail with ENOENT.  Writes hold TREE shared, deletes hold it alone.
 */
const TREE = '\0tree';

/* Runs fn holding the locks of all ids in mode, and TREE in treeMode if
 * given (TREE first, then ids in sorted order: no deadlock). */
async function withLocks(ids, mode, fn, treeMode = null) {
  const sorted = [...new Set(ids)].sort();
  const releases = [];
  try {
    if (treeMode) releases.push(await locks.acquire(TREE, treeMode));
    for (const id of sorted) releases.push(await locks.acquire(id, mode));
    return await fn();
  } finally {
    for (const release of releases.reverse()) release();
  }
}

const objectId = (bucket, key) => `${bucket}/${key}`;

/* ------------------------------------------------------------------ */
/* Parsing a request                                                   */

function decodeOrFail(s, what) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    throw bad('InvalidURI', `Couldn't parse the specified URI: bad percent-encoding in ${what}`);
  }
}

/* Query string -> { name: value | [values] }, decoded the way the SDK's
 * signer expects (a '+' is a literal plus, not a space). */
function parseQuery(rawQuery) {
  const query = {};
  for (const piece of rawQuery.split('&')) {
    if (!piece) continue;
    const eq = piece.indexOf('=');
    const name = decodeOrFail(eq < 0 ? piece : piece.slice(0, eq), 'the query');
    const value = eq < 0 ? '' : decodeOrFail(piece.slice(eq + 1), 'the query');
    if (!(name in query)) query[name] = value;
    else if (Array.isArray(query[name])) query[name].push(value);
    else query[name] = [query[name], value];
  }
  return query;
}

/* Which S3 operation a request is, for routing and the "ops" counters. */
function classify(r) {
  const q = r.query;
  const has = name => Object.prototype.hasOwnProperty.call(q, name);
  if (!r.bucket) return r.method === 'GET' ? 'ListBuckets' : 'Other';
  if (!r.key) {
    if (r.method === 'GET' && q['list-type'] === '2') return 'ListObjectsV2';
    if (r.method === 'GET' && has('uploads')) return 'ListMultipartUploads';
    if (r.method === 'GET' && Object.keys(q).every(n => ['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'].includes(n))) return 'ListObjects';
    if (r.method === 'HEAD') return 'HeadBucket';
    if (r.method === 'POST' && has('delete')) return 'DeleteObjects';
    return 'OtherBucket';
  }
  const sub = ['acl', 'tagging', 'legal-hold', 'retention', 'torrent', 'select'].some(has);
  if (sub) return 'OtherObject';
  switch (r.method) {
    case 'GET': return has('uploadId') ? 'ListParts' : 'GetObject';
    case 'HEAD': return 'HeadObject';
    case 'PUT':
      if (has('uploadId')) return 'UploadPart';
      return 'x-amz-copy-source' in r.headers ? 'CopyObject' : 'PutObject';
    case 'POST':
      if (has('uploads')) return 'CreateMultipartUpload';
      if (has('uploadId')) return 'CompleteMultipartUpload';
      return 'OtherObject';
    case 'DELETE': return has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    default: return 'OtherObject';
  }
}

/*
 * An S3 request as the proxy sees it: { method, rawPath, rawQuery, query,
 * headers (lower-case names), body, vhost, bucket, key, op }.  reqLike is a
 * node IncomingMessage or anything with method, url and headers.
 */
function parseS3Request(reqLike, body) {
  const url = reqLike.url;
  const qmark = url.indexOf('?');
  const rawPath = qmark < 0 ? url : url.slice(0, qmark);
  const rawQuery = qmark < 0 ? '' : url.slice(qmark + 1);
  const headers = reqLike.headers;
  const hostname = String(headers.host || '').toLowerCase().replace(/:\d+$/, '');
  const suffix = `.${cfg.vhostSuffix}`;
  const r = {
    method: reqLike.method.toUpperCase(),
    rawPath,
    rawQuery,
    query: {},
    headers,
    body,
    vhost: hostname.endsWith(suffix) && hostname.length > suffix.length,
    bucket: '',
    key: '',
    op: 'Other',
  };
  if (!rawPath.startsWith('/')) throw bad('InvalidURI', 'the request path must start with /');
  r.query = parseQuery(rawQuery);
  const decodedPath = decodeOrFail(rawPath, 'the path');
  if (r.vhost) {
    r.bucket = hostname.slice(0, -suffix.length);
    r.key = decodedPath.slice(1);
  } else {
    const slash = decodedPath.indexOf('/', 1);
    r.bucket = slash < 0 ? decodedPath.slice(1) : decodedPath.slice(1, slash);
    r.key = slash < 0 ? '' : decodedPath.slice(slash + 1);
  }
  r.op = classify(r);
  return r;
}

/* s3rver keeps a key as a file path: refuse the keys it would store wrongly. */
function checkKeyStorable(key) {
  const segments = key.split('/');
  const problems = [];
  if (Buffer.byteLength(key) > 1024) {
    throw bad('KeyTooLongError', 'Your key is too long (more than 1024 bytes)');
  }
  segments.forEach((seg, i) => {
    if (seg === '.' || seg === '..') problems.push(`a "${seg}" segment`);
    if (seg === '' && i < segments.length - 1) problems.push('an empty segment (leading or double "/")');
    if (seg.includes('._S3rver_')) problems.push('"._S3rver_"');
    if (Buffer.byteLength(seg) > 200) problems.push('a segment over 200 bytes');
  });
  if (problems.length) {
    throw bad('InvalidArgument',
      `key ${JSON.stringify(key)} has ${problems[0]}: R2 would store it, but the test ` +
      'server (s3rver keeps keys as file paths) cannot; see tests/s3/README.md');
  }
}

function isStorable(key) {
  try {
    checkKeyStorable(key);
    return true;
  } catch (e) {
    return false;
  }
}

const noSuchKey = key => new S3Fail(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });

/* ------------------------------------------------------------------ */
/* Signature V4 verification                                           */

function parseAuthorization(auth) {
  const m = /^AWS4-HMAC-SHA256\s+(.*)$/.exec(auth);
  if (!m) throw deny('AccessDenied', 'only "AWS4-HMAC-SHA256" Authorization headers are accepted');
  const parts = {};
  for (const piece of m[1].split(',')) {
    const eq = piece.indexOf('=');
    if (eq > 0) parts[piece.slice(0, eq).trim()] = piece.slice(eq + 1).trim();
  }
  for (const name of ['Credential', 'SignedHeaders', 'Signature']) {
    if (!parts[name]) {
      throw bad('AuthorizationHeaderMalformed', `The authorization header is malformed; missing ${name}.`);
    }
  }
  const cred = parts.Credential.split('/');
  if (cred.length !== 5 || cred[4] !== 'aws4_request') {
    throw bad('AuthorizationHeaderMalformed',
      `The authorization header is malformed; Credential must be AK/date/region/service/aws4_request, not "${parts.Credential}".`);
  }
  return {
    accessKey: cred[0],
    scopeDate: cred[1],
    scopeRegion: cred[2],
    scopeService: cred[3],
    signedHeaders: parts.SignedHeaders.split(';'),
    signature: parts.Signature,
  };
}

/* "20250101T120000Z" -> Date, or null. */
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return isNaN(d) ? null : d;
}

function checkScope(auth, amzDate, now) {
  if (auth.accessKey !== cfg.accessKey) {
    throw deny('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.',
      { AWSAccessKeyId: auth.accessKey });
  }
  if (auth.scopeRegion !== cfg.region) {
    throw deny('SignatureDoesNotMatch',
      `the credential scope's region is "${auth.scopeRegion}"; this server's region is "${cfg.region}"`);
  }
  if (auth.scopeService !== 's3') {
    throw deny('SignatureDoesNotMatch', `the credential scope's service is "${auth.scopeService}", not "s3"`);
  }
  const date = parseAmzDate(amzDate);
  if (!date) throw deny('AccessDenied', 'AWS authentication requires a valid x-amz-date header (YYYYMMDDTHHMMSSZ)');
  if (Math.abs(now - date) > MAX_SKEW_MS) {
    throw deny('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.',
      { RequestTime: amzDate, ServerTime: new Date(now).toISOString() });
  }
  if (auth.scopeDate !== amzDate.slice(0, 8)) {
    throw deny('SignatureDoesNotMatch',
      `the credential scope's date ${auth.scopeDate} is not the day of x-amz-date ${amzDate}`);
  }
  return date;
}

function checkSignedHeaderList(auth, headers) {
  const list = auth.signedHeaders;
  const canonical = [...new Set(list.map(h => h.toLowerCase()))].sort();
  if (list.join(';') !== canonical.join(';')) {
    throw deny('SignatureDoesNotMatch',
      `SignedHeaders must be lower-case, sorted and unique: "${list.join(';')}"`);
  }
  const required = ['host', ...Object.keys(headers).filter(h => h.startsWith('x-amz-'))];
  const unsigned = required.filter(h => !list.includes(h));
  if (unsigned.length) {
    throw deny('AccessDenied', `There were headers present in the request which were not signed: ${unsigned.join(', ')}`,
      { HeadersNotSigned: unsigned.join(', ') });
  }
  const absent = list.filter(h => !(h in headers));
  if (absent.length) {
    throw deny('SignatureDoesNotMatch', `signed headers absent from the request: ${absent.join(', ')}`);
  }
}

/* The payload hash the request declares: UNSIGNED-PAYLOAD or 64 hex digits. */
function checkPayloadHashHeader(headers) {
  const v = headers['x-amz-content-sha256'];
  if (v === undefined) {
    throw deny('AccessDenied', 'Missing required header for this request: x-amz-content-sha256');
  }
  if (/^STREAMING-/.test(v)) {
    throw bad('InvalidRequest',
      `x-amz-content-sha256 "${v}": streaming (aws-chunked) payloads are refused here ` +
      '(s3rver would store the chunk framing); send a plain body');
  }
  if (v !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(v)) {
    throw deny('XAmzContentSHA256Mismatch',
      `x-amz-content-sha256 must be UNSIGNED-PAYLOAD or 64 lower-case hex digits, not "${v}"`);
  }
  return v;
}

/* The request as @smithy/signature-v4 signs it: canonical path (each segment
 * decoded and re-encoded once: uriEscapePath false), decoded query, and only
 * the headers the client listed in SignedHeaders. */
function signableRequest(r, signedHeaders) {
  const headers = {};
  for (const h of signedHeaders) headers[h] = String(r.headers[h]);
  return {
    method: r.method,
    protocol: 'http:',
    hostname: String(r.headers.host || '').replace(/:\d+$/, ''),
    path: r.rawPath.split('/').map(seg => uriEscape(decodeOrFail(seg, 'the path'))).join('/'),
    query: r.query,
    headers,
    body: undefined,
  };
}

function makeSigner(secretKey) {
  return new SignatureV4({
    credentials: { accessKeyId: cfg.accessKey, secretAccessKey: secretKey },
    region: cfg.region,
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false, // S3: the path is encoded once, never normalised
    applyChecksum: false, // x-amz-content-sha256 is always sent and signed
  });
}

/* For SignatureDoesNotMatch answers: what the server signed. */
function describeCanonical(signer, request, signedHeaders, payloadHash) {
  const canonicalHeaders = getCanonicalHeaders(request, undefined, new Set(signedHeaders));
  return signer.createCanonicalRequest(request, canonicalHeaders, payloadHash);
}

/*
 * Verifies r's Signature V4 and body hash; throws S3Fail (403, or 400 for
 * malformed or streaming requests) on any difference.
 */
async function verifySigV4(r, now = Date.now()) {
  const authHeader = r.headers.authorization;
  if (!authHeader) throw deny('AccessDenied', 'Access Denied: anonymous requests are refused (no Authorization header)');
  const auth = parseAuthorization(authHeader);
  const amzDate = r.headers['x-amz-date'];
  const signingDate = checkScope(auth, amzDate, now);
  checkSignedHeaderList(auth, r.headers);
  const payloadHash = checkPayloadHashHeader(r.headers);

  const signer = makeSigner(cfg.secretKey);
  const request = signableRequest(r, auth.signedHeaders);
  const signableHeaders = new Set(auth.signedHeaders);
  const signed = await signer.signRequest(request, { signingDate, signableHeaders });
  const m = /SignedHeaders=([^,]*), Signature=([0-9a-f]+)$/.exec(signed.headers.authorization);
  if (m[1] !== auth.signedHeaders.join(';')) {
    throw deny('SignatureDoesNotMatch',
      `the server signs headers "${m[1]}", the request lists "${auth.signedHeaders.join(';')}"` +
      ' (the SDK signer never signs "date" or "authorization")');
  }
  if (m[2] !== auth.signature) {
    const canonical = describeCanonical(signer, { ...request, headers: { ...request.headers } },
      auth.signedHeaders, payloadHash);
    throw deny('SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: auth.accessKey, SignatureProvided: auth.signature, CanonicalRequest: canonical });
  }
  if (payloadHash !== 'UNSIGNED-PAYLOAD' && payloadHash !== sha256hex(r.body)) {
    throw deny('XAmzContentSHA256Mismatch',
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
      { ClientComputedContentSHA256: payloadHash, S3ComputedContentSHA256: sha256hex(r.body) });
  }
}

/* Content-MD5, when sent (and always for DeleteObjects), must match the body. */
function checkContentMd5(r, required) {
  const v = r.headers['content-md5'];
  if (v === undefined) {
    if (required) throw bad('MissingContentMD5', 'Missing required header for this request: Content-MD5');
    return;
  }
  const b = Buffer.from(v, 'base64');
  if (b.length !== 16 || b.toString('base64') !== v.trim()) {
    throw bad('InvalidDigest', 'The Content-MD5 you specified was invalid.');
  }
  if (!b.equals(md5(r.body))) {
    throw bad('BadDigest', 'The Content-MD5 you specified did not match what we received.');
  }
}

/* ------------------------------------------------------------------ */
/* The backend (s3rver)                                                */

let backendPort = 0;

const HOP_HEADERS = new Set([
  'authorization', 'connection', 'keep-alive', 'expect', 'transfer-encoding',
  'host', 'content-length', 'te', 'trailer', 'upgrade', 'proxy-connection',
]);

/* One buffered request to s3rver: { status, headers, body }. */
function backend(method, pathAndQuery, headers = {}, body = Buffer.alloc(0)) {
  const h = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_HEADERS.has(name)) h[name] = value;
  }
  h.host = `127.0.0.1:${backendPort}`;
  if (body.length || ['PUT', 'POST'].includes(method)) h['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: backendPort, method, path: pathAndQuery, headers: h, agent: false },
      res => {
        const chunks = [];
        res.on('data', c => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function backendPath(bucket, key, rawQuery = '') {
  return `/${uriEscape(bucket)}${key ? '/' + escapeKey(key) : ''}${rawQuery ? '?' + rawQuery : ''}`;
}

/* r's headers minus the ones the proxy handles itself. */
function forwardHeaders(r, drop = []) {
  const h = { ...r.headers };
  for (const name of drop) delete h[name];
  return h;
}

/* Multipart objects: s3rver's ETag is the plain MD5 of the whole object; S3
 * and R2 give "<md5 of the parts' md5s>-<parts>".  id -> { backend, etag } */
const etagOverrides = new Map();

function visibleEtag(bucket, key, backendEtag) {
  const o = etagOverrides.get(objectId(bucket, key));
  return o && o.backend === backendEtag ? o.etag : backendEtag;
}

/* The object's ETag as clients see it, or null when it does not exist. */
async function currentEtag(bucket, key) {
  const res = await backend('HEAD', backendPath(bucket, key));
  if (res.status === 404) return null;
  if (res.status !== 200) throw new S3Fail(500, 'InternalError', `backend HEAD answered ${res.status}`);
  return visibleEtag(bucket, key, res.headers.etag);
}

/* ------------------------------------------------------------------ */
/* Answering                                                           */

function errorBody(r, fail) {
  const resource = r ? `/${r.bucket}${r.key ? '/' + r.key : ''}` : '/';
  let extra = '';
  for (const [k, v] of Object.entries(fail.extra || {})) extra += el(k, v);
  return xmlDoc(`<Error>${el('Code', fail.code)}${el('Message', fail.message)}` +
    `${el('Resource', resource)}${el('RequestId', requestId())}${extra}</Error>`);
}

/*
 * Sends an answer, honouring the request's fault ('short': headers with the
 * full Content-Length, half the body, then a dead socket; 'reset-after': a
 * dead socket instead of the answer) and counting the bytes.
 */
function send(res, r, status, headers, body = Buffer.alloc(0)) {
  const isHead = r.method === 'HEAD';
  const out = isHead ? Buffer.alloc(0) : body;
  const fault = r.fault && r.fault.type;
  if (fault === 'reset-after' || (fault === 'short' && out.length < 2)) {
    countResponse(r, 'reset', 0);
    killSocket(res.socket);
    return;
  }
  const h = { ...headers, 'x-amz-request-id': requestId() };
  if (!('content-length' in h) || !isHead) h['content-length'] = out.length;
  res.writeHead(status, h);
  if (fault === 'short') {
    const half = out.subarray(0, Math.floor(out.length / 2));
    countResponse(r, status, half.length);
    res.write(half, () => killSocket(res.socket));
    return;
  }
  if (fault === 'corrupt' && out.length > 0 && status >= 200 && status < 300) {
    /* one byte of the body flipped, headers (length, ETag) untouched */
    const bad = Buffer.from(out);
    const at = Math.floor(faultRandom() * bad.length);
    bad[at] ^= 1 << Math.floor(faultRandom() * 8);
    countResponse(r, status, bad.length);
    res.end(bad);
    return;
  }
  countResponse(r, status, out.length);
  res.end(out);
}

function sendFail(res, r, fail) {
  if ((fail.status === 400 || fail.status === 403) && !fail.notRejection) countRejection(fail);
  send(res, r, fail.status, { 'content-type': 'application/xml', ...fail.headers }, errorBody(r, fail));
}

/* Passes a backend answer on, minus hop-by-hop headers. */
function relay(res, r, b, overrideHeaders = {}, body = b.body) {
  const headers = {};
  for (const [name, value] of Object.entries(b.headers)) {
    if (!HOP_HEADERS.has(name) && name !== 'date' && name !== 'x-amz-request-id') headers[name] = value;
  }
  if (r.method === 'HEAD' && b.headers['content-length'] !== undefined) {
    headers['content-length'] = b.headers['content-length'];
  }
  send(res, r, b.status, { ...headers, ...overrideHeaders }, body);
}

function killSocket(socket) {
  if (!socket || socket.destroyed) return;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

function sendXml(res, r, status, xml, headers = {}) {
  send(res, r, status, { 'content-type': 'application/xml', ...headers }, xmlDoc(xml));
}

/* ------------------------------------------------------------------ */
/* Conditional requests                                                */

/* Conditional PUT as R2 does it: If-None-Match: * and If-Match: "etag";
 * or as the mode says (complete: this is a CompleteMultipartUpload). */
async function checkWritePreconditions(r, complete = false) {
  if (complete && mode['complete-cond'] === 'ignore') return;
  const inm = mode['if-none-match'] === 'ignore' ? undefined : r.headers['if-none-match'];
  const im = mode['if-match'] === 'ignore' ? undefined : r.headers['if-match'];
  if (inm === undefined && im === undefined) return;
  if (inm !== undefined && inm.trim() !== '*') {
    throw new S3Fail(501, 'NotImplemented', 'If-None-Match on a write accepts only "*"');
  }
  const cur = await currentEtag(r.bucket, r.key);
  if (inm !== undefined && cur !== null) {
    throw new S3Fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
      { Condition: 'If-None-Match' });
  }
  if (im !== undefined && mode['if-match'] === 'rgw') {
    const v = im.trim();
    if (cur === null || !(v === '*' || (v !== '' && unquote(cur).startsWith(v)))) {
      throw new S3Fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-Match' });
    }
  } else if (im !== undefined) {
    const wanted = im.split(',').map(unquote);
    if (cur === null || !(wanted.includes('*') || wanted.includes(unquote(cur)))) {
      throw new S3Fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-Match' });
    }
  }
}

/* Conditional GET/HEAD on the visible ETag: 412 or 304, else null. */
function readPrecondition(r, etag) {
  const im = r.headers['if-match'];
  const inm = r.headers['if-none-match'];
  if (im !== undefined) {
    const wanted = im.split(',').map(unquote);
    if (!wanted.includes('*') && !wanted.includes(unquote(etag))) return 412;
  }
  if (inm !== undefined) {
    const wanted = inm.split(',').map(unquote);
    if (wanted.includes('*') || wanted.includes(unquote(etag))) return 304;
  }
  return null;
}

/* ------------------------------------------------------------------ */
/* Objects                                                             */

/* "bytes=a-b" | "bytes=a-" | "bytes=-n" -> {start, end} | 'unsatisfiable' |
 * null (absent or not a single valid range: S3 then serves the whole object). */
function resolveRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(String(header || '').trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/* A range GET reads only its range from s3rver (a HEAD for the size, then
 * a GET with the resolved range), as R2 does, instead of the whole object:
 * small reads of large packs would otherwise cost the proxy a full read
 * each.  Anything else, or a HEAD that fails, takes the whole-object path.
 * Answers { status, headers, body, range, size }: range set when body is
 * already just that range. */
async function fetchForGet(r) {
  const path = backendPath(r.bucket, r.key);
  const headers = forwardHeaders(r, ['range', 'if-match', 'if-none-match']);
  if (r.method === 'GET' && r.headers.range) {
    const h = await backend('HEAD', path, headers);
    const size = Number(h.headers['content-length']);
    const range = h.status === 200 ? resolveRange(r.headers.range, size) : null;
    if (range && range !== 'unsatisfiable') {
      const g = await backend('GET', path, { ...headers, range: `bytes=${range.start}-${range.end}` });
      const whole = g.status === 200 && g.body.length === size;
      const exact = g.status === 206 && g.body.length === range.end - range.start + 1 &&
        g.headers.etag === h.headers.etag;
      if (exact) return { ...g, status: 200, range, size };
      if (whole) return { ...g, range, size, body: g.body.subarray(range.start, range.end + 1) };
    }
  }
  return backend(r.method, path, headers);
}

async function getObject(res, r) {
  if (!isStorable(r.key)) throw noSuchKey(r.key);
  const b = await withLocks([objectId(r.bucket, r.key)], 'r', () => fetchForGet(r));
  if (b.status !== 200) return relay(res, r, b);
  const etag = visibleEtag(r.bucket, r.key, b.headers.etag);
  const pre = readPrecondition(r, etag);
  if (pre === 412) {
    throw new S3Fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold',
      { Condition: 'If-Match' });
  }
  if (pre === 304) return send(res, r, 304, { etag, 'last-modified': b.headers['last-modified'] });
  const size = b.range ? b.size : r.method === 'HEAD' ? Number(b.headers['content-length']) : b.body.length;
  const range = b.range || resolveRange(r.headers.range, size);
  if (range === 'unsatisfiable') {
    throw new S3Fail(416, 'InvalidRange', 'The requested range is not satisfiable',
      { RangeRequested: r.headers.range, ActualObjectSize: size }, { 'content-range': `bytes */${size}` });
  }
  if (!range) return relay(res, r, b, { etag });
  const part = r.method === 'HEAD' ? Buffer.alloc(0) : b.range ? b.body : b.body.subarray(range.start, range.end + 1);
  const headers = { etag, 'content-range': `bytes ${range.start}-${range.end}/${size}` };
  if (r.method === 'HEAD') headers['content-length'] = String(range.end - range.start + 1);
  relay(res, r, { ...b, status: 206 }, headers, part);
}

async function putObject(res, r) {
  checkKeyStorable(r.key);
  const id = objectId(r.bucket, r.key);
  const b = await withLocks([id], 'w', async () => {
    await checkWritePreconditions(r);
    const out = await backend('PUT', backendPath(r.bucket, r.key, r.rawQuery),
      forwardHeaders(r, ['if-match', 'if-none-match']), r.body);
    if (out.status === 200) etagOverrides.delete(id);
    return out;
  }, 'r');
  relay(res, r, b);
}

async function deleteObject(res, r) {
  if (!isStorable(r.key)) return send(res, r, 204, {});
  const id = objectId(r.bucket, r.key);
  const b = await withLocks([id], 'w', async () => {
    const out = await backend('DELETE', backendPath(r.bucket, r.key, r.rawQuery), forwardHeaders(r));
    if (out.status < 300) etagOverrides.delete(id);
    return out;
  }, 'w');
  relay(res, r, b);
}

/* DeleteObjects, done here one key at a time: s3rver's own deletes the
 * keys in parallel and fails (500) when two of them share a directory. */
async function deleteObjects(res, r, s3rver) {
  checkContentMd5(r, true);
  const xml = r.body.toString('utf8');
  const keys = xmlAll(xml, 'Key');
  if (!keys.length || keys.length > 1000) {
    throw bad('MalformedXML', `DeleteObjects takes 1 to 1000 keys, not ${keys.length}`);
  }
  if (!(await s3rver.store.getBucket(r.bucket))) {
    throw new S3Fail(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: r.bucket });
  }
  const quiet = /<Quiet>\s*true\s*<\/Quiet>/i.test(xml);
  const ids = keys.map(k => objectId(r.bucket, k));
  const results = await withLocks(ids, 'w', async () => {
    const out = [];
    for (const key of keys) {
      if (!isStorable(key)) { // cannot exist here (and must not reach s3rver's paths)
        out.push({ key, ok: true });
        continue;
      }
      const b = await backend('DELETE', backendPath(r.bucket, key));
      if (b.status < 300) etagOverrides.delete(objectId(r.bucket, key));
      out.push({ key, ok: b.status < 300, code: xmlFirst(b.body.toString('utf8'), 'Code') || 'InternalError' });
    }
    return out;
  }, 'w');
  const items = results.map(x => {
    if (x.ok) return quiet ? '' : `<Deleted>${el('Key', x.key)}</Deleted>`;
    return `<Error>${el('Key', x.key)}${el('Code', x.code)}${el('Message', 'delete failed')}</Error>`;
  }).join('');
  sendXml(res, r, 200, `<DeleteResult xmlns="${S3_XMLNS}">${items}</DeleteResult>`);
}

async function copyObject(res, r) {
  checkKeyStorable(r.key);
  const id = objectId(r.bucket, r.key);
  const b = await withLocks([id], 'w', async () => {
    await checkWritePreconditions(r);
    const out = await backend('PUT', backendPath(r.bucket, r.key, r.rawQuery),
      forwardHeaders(r, ['if-match', 'if-none-match']), r.body);
    if (out.status === 200) etagOverrides.delete(id);
    return out;
  }, 'r');
  relay(res, r, b);
}

/* ------------------------------------------------------------------ */
/* Multipart uploads                                                   */

/* uploadId -> { bucket, key, initiated, parts: Map(number -> {size, md5, at}) } */
const uploads = new Map();

function findUpload(r) {
  const id = r.query.uploadId;
  const up = typeof id === 'string' && uploads.get(id);
  if (!up || up.bucket !== r.bucket || up.key !== r.key) {
    throw new S3Fail(404, 'NoSuchUpload',
      'The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have been aborted or completed.',
      { UploadId: String(id) });
  }
  return up;
}

async function createMultipartUpload(res, r) {
  checkKeyStorable(r.key);
  const b = await backend('POST', backendPath(r.bucket, r.key, r.rawQuery), forwardHeaders(r), r.body);
  const uploadId = b.status === 200 && xmlFirst(b.body.toString('utf8'), 'UploadId');
  if (uploadId) {
    uploads.set(uploadId, { bucket: r.bucket, key: r.key, initiated: new Date(), parts: new Map() });
  }
  relay(res, r, b);
}

async function uploadPart(res, r) {
  const up = findUpload(r);
  const n = Number(r.query.partNumber);
  if (!Number.isInteger(n) || n < 1 || n > 10000) {
    throw bad('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
  }
  if (r.body.length > 5 * 1024 * MiB) throw bad('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size');
  const b = await backend('PUT', backendPath(r.bucket, r.key, r.rawQuery), forwardHeaders(r), r.body);
  if (b.status === 200) up.parts.set(n, { size: r.body.length, md5: md5(r.body), at: new Date() });
  relay(res, r, b);
}

/* The parts a CompleteMultipartUpload body lists: [{ number, etag }]. */
function parseCompleteBody(xml) {
  const parts = xmlAll(xml, 'Part').map(p => ({
    number: Number(xmlFirst(p, 'PartNumber')),
    etag: unquote(xmlFirst(p, 'ETag')),
  }));
  if (!parts.length) throw bad('MalformedXML', 'CompleteMultipartUpload lists no parts');
  return parts;
}

/* R2's rules: parts known, in order, >= 5 MiB and of one size but the last. */
function checkParts(up, listed) {
  listed.forEach((p, i) => {
    if (i > 0 && p.number <= listed[i - 1].number) {
      throw bad('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
    }
    const have = up.parts.get(p.number);
    if (!have || have.md5.toString('hex') !== p.etag.toLowerCase()) {
      throw bad('InvalidPart', `One or more of the specified parts could not be found (part ${p.number}, ETag "${p.etag}").`);
    }
  });
  const sizes = listed.map(p => up.parts.get(p.number).size);
  const last = sizes.length - 1;
  sizes.forEach((size, i) => {
    if (i < last && size < MIN_PART_SIZE) {
      throw bad('EntityTooSmall',
        `Your proposed upload is smaller than the minimum allowed object size: part ${listed[i].number} is ${size} bytes; every part but the last must be at least ${MIN_PART_SIZE} bytes.`);
    }
  });
  for (let i = 1; i < last; i++) {
    if (sizes[i] !== sizes[0]) {
      throw bad('InvalidPart',
        `All non-trailing parts must have the same length (R2): part ${listed[0].number} has ${sizes[0]} bytes, part ${listed[i].number} has ${sizes[i]}.`);
    }
  }
  if (last > 0 && sizes[last] > sizes[0]) {
    throw bad('InvalidPart',
      `The last part must not be larger than the others (R2): part ${listed[last].number} has ${sizes[last]} bytes, the others ${sizes[0]}.`);
  }
}

function multipartEtag(up, listed) {
  const digests = listed.map(p => up.parts.get(p.number).md5);
  return `"${md5(Buffer.concat(digests)).toString('hex')}-${listed.length}"`;
}

async function completeMultipartUpload(res, r) {
  const up = findUpload(r);
  const listed = parseCompleteBody(r.body.toString('utf8'));
  checkParts(up, listed);
  const id = objectId(r.bucket, r.key);
  const etag = multipartEtag(up, listed);
  const b = await withLocks([id], 'w', async () => {
    await checkWritePreconditions(r, true);
    const out = await backend('POST', backendPath(r.bucket, r.key, r.rawQuery),
      forwardHeaders(r, ['if-match', 'if-none-match']), r.body);
    if (out.status === 200) {
      const backendEtag = xmlFirst(out.body.toString('utf8'), 'ETag');
      etagOverrides.set(id, { backend: backendEtag, etag });
      uploads.delete(r.query.uploadId);
    }
    return out;
  }, 'r');
  if (b.status !== 200) return relay(res, r, b);
  sendXml(res, r, 200,
    `<CompleteMultipartUploadResult xmlns="${S3_XMLNS}">` +
    `${el('Location', `http://${r.headers.host}${backendPath(r.bucket, r.key)}`)}` +
    `${el('Bucket', r.bucket)}${el('Key', r.key)}` +
    `${el('ETag', mode['complete-etag'] === 'empty' ? '' : etag)}</CompleteMultipartUploadResult>`);
}

/* s3rver has no AbortMultipartUpload: drop its upload directory ourselves. */
async function abortMultipartUpload(res, r, s3rver) {
  findUpload(r);
  const uploadId = r.query.uploadId; // known, so s3rver's hex id: safe in a path
  const dir = path.join(s3rver.store.getResourcePath(r.bucket, undefined, 'uploads'), uploadId);
  await fs.promises.rm(dir, { recursive: true, force: true });
  uploads.delete(uploadId);
  send(res, r, 204, {});
}

function listMultipartUploads(res, r) {
  const prefix = typeof r.query.prefix === 'string' ? r.query.prefix : '';
  const mine = [...uploads.entries()]
    .filter(([, up]) => up.bucket === r.bucket && up.key.startsWith(prefix))
    .sort(([ida, a], [idb, b]) => byteCompare(a.key, b.key) || (ida < idb ? -1 : 1));
  const items = mine.map(([id, up]) =>
    `<Upload>${el('Key', up.key)}${el('UploadId', id)}${el('StorageClass', 'STANDARD')}` +
    `${el('Initiated', up.initiated.toISOString())}</Upload>`).join('');
  sendXml(res, r, 200,
    `<ListMultipartUploadsResult xmlns="${S3_XMLNS}">${el('Bucket', r.bucket)}<KeyMarker></KeyMarker>` +
    `<UploadIdMarker></UploadIdMarker>${el('Prefix', prefix)}<MaxUploads>1000</MaxUploads>` +
    `<IsTruncated>false</IsTruncated>${items}</ListMultipartUploadsResult>`);
}

function listParts(res, r) {
  const up = findUpload(r);
  const numbers = [...up.parts.keys()].sort((a, b) => a - b);
  const items = numbers.map(n => {
    const p = up.parts.get(n);
    return `<Part>${el('PartNumber', n)}${el('LastModified', p.at.toISOString())}` +
      `${el('ETag', `"${p.md5.toString('hex')}"`)}${el('Size', p.size)}</Part>`;
  }).join('');
  sendXml(res, r, 200,
    `<ListPartsResult xmlns="${S3_XMLNS}">${el('Bucket', r.bucket)}${el('Key', r.key)}` +
    `${el('UploadId', r.query.uploadId)}<PartNumberMarker>0</PartNumberMarker>` +
    `${el('NextPartNumberMarker', numbers.length ? numbers[numbers.length - 1] : 0)}` +
    `<MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>${items}</ListPartsResult>`);
}

/* ------------------------------------------------------------------ */
/* ListObjectsV2, served from s3rver's directory in S3's byte order    */

/* Every key under prefix, by walking s3rver's layout (dir/bucket/a/b/KEY._S3rver_object). */
async function walkKeys(bucketDir, prefix) {
  const keys = [];
  async function walk(dir, rel) {
    let entries;
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (e.code === 'ENOENT') return;
      throw e;
    }
    for (const ent of entries) {
      if (ent.isDirectory()) {
        if (rel === '' && ent.name === S3RVER_UPLOADS_DIR) continue;
        const sub = rel + ent.name + '/';
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) await walk(path.join(dir, ent.name), sub);
      } else if (ent.name.endsWith(S3RVER_OBJECT_SUFFIX)) {
        const key = rel + ent.name.slice(0, -S3RVER_OBJECT_SUFFIX.length);
        if (key.startsWith(prefix)) keys.push(key);
      }
    }
  }
  await walk(bucketDir, '');
  return keys.sort(byteCompare);
}

/* Size, mtime and ETag of one key, read under its read lock; null if gone. */
async function keyInfo(s3rver, bucket, key) {
  return withLocks([objectId(bucket, key)], 'r', async () => {
    const file = s3rver.store.getResourcePath(bucket, key, 'object');
    let st;
    try {
      st = await fs.promises.stat(file);
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw e;
    }
    let hex;
    try {
      hex = (await fs.promises.readFile(`${file}.md5`, 'utf8')).trim();
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
      hex = md5(await fs.promises.readFile(file)).toString('hex');
    }
    return { key, size: st.size, mtime: st.mtime, etag: visibleEtag(bucket, key, `"${hex}"`) };
  });
}

const TOKEN_PREFIX = 'cairn1:';

function encodeToken(after) {
  return TOKEN_PREFIX + Buffer.from(after, 'utf8').toString('base64');
}

function decodeToken(token) {
  if (!token.startsWith(TOKEN_PREFIX)) {
    throw bad('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
  }
  return Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64').toString('utf8');
}

function listParams(q) {
  const str = name => (typeof q[name] === 'string' ? q[name] : undefined);
  let maxKeys = MAX_LIST_KEYS;
  if (str('max-keys') !== undefined) {
    if (!/^\d+$/.test(q['max-keys'])) {
      throw bad('InvalidArgument', 'Provided max-keys not an integer or within integer range', { ArgumentName: 'max-keys' });
    }
    maxKeys = Math.min(MAX_LIST_KEYS, Number(q['max-keys']));
  }
  const encoding = str('encoding-type');
  if (encoding !== undefined && encoding !== 'url') {
    throw bad('InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type' });
  }
  const token = str('continuation-token');
  return {
    prefix: str('prefix') || '',
    delimiter: str('delimiter') || '',
    startAfter: str('start-after'),
    token,
    after: token !== undefined ? decodeToken(token) : (str('start-after') || ''),
    maxKeys,
    encode: encoding === 'url' ? escapeKey : s => s,
    encodingType: encoding,
  };
}

/* One page: keys and common prefixes after p.after, at most p.maxKeys entries. */
function pageEntries(keys, p) {
  const entries = [];
  let truncated = false;
  let lastPrefix = null;
  for (const key of keys) {
    if (byteCompare(key, p.after) <= 0) continue;
    let prefix = null;
    if (p.delimiter) {
      const i = key.indexOf(p.delimiter, p.prefix.length);
      if (i >= 0) prefix = key.slice(0, i + p.delimiter.length);
    }
    // A token names the last entry returned: a common prefix is not repeated.
    if (prefix !== null && (prefix === lastPrefix || prefix === p.after)) continue;
    if (entries.length >= p.maxKeys) {
      truncated = true;
      break;
    }
    if (prefix !== null) {
      lastPrefix = prefix;
      entries.push({ prefix });
    } else {
      entries.push({ key });
    }
  }
  return { entries, truncated };
}

async function listObjectsV2(res, r, s3rver) {
  const p = listParams(r.query);
  if (!(await s3rver.store.getBucket(r.bucket))) {
    throw new S3Fail(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: r.bucket });
  }
  const keys = p.maxKeys === 0 ? [] : await walkKeys(s3rver.store.getBucketPath(r.bucket), p.prefix);
  const page = pageEntries(keys, p);
  const infos = await Promise.all(page.entries.map(e => (e.key ? keyInfo(s3rver, r.bucket, e.key) : e)));
  const entries = infos.filter(Boolean);
  const last = page.entries[page.entries.length - 1];
  const contents = entries.filter(e => e.key).map(e =>
    `<Contents>${el('Key', p.encode(e.key))}${el('LastModified', e.mtime.toISOString())}` +
    `${el('ETag', e.etag)}${el('Size', e.size)}<StorageClass>STANDARD</StorageClass></Contents>`).join('');
  const prefixes = entries.filter(e => e.prefix !== undefined).map(e =>
    `<CommonPrefixes>${el('Prefix', p.encode(e.prefix))}</CommonPrefixes>`).join('');
  sendXml(res, r, 200,
    `<ListBucketResult xmlns="${S3_XMLNS}">${el('Name', r.bucket)}${el('Prefix', p.encode(p.prefix))}` +
    `${p.token === undefined ? el('StartAfter', p.startAfter ? p.encode(p.startAfter) : undefined) : el('ContinuationToken', p.token)}` +
    `${el('KeyCount', entries.length)}${el('MaxKeys', p.maxKeys)}` +
    `${p.delimiter ? el('Delimiter', p.encode(p.delimiter)) : ''}` +
    `${el('EncodingType', p.encodingType)}${el('IsTruncated', String(page.truncated))}` +
    `${page.truncated ? el('NextContinuationToken', encodeToken(last.key || last.prefix)) : ''}` +
    `${contents}${prefixes}</ListBucketResult>`);
}

/* ------------------------------------------------------------------ */
/* The S3 request path                                                 */

async function passThrough(res, r) {
  if (r.key) checkKeyStorable(r.key);
  const b = await backend(r.method, backendPath(r.bucket, r.key, r.rawQuery), forwardHeaders(r), r.body);
  relay(res, r, b);
}

const HANDLERS = {
  GetObject: getObject,
  HeadObject: getObject,
  PutObject: putObject,
  CopyObject: copyObject,
  DeleteObject: deleteObject,
  DeleteObjects: deleteObjects,
  CreateMultipartUpload: createMultipartUpload,
  UploadPart: uploadPart,
  CompleteMultipartUpload: completeMultipartUpload,
  AbortMultipartUpload: abortMultipartUpload,
  ListMultipartUploads: listMultipartUploads,
  ListParts: listParts,
  ListObjectsV2: listObjectsV2,
};

/* Applies a fault that acts before the request is served; true if it answered. */
async function applyEarlyFault(res, r) {
  const f = r.fault;
  if (!f) return false;
  if (f.type === 'delay') {
    await sleep(f.ms);
    return false;
  }
  if (f.type === 'reset') {
    countResponse(r, 'reset', 0);
    killSocket(res.socket);
    return true;
  }
  if (f.type === 'stall') {
    /* the request was read; no answer until the client gives up (or the
     * stall's bound passes, then a reset) */
    countResponse(r, 'stall', 0);
    const t = setTimeout(() => killSocket(res.socket), f.ms);
    res.socket.once('close', () => clearTimeout(t));
    return true;
  }
  if (f.type === 'status') {
    const codes = { 500: 'InternalError', 503: 'SlowDown', 429: 'SlowDown' };
    const code = codes[f.code] || (http.STATUS_CODES[f.code] || 'Error').replace(/[^A-Za-z]/g, '');
    const message = f.code === 503 || f.code === 429 ? 'Please reduce your request rate.' : 'Injected fault';
    const fail = new S3Fail(f.code, code, message);
    fail.notRejection = true;
    sendFail(res, { ...r, fault: null }, fail);
    return true;
  }
  return false;
}

async function handleS3(req, res, body, s3rver) {
  let r;
  try {
    r = parseS3Request(req, body);
  } catch (e) {
    r = { method: req.method.toUpperCase(), bucket: '', key: '', body, op: 'Unparsable', headers: req.headers };
    countRequest(r);
    e.request = r;
    throw e;
  }
  countRequest(r);
  log(r.method, req.url, r.vhost ? `(vhost ${r.bucket})` : '', r.op);
  try {
    await verifySigV4(r);
    checkContentMd5(r, false);
    r.fault = takeFault(r);
    if (await applyEarlyFault(res, r)) return;
    const handler = HANDLERS[r.op] || passThrough;
    await handler(res, r, s3rver);
  } catch (e) {
    e.request = r;
    throw e;
  }
}

/* ------------------------------------------------------------------ */
/* Control endpoints                                                   */

function sendJson(res, status, obj, extraHeaders = {}) {
  const body = Buffer.from(JSON.stringify(obj) + '\n');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, ...extraHeaders });
  res.end(body);
}

function handleControl(req, res, proxy) {
  const url = req.url;
  const qmark = url.indexOf('?');
  const route = `${req.method} ${qmark < 0 ? url : url.slice(0, qmark)}`;
  const q = Object.fromEntries(new URLSearchParams(qmark < 0 ? '' : url.slice(qmark + 1)));
  switch (route) {
    case 'GET /__proxy/stats':
      return sendJson(res, 200, stats);
    case 'GET /__proxy/faults':
      return sendJson(res, 200, faultRules.map(({ fault, ...rest }) => rest));
    case 'POST /__proxy/reset':
      stats = newStats();
      faultRules = [];
      return sendJson(res, 200, { ok: true });
    case 'POST /__proxy/outage': {
      const ms = Number(q.ms);
      if (!Number.isInteger(ms) || ms < 0) return sendJson(res, 400, { error: 'ms must be an integer >= 0' });
      res.on('finish', () => proxy.outage(ms));
      return sendJson(res, 200, { ok: true, ms, port: proxy.port }, { connection: 'close' });
    }
    case 'GET /__proxy/mode':
      return sendJson(res, 200, mode);
    case 'POST /__proxy/mode':
      try {
        setMode(q);
        return sendJson(res, 200, { ok: true, ...mode });
      } catch (e) {
        return sendJson(res, 400, { error: e.message });
      }
    case 'POST /__proxy/fault':
      try {
        const rule = addFaultRule(q);
        return sendJson(res, 200, { ok: true, kind: rule.kind, count: rule.remaining, method: rule.method, key: rule.key });
      } catch (e) {
        return sendJson(res, 400, { error: e.message });
      }
    default:
      return sendJson(res, 404, { error: `no control endpoint ${route}` });
  }
}

/* ------------------------------------------------------------------ */
/* The proxy server: listen, outage, close                             */

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('close', () => req.complete || reject(new Error('client went away')));
  });
}

function isControl(req) {
  const host = String(req.headers.host || '').toLowerCase().replace(/:\d+$/, '');
  return req.url.startsWith('/__proxy/') && !host.endsWith(`.${cfg.vhostSuffix}`);
}

function makeProxy(s3rver) {
  const sockets = new Set();
  const proxy = { port: 0, server: null, down: false };

  async function onRequest(req, res) {
    res.on('error', () => {});
    let body;
    try {
      body = await readBody(req);
    } catch (e) {
      return killSocket(req.socket);
    }
    if (isControl(req)) return handleControl(req, res, proxy);
    try {
      await handleS3(req, res, body, s3rver);
    } catch (e) {
      const fail = e instanceof S3Fail ? e : new S3Fail(500, 'InternalError', `proxy error: ${e.message}`);
      if (!(e instanceof S3Fail)) process.stderr.write(`s3proxy: ${e.stack}\n`);
      if (res.headersSent || res.socket === null || res.socket.destroyed) return killSocket(res.socket);
      sendFail(res, e.request || { method: req.method, bucket: '', key: '' }, fail);
    }
  }

  const server = http.createServer(onRequest);
  server.keepAliveTimeout = 30000;
  server.headersTimeout = 35000;
  server.on('connection', s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (err, socket) => killSocket(socket));
  proxy.server = server;

  proxy.listen = port => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.removeListener('error', reject);
      proxy.port = server.address().port;
      resolve();
    });
  });

  proxy.dropConnections = () => {
    for (const s of sockets) killSocket(s);
  };

  /* Refuse connections for ms, then listen again on the same port. */
  proxy.outage = ms => {
    if (proxy.down) return;
    proxy.down = true;
    log(`outage for ${ms} ms`);
    server.close();
    proxy.dropConnections();
    const relisten = async attempt => {
      try {
        await proxy.listen(proxy.port);
        proxy.down = false;
        log('outage over');
      } catch (e) {
        if (attempt >= 50) {
          process.stderr.write(`s3proxy: cannot listen again on port ${proxy.port}: ${e.message}\n`);
          process.exit(1);
        }
        setTimeout(() => relisten(attempt + 1), 100);
      }
    };
    setTimeout(() => relisten(0), ms);
  };

  proxy.close = () => {
    server.close();
    proxy.dropConnections();
  };
  return proxy;
}

/* ------------------------------------------------------------------ */
/* Main                                                                */

async function startS3rver() {
  fs.mkdirSync(cfg.dir, { recursive: true });
  const s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: cfg.dir,
    vhostBuckets: false,
    configureBuckets: cfg.buckets.map(name => ({ name })),
  });
  const addr = await s3rver.run();
  backendPort = addr.port;
  const sockets = new Set();
  s3rver.httpServer.on('connection', s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  s3rver.dropConnections = () => sockets.forEach(s => s.destroy());
  return s3rver;
}

function installShutdown(s3rver, proxy) {
  // The harness may close its end of our output pipes: never die of EPIPE.
  process.stdout.on('error', () => {});
  process.stderr.on('error', () => {});
  let closing = false;
  const shutdown = why => {
    if (closing) return;
    closing = true;
    log(`shutting down (${why})`);
    proxy.close();
    s3rver.httpServer.close();
    s3rver.dropConnections();
    setImmediate(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => shutdown('SIGHUP'));
  if (!cfg.ignoreStdin) {
    process.stdin.on('data', () => {});
    process.stdin.on('end', () => shutdown('stdin EOF'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
  }
}

async function main() {
  cfg = parseArgs(process.argv.slice(2));
  if (cfg.selfCheck) {
    process.exit((await selfCheck()) ? 0 : 1);
  }
  const s3rver = await startS3rver();
  const proxy = makeProxy(s3rver);
  await proxy.listen(0);
  installShutdown(s3rver, proxy);
  process.stdout.write(`READY ${proxy.port} ${backendPort}\n`);
  log(`proxy on 127.0.0.1:${proxy.port}, s3rver on 127.0.0.1:${backendPort}, dir ${cfg.dir}, buckets ${cfg.buckets.join(',')}`);
}

/* ------------------------------------------------------------------ */
/* Self-check: requests signed by the SDK's signer, as the SDK sends    */
/* them, must verify; tampered ones must not.                          */

/* A request as it arrives on the wire, signed the way @aws-sdk/client-s3 does. */
async function sdkSignedRequest({ method, bucket, key, query = {}, headers = {}, body = '', vhost = false, date }) {
  const host = vhost ? `${bucket}.${cfg.vhostSuffix}:9000` : '127.0.0.1:9000';
  const p = vhost ? `/${escapeKey(key)}` : `/${bucket}${key ? '/' + escapeKey(key) : ''}`;
  const signer = new SignatureV4({
    credentials: { accessKeyId: cfg.accessKey, secretAccessKey: cfg.secretKey },
    region: cfg.region,
    service: 's3',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: false,
    applyChecksum: true,
  });
  const buf = Buffer.from(body);
  const signed = await signer.sign({
    method, protocol: 'http:', hostname: host.replace(/:\d+$/, ''), port: 9000, path: p, query,
    headers: { host, 'x-amz-content-sha256': sha256hex(buf), ...headers }, body: buf,
  }, { signingDate: date || new Date() });
  // The SDK's query builder: escapeUri(name)=escapeUri(value), in insertion order.
  const qs = Object.entries(query).map(([k, v]) => (v === null ? uriEscape(k) : `${uriEscape(k)}=${uriEscape(v)}`)).join('&');
  const lower = {};
  for (const [k, v] of Object.entries(signed.headers)) lower[k.toLowerCase()] = String(v);
  return { req: { method, url: p + (qs ? '?' + qs : ''), headers: lower }, body: buf };
}

async function expectVerdict(name, wire, wantCode) {
  let got = null;
  try {
    const r = parseS3Request(wire.req, wire.body);
    await verifySigV4(r);
  } catch (e) {
    got = e.code || e.message;
  }
  const ok = got === wantCode;
  process.stdout.write(`${ok ? 'ok' : 'not ok'} - ${name}${ok ? '' : ` (want ${wantCode}, got ${got})`}\n`);
  return ok;
}

function flipSignatureBit(wire) {
  const w = JSON.parse(JSON.stringify(wire.req));
  w.headers.authorization = w.headers.authorization.replace(/Signature=([0-9a-f])/, (m, c) =>
    `Signature=${(parseInt(c, 16) ^ 1).toString(16)}`);
  return { req: w, body: wire.body };
}

async function selfCheck() {
  const B = 'cairn-test';
  const cases = [
    { name: 'PUT key with space, plus, unicode, slashes', method: 'PUT', bucket: B,
      key: 'dir/a b+c/ünïcødé ~!\'()*@=&$,;.bin', body: 'hello', headers: { 'x-amz-meta-mode': '0644', 'content-type': 'application/octet-stream' } },
    { name: 'GET ListObjectsV2 with awkward prefix and token', method: 'GET', bucket: B, key: '',
      query: { 'max-keys': '7', 'list-type': '2', prefix: 'a b/+ü/', 'continuation-token': 'cairn1:YS9i+/=' } },
    { name: 'POST CreateMultipartUpload (empty query value)', method: 'POST', bucket: B, key: 'packs/ab/cdef', query: { uploads: '' } },
    { name: 'PUT UploadPart', method: 'PUT', bucket: B, key: 'packs/ab/cdef', query: { partNumber: '3', uploadId: 'abc123' }, body: 'x'.repeat(1000) },
    { name: 'virtual-host GET', method: 'GET', bucket: B, key: 'data/ünï code+x', vhost: true, headers: { range: 'bytes=0-9' } },
    { name: 'DELETE with empty body', method: 'DELETE', bucket: B, key: 'k' },
  ];
  let ok = true;
  for (const c of cases) {
    const wire = await sdkSignedRequest(c);
    ok = (await expectVerdict(`${c.name}: accepted`, wire, null)) && ok;
    ok = (await expectVerdict(`${c.name}: one bit of the signature changed`, flipSignatureBit(wire), 'SignatureDoesNotMatch')) && ok;
  }
  const put = { method: 'PUT', bucket: B, key: 'k', body: 'payload' };
  let w = await sdkSignedRequest(put);
  ok = (await expectVerdict('body differs from x-amz-content-sha256', { ...w, body: Buffer.from('payloaD') }, 'XAmzContentSHA256Mismatch')) && ok;
  w = await sdkSignedRequest(put);
  w.req.headers['x-amz-meta-extra'] = 'unsigned';
  ok = (await expectVerdict('unsigned x-amz-meta header', w, 'AccessDenied')) && ok;
  w = await sdkSignedRequest(put);
  w.req.url += '?extra=1';
  ok = (await expectVerdict('query parameter added after signing', w, 'SignatureDoesNotMatch')) && ok;
  w = await sdkSignedRequest({ ...put, date: new Date(Date.now() - 20 * 60 * 1000) });
  ok = (await expectVerdict('x-amz-date 20 minutes old', w, 'RequestTimeTooSkewed')) && ok;
  w = await sdkSignedRequest(put);
  w.req.headers.authorization = w.req.headers.authorization.replace(cfg.accessKey, 'AKIAOTHERKEY');
  ok = (await expectVerdict('unknown access key', w, 'InvalidAccessKeyId')) && ok;
  w = await sdkSignedRequest(put);
  w.req.headers.authorization = w.req.headers.authorization.replace(`/${cfg.region}/`, '/us-east-1/');
  ok = (await expectVerdict('wrong region in the scope', w, 'SignatureDoesNotMatch')) && ok;
  w = await sdkSignedRequest({ ...put, headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
  ok = (await expectVerdict('UNSIGNED-PAYLOAD accepted', w, null)) && ok;
  w = await sdkSignedRequest({ ...put, headers: { 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' } });
  ok = (await expectVerdict('streaming payload refused', w, 'InvalidRequest')) && ok;
  w = await sdkSignedRequest(put);
  w.req.headers.authorization = w.req.headers.authorization.replace('SignedHeaders=host;', 'SignedHeaders=');
  ok = (await expectVerdict('host not signed', w, 'AccessDenied')) && ok;
  process.stdout.write(ok ? 'self-check passed\n' : 'self-check FAILED\n');
  return ok;
}

if (require.main === module) {
  main().catch(e => {
    process.stderr.write(`server.js: ${e.stack || e}\n`);
    process.exit(1);
  });
}
