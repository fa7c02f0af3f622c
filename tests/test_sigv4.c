/*
 * test_sigv4.c - MD5 (RFC 1321 test suite) and Signature Version 4 checked
 * against AWS's published vectors: the generic "aws-sig-v4-test-suite"
 * (service "service", SIGV4_GENERIC rules) and the four S3 examples of
 * "Signature Calculations for the Authorization Header: Transferring Payload
 * in a Single Chunk", which pin the S3 rules (no normalisation, no double
 * encoding).  The vectors are facts copied from AWS; do not "fix" them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "md5.h"
#include "sigv4.h"
#include "tap.h"

/* ---- MD5 ---------------------------------------------------------------- */

static void check_md5(const char *msg, const char *want)
{
	uint8_t d[MD5_DIGEST_LEN];
	char hex[MD5_HEX_LEN + 1];

	md5(msg, strlen(msg), d);
	md5_hex(d, hex);
	is_str(hex, want, "md5(\"%.20s%s\")", msg, strlen(msg) > 20 ? "..." : "");
}

static void test_md5(void)
{
	static const char *const rfc[][2] = {
		{ "", "d41d8cd98f00b204e9800998ecf8427e" },
		{ "a", "0cc175b9c0f1b6a831c399e269772661" },
		{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
		{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
		{ "abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b" },
		{ "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
		  "d174ab98d277d9f5a5611c2c9f419d9f" },
		{ "1234567890123456789012345678901234567890"
		  "1234567890123456789012345678901234567890",
		  "57edf4a22be3c955ac49da2e2107b67a" },
		{ "The quick brown fox jumps over the lazy dog",
		  "9e107d9d372bb6826bd81d3542a419d6" },
	};
	uint8_t data[1000], one[MD5_DIGEST_LEN], inc[MD5_DIGEST_LEN];
	char b64[25];
	struct md5_ctx ctx;
	size_t i, step, off;
	int same = 1;

	for (i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++)
		check_md5(rfc[i][0], rfc[i][1]);

	/* Incremental updates of every size agree with one call, across the
	 * 55/56/64-byte padding edges. */
	tap_fill_random(data, sizeof(data), 7);
	for (step = 1; step <= 130; step++) {
		size_t len = 1000 - step;

		md5(data, len, one);
		md5_init(&ctx);
		for (off = 0; off < len; off += step)
			md5_update(&ctx, data + off, off + step <= len ? step : len - off);
		md5_final(&ctx, inc);
		if (memcmp(one, inc, sizeof(one)))
			same = 0;
	}
	ok(same, "md5: incremental updates equal one-shot for every split");
	for (i = 50; i <= 70; i++) {
		md5(data, i, one);
		md5_init(&ctx);
		md5_update(&ctx, data, i / 2);
		md5_update(&ctx, data + i / 2, i - i / 2);
		md5_final(&ctx, inc);
		if (memcmp(one, inc, sizeof(one)))
			same = 0;
	}
	ok(same, "md5: padding edge lengths 50..70");

	md5("", 0, one);
	md5_base64(one, b64);
	is_str(b64, "1B2M2Y8AsgTpgAmY7PhCfg==", "md5: Content-MD5 of the empty body");
	md5("Welcome to Amazon S3.", 21, one);
	md5_base64(one, b64);
	is_int(strlen(b64), 24, "md5: base64 form is 24 characters");
}

/* ---- SigV4 helpers --------------------------------------------------------- */

struct vec {
	const char *name;
	const char *method;
	const char *path;
	struct sigv4_param query[4];
	size_t nquery;
	struct sigv4_header headers[6];
	size_t nheaders;
	const char *body;
	const char *signed_headers;
	const char *signature;
	const char *sts_hash;		/* last line of the string to sign, or NULL */
	const char *creq_query;		/* canonical query line, or NULL */
};

static void check_vec(const struct sigv4_creds *c, const char *date, unsigned flags,
		      const struct vec *v)
{
	struct buf auth = BUF_INIT, creq = BUF_INIT, sts = BUF_INIT, want = BUF_INIT;
	char hash[SIGV4_SHA256_HEX_LEN + 1];
	struct sigv4_request r;
	int rc;

	sigv4_sha256_hex(v->body ? v->body : "", v->body ? strlen(v->body) : 0, hash);
	memset(&r, 0, sizeof(r));
	r.method = v->method;
	r.path = v->path;
	r.query = v->query;
	r.nquery = v->nquery;
	r.headers = v->headers;
	r.nheaders = v->nheaders;
	r.payload_hash = hash;
	rc = sigv4_sign(c, &r, date, flags, &auth, &creq, &sts);
	buf_printf(&want, "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
		   "SignedHeaders=%s, Signature=%s", c->access_key, date, c->region,
		   c->service, v->signed_headers, v->signature);
	if (!is_str(rc == 0 ? buf_str(&auth) : "(error)", buf_str(&want), "sigv4 %s", v->name)) {
		diag("canonical request:\n%s", buf_str(&creq));
		diag("string to sign:\n%s", buf_str(&sts));
	}
	if (v->sts_hash) {
		const char *nl = strrchr(buf_str(&sts), '\n');

		is_str(nl ? nl + 1 : "", v->sts_hash, "sigv4 %s: canonical request hash", v->name);
	}
	if (v->creq_query) {
		/* Third line of the canonical request. */
		const char *p = buf_str(&creq), *q;
		char *line3;
		int line;

		for (line = 0; line < 2 && p; line++) {
			p = strchr(p, '\n');
			if (p)
				p++;
		}
		q = p ? strchr(p, '\n') : NULL;
		line3 = q ? xstrndup(p, (size_t)(q - p)) : xstrdup("");
		is_str(line3, v->creq_query, "sigv4 %s: canonical query", v->name);
		free(line3);
	}
	buf_free(&auth);
	buf_free(&creq);
	buf_free(&sts);
	buf_free(&want);
}

#define H(n, v) { n, v }
#define P(n, v) { n, v }

/* ---- the generic suite ---------------------------------------------------- */

#define SUITE_DATE "20150830T123600Z"
#define HOST H("Host", "example.amazonaws.com")
#define XDATE H("X-Amz-Date", SUITE_DATE)
#define VANILLA "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
#define UNRES "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define STS_TOKEN "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

static const struct vec suite[] = {
	{ "get-vanilla", "GET", "/", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", VANILLA,
	  "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63", NULL },
	{ "get-vanilla-query-order-key-case", "GET", "/",
	  { P("Param2", "value2"), P("Param1", "value1") }, 2, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
	  "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
	  "Param1=value1&Param2=value2" },
	{ "get-vanilla-query-order-key", "GET", "/",
	  { P("Param1", "value2"), P("Param1", "Value1") }, 2, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
	  NULL, "Param1=Value1&Param1=value2" },
	{ "get-vanilla-query-order-value", "GET", "/",
	  { P("Param1", "value2"), P("Param1", "value1") }, 2, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
	  NULL, "Param1=value1&Param1=value2" },
	{ "get-vanilla-query-unreserved", "GET", "/", { P(UNRES, UNRES) }, 1,
	  { HOST, XDATE }, 2, NULL, "host;x-amz-date",
	  "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197", NULL,
	  UNRES "=" UNRES },
	{ "get-vanilla-utf8-query", "GET", "/", { P("\xe1\x88\xb4", "bar") }, 1,
	  { HOST, XDATE }, 2, NULL, "host;x-amz-date",
	  "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04", NULL,
	  "%E1%88%B4=bar" },
	{ "get-vanilla-empty-query-key", "GET", "/", { P("Param1", "value1") }, 1,
	  { HOST, XDATE }, 2, NULL, "host;x-amz-date",
	  "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb", NULL, NULL },
	/* From the newer suite in awslabs/aws-c-auth: "Param" sorts before
	 * "Param-3" (by name, then value, not by "name=value"). */
	{ "get-vanilla-query-order-encoded", "GET", "/",
	  { P("Param-3", "Value3"), P("Param", "Value2"), P("\xe1\x88\xb4", "Value1") }, 3,
	  { HOST, XDATE }, 2, NULL, "host;x-amz-date",
	  "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac", NULL,
	  "%E1%88%B4=Value1&Param=Value2&Param-3=Value3" },
	{ "get-unreserved", "GET", "/" UNRES, {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
	  NULL, NULL },
	{ "get-utf8", "GET", "/\xe1\x88\xb4", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
	  NULL, NULL },
	{ "get-space", "GET", "/example space/", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
	  "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86", NULL },
	{ "get-slash", "GET", "//", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", VANILLA, NULL, NULL },
	{ "get-slash-dot-slash", "GET", "/./", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", VANILLA, NULL, NULL },
	{ "get-slash-pointless-dot", "GET", "/./example", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
	  NULL, NULL },
	{ "get-slashes", "GET", "//example//", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
	  NULL, NULL },
	{ "get-relative", "GET", "/example/..", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", VANILLA, NULL, NULL },
	{ "get-relative-relative", "GET", "/example1/example2/../..", {{0}}, 0,
	  { HOST, XDATE }, 2, NULL, "host;x-amz-date", VANILLA, NULL, NULL },
	{ "get-header-key-duplicate", "GET", "/", {{0}}, 0,
	  { HOST, H("My-Header1", "value2"), H("My-Header1", "value2"),
	    H("My-Header1", "value1"), XDATE }, 5, NULL, "host;my-header1;x-amz-date",
	  "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
	  "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c", NULL },
	{ "get-header-value-order", "GET", "/", {{0}}, 0,
	  { HOST, H("My-Header1", "value4"), H("My-Header1", "value1"),
	    H("My-Header1", "value3"), H("My-Header1", "value2"), XDATE }, 6, NULL,
	  "host;my-header1;x-amz-date",
	  "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01", NULL, NULL },
	{ "get-header-value-trim", "GET", "/", {{0}}, 0,
	  { HOST, H("My-Header1", " value1"), H("My-Header2", " \"a   b   c\""), XDATE }, 4,
	  NULL, "host;my-header1;my-header2;x-amz-date",
	  "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
	  "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7", NULL },
	{ "post-vanilla", "POST", "/", {{0}}, 0, { HOST, XDATE }, 2, NULL,
	  "host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	  "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87", NULL },
	{ "post-header-key-case", "POST", "/", {{0}}, 0,
	  { H("host", "example.amazonaws.com"), H("x-amz-date", SUITE_DATE) }, 2, NULL,
	  "host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
	  NULL, NULL },
	{ "post-header-key-sort", "POST", "/", {{0}}, 0,
	  { HOST, H("My-Header1", "value1"), XDATE }, 3, NULL, "host;my-header1;x-amz-date",
	  "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c", NULL, NULL },
	{ "post-header-value-case", "POST", "/", {{0}}, 0,
	  { HOST, H("My-Header1", "VALUE1"), XDATE }, 3, NULL, "host;my-header1;x-amz-date",
	  "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d", NULL, NULL },
	{ "post-vanilla-query", "POST", "/", { P("Param1", "value1") }, 1, { HOST, XDATE }, 2,
	  NULL, "host;x-amz-date",
	  "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
	  "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd", NULL },
	{ "post-x-www-form-urlencoded", "POST", "/", {{0}}, 0,
	  { H("Content-Type", "application/x-www-form-urlencoded"), HOST, XDATE }, 3,
	  "Param1=value1", "content-type;host;x-amz-date",
	  "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
	  "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281", NULL },
	{ "post-sts-header-before", "POST", "/", {{0}}, 0,
	  { HOST, XDATE, H("X-Amz-Security-Token", STS_TOKEN) }, 3, NULL,
	  "host;x-amz-date;x-amz-security-token",
	  "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
	  "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6", NULL },
	/* From aws-c-auth's suite: a session token signed as a header. */
	{ "get-vanilla-with-session-token", "GET", "/", {{0}}, 0,
	  { HOST, XDATE, H("X-Amz-Security-Token",
			   "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267") },
	  3, NULL, "host;x-amz-date;x-amz-security-token",
	  "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8", NULL, NULL },
};

/* ---- the S3 examples ------------------------------------------------------ */

#define S3_DATE "20130524T000000Z"
#define S3HOST H("Host", "examplebucket.s3.amazonaws.com")
#define S3XDATE H("x-amz-date", S3_DATE)
#define EMPTY_HASH H("x-amz-content-sha256", SIGV4_EMPTY_SHA256)

static const struct vec s3vec[] = {
	{ "S3 GET Object (range)", "GET", "/test.txt", {{0}}, 0,
	  { S3HOST, H("Range", "bytes=0-9"), EMPTY_HASH, S3XDATE }, 4, NULL,
	  "host;range;x-amz-content-sha256;x-amz-date",
	  "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
	  "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972", NULL },
	{ "S3 PUT Object", "PUT", "/test%24file.text", {{0}}, 0,
	  { S3HOST, H("Date", "Fri, 24 May 2013 00:00:00 GMT"),
	    H("x-amz-content-sha256",
	      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
	    S3XDATE, H("x-amz-storage-class", "REDUCED_REDUNDANCY") }, 5,
	  "Welcome to Amazon S3.",
	  "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
	  "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd", NULL, NULL },
	{ "S3 GET Bucket Lifecycle", "GET", "/", { P("lifecycle", NULL) }, 1,
	  { S3HOST, EMPTY_HASH, S3XDATE }, 3, NULL, "host;x-amz-content-sha256;x-amz-date",
	  "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543", NULL,
	  "lifecycle=" },
	{ "S3 GET Bucket (List Objects)", "GET", "/",
	  { P("prefix", "J"), P("max-keys", "2") }, 2,
	  { S3HOST, EMPTY_HASH, S3XDATE }, 3, NULL, "host;x-amz-content-sha256;x-amz-date",
	  "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7", NULL,
	  "max-keys=2&prefix=J" },
};

/* ---- S3 encoding rules ---------------------------------------------------- */

static void is_encoded_path(const char *key, const char *want)
{
	struct buf b = BUF_INIT;

	sigv4_encode_path(&b, key);
	is_str(buf_str(&b), want, "encode_path(\"%s\")", key);
	buf_free(&b);
}

static const char *canon_uri(const char *path, unsigned flags, struct buf *creq)
{
	static const struct sigv4_creds c = { "AK", "SK", "auto", "s3" };
	struct sigv4_header hd[] = { H("host", "h"), H("x-amz-date", S3_DATE) };
	struct sigv4_request r = { "GET", path, NULL, 0, hd, 2, SIGV4_EMPTY_SHA256 };
	struct buf auth = BUF_INIT;
	char *nl;

	buf_reset(creq);
	if (sigv4_sign(&c, &r, S3_DATE, flags, &auth, creq, NULL) < 0)
		buf_adds(creq, "error\nerror\n");
	buf_free(&auth);
	nl = strchr((char *)creq->data + 4, '\n');
	if (nl)
		*nl = '\0';
	return (const char *)creq->data + 4;
}

static void test_s3_rules(void)
{
	struct buf b = BUF_INIT;
	struct sigv4_param q[] = {
		P("prefix", "a b+c/\xc3\xbc~"), P("list-type", "2"),
		P("continuation-token", "1/2=3&4"), P("max-keys", "5"),
	};
	char d[SIGV4_DATE_LEN + 1];
	struct sigv4_creds c = { "AK", "SK", "auto", "s3" };
	struct sigv4_header bad[] = { H("host", "h"), H("x-amz-date", S3_DATE),
				      H("x-evil", "a\r\nInjected: 1") };
	struct sigv4_request r = { "GET", "/", NULL, 0, bad, 3, SIGV4_EMPTY_SHA256 };

	is_encoded_path("test$file.text", "/test%24file.text");
	is_encoded_path("a b/c+d/\xc3\xbc~x", "/a%20b/c%2Bd/%C3%BC~x");
	is_encoded_path("pct%20sign/=&?#", "/pct%2520sign/%3D%26%3F%23");
	is_encoded_path("", "/");

	sigv4_query(&b, q, 4);
	is_str(buf_str(&b), "continuation-token=1%2F2%3D3%264&list-type=2&max-keys=5&"
	       "prefix=a%20b%2Bc%2F%C3%BC~", "query: sorted, '/', '+', ' ' and UTF-8 encoded");

	/* S3: the path is signed as sent, neither normalised nor re-encoded;
	 * the generic rules would do both. */
	is_str(canon_uri("/b/a%20b/./x//y", 0, &b), "/b/a%20b/./x//y",
	       "S3 canonical URI is the path as sent");
	is_str(canon_uri("/b/a%20b/./x//y", SIGV4_GENERIC, &b), "/b/a%2520b/x/y",
	       "generic canonical URI is normalised and encoded again");

	sigv4_date(1369353600LL, d);
	is_str(d, S3_DATE, "x-amz-date of 2013-05-24 00:00:00 UTC");

	buf_reset(&b);
	ok(sigv4_sign(&c, &r, S3_DATE, 0, &b, NULL, NULL) == -EINVAL,
	   "a header value with CR/LF is refused");
	r.nheaders = 2;
	ok(sigv4_sign(&c, &r, "2013-05-24", 0, &b, NULL, NULL) == -EINVAL,
	   "a malformed date is refused");
	ok(sigv4_sign(&c, &r, S3_DATE, 0, &b, NULL, NULL) == 0 &&
	   !strstr(buf_str(&b), "SK"), "the secret never appears in the header");
	buf_free(&b);
}

int main(void)
{
	const struct sigv4_creds suite_creds = {
		"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service",
	};
	const struct sigv4_creds s3_creds = {
		"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3",
	};
	char hash[SIGV4_SHA256_HEX_LEN + 1];
	size_t i;

	if (sodium_init() < 0)
		tap_bail("sodium_init failed");
	test_md5();

	sigv4_sha256_hex("", 0, hash);
	is_str(hash, SIGV4_EMPTY_SHA256, "sha256 of the empty body");
	sigv4_sha256_hex("Welcome to Amazon S3.", 21, hash);
	is_str(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
	       "sha256 of the S3 PUT example body");

	for (i = 0; i < sizeof(suite) / sizeof(suite[0]); i++)
		check_vec(&suite_creds, SUITE_DATE, SIGV4_GENERIC, &suite[i]);
	for (i = 0; i < sizeof(s3vec) / sizeof(s3vec[0]); i++)
		check_vec(&s3_creds, S3_DATE, 0, &s3vec[i]);
	test_s3_rules();
	return tap_done();
}
