/*
 * test_keys.c - keys/: tenant key text and files, wrapped keys, sealed blobs
 * and objects, the keyring and blob ids, with real crypto and no mocks.
 *
 * Besides round trips and every refusal, the "spec" checks re-derive keys and
 * open objects with plain libsodium calls following docs/format.md, so the
 * document and the code cannot drift apart.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "keys.h"
#include "tap.h"

#define WS "ws-test-1"
#define WS2 "0123456789abcdef"

/* 1 when err_msg() contains any 8-character window of secret. */
static int msg_leaks(const char *secret)
{
	const char *m = err_msg();
	size_t n = strlen(secret);

	for (size_t i = 0; i + 8 <= n; i++) {
		char win[9];

		memcpy(win, secret + i, 8);
		win[8] = '\0';
		if (strstr(m, win))
			return 1;
	}
	return 0;
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- setup and ids ------------------------------------------------------ */

static void *init_thread(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)keys_init();
}

static void test_init_and_ids(void)
{
	pthread_t th[4];
	int bad = 0;
	char id[KEYS_ID_SIZE], id2[KEYS_ID_SIZE];

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, init_thread, NULL);
	for (int i = 0; i < 4; i++) {
		void *rc;

		pthread_join(th[i], &rc);
		bad += rc != NULL;
	}
	is_int(bad, 0, "keys_init from 4 threads at once succeeds");
	is_int(keys_init(), 0, "keys_init again is a no-op");

	is_int(keys_random_id(id), 0, "random id");
	ok(keys_id_valid(id) && strlen(id) == 16, "random id is 16 lowercase hex");
	keys_random_id(id2);
	ok(strcmp(id, id2) != 0, "two random ids differ");
	ok(!keys_id_valid("0123456789ABCDEF"), "uppercase id refused");
	ok(!keys_id_valid("0123456789abcde"), "15-digit id refused");
	ok(!keys_id_valid("0123456789abcdef0"), "17-digit id refused");
	ok(!keys_id_valid("0123456789abcdeg"), "non-hex id refused");
	ok(!keys_id_valid(NULL), "NULL id refused");
	ok(keys_ws_id_valid("ws-1.a_B") && keys_ws_id_valid(WS2), "workspace ids accepted");
	ok(!keys_ws_id_valid("") && !keys_ws_id_valid("a/b") && !keys_ws_id_valid("a b") &&
	   !keys_ws_id_valid(NULL),
	   "empty, slash, space, NULL workspace ids refused");
	{
		char longid[KEYS_WS_ID_MAX + 2];

		memset(longid, 'a', sizeof(longid) - 1);
		longid[KEYS_WS_ID_MAX + 1] = '\0';
		ok(!keys_ws_id_valid(longid), "65-character workspace id refused");
		longid[KEYS_WS_ID_MAX] = '\0';
		ok(keys_ws_id_valid(longid), "64-character workspace id accepted");
	}
	is_str(keys_obj_kind_name(KEYS_OBJ_PACK_HEADER), "pack header", "kind names");
	is_str(keys_obj_kind_name(99), "unknown", "unknown kind name");
}

/* ---- tenant key text ---------------------------------------------------- */

static void test_kek_text(void)
{
	struct keys_kek *kek, *kek2;
	char text[KEYS_KEK_TEXT_SIZE], text2[KEYS_KEK_TEXT_SIZE], small[40];
	char line[KEYS_KEK_TEXT_SIZE + 1];
	const char *b64;

	is_int(keys_kek_generate(&kek), 0, "generate a tenant key");
	ok(keys_id_valid(keys_kek_id(kek)), "its id is 16 lowercase hex");
	is_int(keys_kek_format(kek, text, sizeof(text)), 0, "format it");
	is_int(strlen(text), KEYS_KEK_TEXT_LEN, "text is %d characters", KEYS_KEK_TEXT_LEN);
	ok(starts_with(text, "cairn-kek-v1:") && text[13 + 16] == ':' &&
	   strncmp(text + 13, keys_kek_id(kek), 16) == 0,
	   "text is cairn-kek-v1:<id>:<key>");
	is_int(keys_kek_format(kek, small, sizeof(small)), -ERANGE, "too small buffer: -ERANGE");
	is_int(keys_kek_parse(text, strlen(text), &kek2), 0, "parse it back");
	is_str(keys_kek_id(kek2), keys_kek_id(kek), "same id");
	keys_kek_format(kek2, text2, sizeof(text2));
	is_str(text2, text, "formats to the same text");
	keys_kek_free(kek2);
	snprintf(line, sizeof(line), "%s\n", text);
	is_int(keys_kek_parse(line, strlen(line), &kek2), 0, "one final newline accepted");
	keys_kek_free(kek2);

	b64 = text + 13 + 16 + 1;
	{
		struct { const char *name; char *text; size_t len; int code; } c[32];
		int n = 0, leaks = 0;
		char b[160];
		const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define CASE(nm, code_, ...) do { \
		int l_ = snprintf(b, sizeof(b), __VA_ARGS__); \
		c[n].name = nm; c[n].text = xstrndup(b, (size_t)l_); \
		c[n].len = (size_t)l_; c[n].code = code_; n++; } while (0)
		CASE("empty", -EINVAL, "%s", "");
		CASE("just a newline", -EINVAL, "\n");
		CASE("bare base64 key", -EINVAL, "%s", b64);
		CASE("no colon after the version", -EINVAL, "cairn-kek-v1%s", text + 13);
		CASE("upper-case prefix", -EINVAL, "CAIRN-KEK-V1:%s", text + 13);
		CASE("other prefix", -EINVAL, "cairn-kex-v1:%s", text + 13);
		CASE("version 01", -EINVAL, "cairn-kek-v01:%s", text + 13);
		CASE("version 2", -ENOTSUP, "cairn-kek-v2:%s", text + 13);
		CASE("upper-case id", -EINVAL, "cairn-kek-v1:0123456789ABCDEF:%s", b64);
		CASE("non-hex id", -EINVAL, "cairn-kek-v1:0123456789abcdeg:%s", b64);
		CASE("15-digit id", -EINVAL, "cairn-kek-v1:0123456789abcde:%s", b64);
		CASE("17-digit id", -EINVAL, "cairn-kek-v1:0123456789abcdef0:%s", b64);
		CASE("no key", -EINVAL, "cairn-kek-v1:0123456789abcdef:");
		CASE("no key, no colon", -EINVAL, "cairn-kek-v1:0123456789abcdef");
		CASE("key one character short", -EINVAL, "cairn-kek-v1:0123456789abcdef:%.43s", b64);
		CASE("key one character long", -EINVAL, "cairn-kek-v1:0123456789abcdef:%sA", b64);
		CASE("key without padding", -EINVAL, "cairn-kek-v1:0123456789abcdef:%.43sA", b64);
		CASE("key with a bad character", -EINVAL, "cairn-kek-v1:0123456789abcdef:*%s", b64 + 1);
		CASE("non-canonical base64", -EINVAL, "cairn-kek-v1:0123456789abcdef:%.42s%c=", b64,
		     alpha[(strchr(alpha, b64[42]) - alpha) ^ 1]);
		CASE("extra field", -EINVAL, "%s:x", text);
		CASE("trailing space", -EINVAL, "%s ", text);
		CASE("leading space", -EINVAL, " %s", text);
		CASE("CRLF ending", -EINVAL, "%s\r\n", text);
		CASE("two newlines", -EINVAL, "%s\n\n", text);
		CASE("two lines", -EINVAL, "%s\n%s\n", text, text);
#undef CASE
		/* An embedded NUL inside the key. */
		c[n].name = "embedded NUL";
		c[n].text = xstrdup(text);
		c[n].text[60] = '\0';
		c[n].len = strlen(text);
		c[n].code = -EINVAL;
		n++;
		for (int i = 0; i < n; i++) {
			int rc;

			kek2 = (struct keys_kek *)1;
			rc = keys_kek_parse(c[i].text, c[i].len, &kek2);
			is_int(rc, c[i].code, "malformed tenant key refused: %s", c[i].name);
			ok(kek2 == NULL && err_msg()[0], "  ... with a message: %s", err_msg());
			leaks += msg_leaks(b64);
			free(c[i].text);
		}
		is_int(leaks, 0, "no message quotes any 8 characters of the secret key");
		keys_kek_parse("cairn-kek-v2:x", 14, &kek2);
		ok(strstr(err_msg(), "cairn-kek-v2") && strstr(err_msg(), "cairn-kek-v1"),
		   "version message names the version found and the one supported");
	}
	{
		/* The URL-safe alphabet is not the format's: bytes fb ef be encode
		 * to "++++", which URL-safe base64 writes "----". */
		uint8_t raw[32];
		char key64[45], t[KEYS_KEK_TEXT_SIZE];

		for (int i = 0; i < 32; i++)
			raw[i] = (uint8_t)(i % 3 == 0 ? 0xfb : i % 3 == 1 ? 0xef : 0xbe);
		sodium_bin2base64(key64, sizeof(key64), raw, 32, sodium_base64_VARIANT_ORIGINAL);
		snprintf(t, sizeof(t), "cairn-kek-v1:0123456789abcdef:%s", key64);
		is_int(keys_kek_parse(t, strlen(t), &kek2), 0, "key with + in base64 parses");
		keys_kek_free(kek2);
		for (char *p = t + 30; *p; p++)
			if (*p == '+')
				*p = '-';
		is_int(keys_kek_parse(t, strlen(t), &kek2), -EINVAL,
		       "URL-safe base64 refused");
	}
	keys_kek_free(kek);
	keys_kek_free(NULL);	/* must not crash: the sanitizer builds and valgrind look */
}

/* ---- tenant key files --------------------------------------------------- */

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char tmp[512];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_add(&b, tmp, n);
	fclose(f);
	return buf_detach(&b, len);
}

static void write_str(const char *path, const char *s, mode_t mode)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		tap_bail("cannot write %s", path);
	fputs(s, f);
	fclose(f);
	chmod(path, mode);
}

static void test_kek_files(void)
{
	char *dir = tap_mkdtemp("keys");
	char *path = xasprintf("%s/tenant.key", dir);
	char *path2 = xasprintf("%s/other.key", dir);
	char *want, *got, text[KEYS_KEK_TEXT_SIZE], text2[KEYS_KEK_TEXT_SIZE];
	struct keys_kek *kek, *kek2;
	struct stat st;
	size_t len;
	mode_t old;

	keys_kek_generate(&kek);
	keys_kek_format(kek, text, sizeof(text));
	is_int(keys_kek_write_file(kek, path), 0, "write a tenant key file");
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "it is a regular file");
	is_int(st.st_mode & 07777, 0600, "created with mode 0600");
	got = read_all(path, &len);
	want = xasprintf("%s\n", text);
	is_str(got, want, "it holds the text form and one newline");
	free(got);

	is_int(keys_kek_load_file(path, &kek2), 0, "load it");
	keys_kek_format(kek2, text2, sizeof(text2));
	is_str(text2, text, "loaded key equals the written one");
	keys_kek_free(kek2);

	{
		struct keys_kek *other;

		keys_kek_generate(&other);
		is_int(keys_kek_write_file(other, path), -EEXIST, "write refuses an existing file");
		ok(strstr(err_msg(), path) != NULL, "  ... naming it: %s", err_msg());
		got = read_all(path, &len);
		is_str(got, want, "the existing file is unchanged");
		free(got);
		keys_kek_free(other);
	}

	old = umask(0277);
	is_int(keys_kek_write_file(kek, path2), 0, "write under umask 0277");
	umask(old);
	ok(stat(path2, &st) == 0 && (st.st_mode & 07777) == 0600, "still mode 0600");
	unlink(path2);

	{
		char *link = xasprintf("%s/dangling", dir);

		ok(symlink("/nonexistent/cairn-key", link) == 0, "make a dangling symlink");
		is_int(keys_kek_write_file(kek, link), -EEXIST,
		       "write refuses to follow a symlink");
		ok(access("/nonexistent/cairn-key", F_OK) != 0, "nothing written through it");
		unlink(link);
		free(link);
	}
	{
		char *nodir = xasprintf("%s/no/such/dir.key", dir);

		is_int(keys_kek_write_file(kek, nodir), -ENOENT, "write into a missing directory");
		free(nodir);
	}

	chmod(path, 0644);
	kek2 = (struct keys_kek *)1;
	is_int(keys_kek_load_file(path, &kek2), -EPERM, "mode 0644 refused");
	{
		char *msg = xasprintf("permissions 0644 for '%s' are too open: chmod 600 %s",
				      path, path);

		is_str(err_msg(), msg, "  ... with the chmod hint");
		free(msg);
	}
	ok(kek2 == NULL, "  ... and no key");
	chmod(path, 0640);
	is_int(keys_kek_load_file(path, &kek2), -EPERM, "mode 0640 refused");
	chmod(path, 0604);
	is_int(keys_kek_load_file(path, &kek2), -EPERM, "mode 0604 refused");
	chmod(path, 0620);
	is_int(keys_kek_load_file(path, &kek2), -EPERM, "mode 0620 (group-writable) refused");
	chmod(path, 0400);
	is_int(keys_kek_load_file(path, &kek2), 0, "mode 0400 accepted");
	keys_kek_free(kek2);
	chmod(path, 0600);

	{
		char *link = xasprintf("%s/link.key", dir);

		symlink(path, link);
		is_int(keys_kek_load_file(link, &kek2), 0,
		       "a symlink to a 0600 file is loaded (as secret volumes are mounted)");
		keys_kek_free(kek2);
		free(link);
	}

	is_int(keys_kek_load_file(dir, &kek2), -EINVAL, "a directory is refused");
	ok(strstr(err_msg(), "not a regular file") != NULL, "  ... %s", err_msg());
	{
		char *fifo = xasprintf("%s/fifo", dir);

		mkfifo(fifo, 0600);
		is_int(keys_kek_load_file(fifo, &kek2), -EINVAL,
		       "a FIFO is refused (without blocking)");
		free(fifo);
	}
	{
		char *missing = xasprintf("%s/missing.key", dir);

		is_int(keys_kek_load_file(missing, &kek2), -ENOENT, "a missing file: -ENOENT");
		ok(strstr(err_msg(), missing) != NULL, "  ... naming it");
		free(missing);
	}
	{
		const char *b64 = text + 30;
		char *bad = xasprintf("%.50s\n", text);

		write_str(path2, bad, 0600);
		is_int(keys_kek_load_file(path2, &kek2), -EINVAL, "a truncated key file refused");
		ok(strstr(err_msg(), path2) != NULL && !msg_leaks(b64),
		   "  ... naming the file, not the key: %s", err_msg());
		unlink(path2);
		free(bad);
		bad = xasprintf("%s\n%s\n", text, text);
		write_str(path2, bad, 0600);
		is_int(keys_kek_load_file(path2, &kek2), -EINVAL, "a two-key file refused");
		ok(!msg_leaks(b64), "  ... without quoting the key");
		unlink(path2);
		free(bad);
		bad = xmalloc(1000);
		memset(bad, 'A', 999);
		bad[999] = '\0';
		write_str(path2, bad, 0600);
		is_int(keys_kek_load_file(path2, &kek2), -EINVAL, "a 1000-byte file refused");
		unlink(path2);
		free(bad);
	}

	keys_kek_free(kek);
	free(want);
	free(path);
	free(path2);
	tap_rmtree(dir);
	free(dir);
}

/* ---- flips and truncations ---------------------------------------------- */

/* Opens bytes one way; returns the code and whether output stayed clean. */
typedef int (*try_fn)(void *ctx, const uint8_t *b, size_t len, int *clean);

/* Every single-byte change (three masks per byte) and every truncation and
 * one appended byte must be refused: with -ENOTSUP at the offsets listed in
 * notsup (version, algorithm bytes), -EBADMSG everywhere else. */
static void check_tamper(const char *what, const uint8_t *obj, size_t len, try_fn fn,
			 void *ctx, const size_t *notsup, size_t nnotsup)
{
	static const uint8_t masks[] = { 0x01, 0x80, 0xff };
	uint8_t *b = xmalloc(len + 1);
	int wrong = 0, dirty = 0, clean;
	size_t tries = 0;

	for (size_t i = 0; i < len; i++) {
		int want = -EBADMSG;

		for (size_t k = 0; k < nnotsup; k++)
			if (notsup[k] == i)
				want = -ENOTSUP;
		for (size_t m = 0; m < sizeof(masks); m++) {
			int rc;

			memcpy(b, obj, len);
			b[i] ^= masks[m];
			rc = fn(ctx, b, len, &clean);
			tries++;
			if (rc != want && wrong++ < 3)
				diag("%s: byte %zu ^ 0x%02x gave %d (%s)", what, i, masks[m],
				     rc, err_msg());
			dirty += !clean;
		}
	}
	is_int(wrong, 0, "%s: all %zu single-byte changes refused with the right code",
	       what, tries);
	is_int(dirty, 0, "%s: no output from any of them", what);

	wrong = dirty = 0;
	for (size_t l = 0; l < len; l++) {
		int rc = fn(ctx, obj, l, &clean);

		if (rc != -EBADMSG && wrong++ < 3)
			diag("%s: truncated to %zu gave %d (%s)", what, l, rc, err_msg());
		dirty += !clean;
	}
	is_int(wrong, 0, "%s: truncation at each of %zu lengths refused (-EBADMSG)", what, len);
	is_int(dirty, 0, "%s: no output from any truncation", what);
	memcpy(b, obj, len);
	b[len] = 0;
	is_int(fn(ctx, b, len + 1, &clean), -EBADMSG, "%s: one byte appended refused", what);
	free(b);
}

/* ---- wrapped keys ------------------------------------------------------- */

struct unwrap_ctx {
	const struct keys_kek *kek;
	const char *ws, *key_id, *kek_id;
};

static int try_unwrap(void *vctx, const uint8_t *b, size_t len, int *clean)
{
	struct unwrap_ctx *c = vctx;
	uint8_t key[KEYS_KEY_LEN], zero[KEYS_KEY_LEN] = { 0 };
	int rc;

	memset(key, 0xaa, sizeof(key));
	rc = keys_unwrap(c->kek, b, len, c->ws, c->key_id, c->kek_id, key, NULL);
	*clean = rc == 0 || memcmp(key, zero, sizeof(key)) == 0;
	return rc;
}

static void test_wrap(void)
{
	struct keys_kek *kek, *kek2, *samid;
	uint8_t key[KEYS_KEY_LEN], got[KEYS_KEY_LEN], zero[KEYS_KEY_LEN] = { 0 };
	char key_id[KEYS_ID_SIZE], name[KEYS_WRAPPED_NAME_SIZE];
	char kid[KEYS_ID_SIZE], kekid[KEYS_ID_SIZE];
	struct keys_wrap_info info;
	struct buf obj = BUF_INIT;
	const char *kek_id;
	time_t now = time(NULL);

	keys_kek_generate(&kek);
	keys_kek_generate(&kek2);
	kek_id = keys_kek_id(kek);
	randombytes_buf(key, sizeof(key));
	keys_random_id(key_id);

	is_int(keys_wrapped_name(key_id, kek_id, name, sizeof(name)), 0, "wrapped key name");
	{
		char *want = xasprintf("keys/%s.%s", key_id, kek_id);

		is_str(name, want, "  ... is keys/<key-id>.<kek-id>");
		free(want);
	}
	is_int(keys_wrapped_name(key_id, kek_id, name, 10), -ERANGE, "name: small buffer");
	is_int(keys_wrapped_name("xyz", kek_id, name, sizeof(name)), -EINVAL, "name: bad id");
	is_int(keys_wrapped_name_parse(name, kid, kekid), 0, "parse the name");
	ok(strcmp(kid, key_id) == 0 && strcmp(kekid, kek_id) == 0, "  ... gives both ids");
	is_int(keys_wrapped_name_parse("keys/0123456789abcdef", kid, kekid), -EINVAL,
	       "a name without kek id refused");
	is_int(keys_wrapped_name_parse("keyz/0123456789abcdef.0123456789abcdef", kid, kekid),
	       -EINVAL, "a name outside keys/ refused");
	is_int(keys_wrapped_name_parse("keys/0123456789abcdef.0123456789ABCDEF", kid, kekid),
	       -EINVAL, "a name with upper-case hex refused");

	buf_adds(&obj, "xy");
	is_int(keys_wrap(kek, WS, KEYS_KEY_DATA, key_id, key, &obj), 0, "wrap a data key");
	is_int(obj.len, 2 + 124 + strlen(WS), "appended 124 + workspace id length bytes");
	ok(memcmp(obj.data, "xy", 2) == 0, "what was in the buffer stays");
	memmove(obj.data, obj.data + 2, obj.len - 2);
	buf_setlen(&obj, obj.len - 2);
	ok(!memmem(obj.data, obj.len, key, sizeof(key)), "the key is not in the object");

	is_int(keys_wrap_peek(obj.data, obj.len, &info), 0, "peek at the header");
	ok(info.version == 1 && info.kind == KEYS_KEY_DATA && !strcmp(info.ws_id, WS) &&
	   !strcmp(info.key_id, key_id) && !strcmp(info.kek_id, kek_id),
	   "  ... version, kind, workspace, ids");
	ok(info.created >= (uint64_t)now - 1 && info.created <= (uint64_t)time(NULL) + 1,
	   "  ... creation time is now");

	memset(&info, 0, sizeof(info));
	is_int(keys_unwrap(kek, obj.data, obj.len, WS, key_id, kek_id, got, &info), 0, "unwrap");
	is_mem(got, sizeof(got), key, sizeof(key), "  ... gives the key back");
	ok(info.kind == KEYS_KEY_DATA && !strcmp(info.key_id, key_id), "  ... and its header");

	memset(got, 0xaa, sizeof(got));
	is_int(keys_unwrap(kek2, obj.data, obj.len, WS, key_id, kek_id, got, NULL), -EACCES,
	       "unwrap with another tenant key: -EACCES");
	{
		char *want = xasprintf("cannot unwrap key %s: wrong tenant key?", key_id);

		ok(starts_with(err_msg(), want), "  ... %s", err_msg());
		free(want);
	}
	is_mem(got, sizeof(got), zero, sizeof(zero), "  ... output zeroed");

	{
		/* Same kek id, other key bytes: the check value tells them apart. */
		char t[KEYS_KEK_TEXT_SIZE], k64[45];
		uint8_t other[32];

		randombytes_buf(other, sizeof(other));
		sodium_bin2base64(k64, sizeof(k64), other, 32, sodium_base64_VARIANT_ORIGINAL);
		snprintf(t, sizeof(t), "cairn-kek-v1:%s:%s", kek_id, k64);
		keys_kek_parse(t, strlen(t), &samid);
		is_int(keys_unwrap(samid, obj.data, obj.len, WS, key_id, kek_id, got, NULL),
		       -EACCES, "unwrap with a different key under the same kek id: -EACCES");
		ok(strstr(err_msg(), "wrong tenant key?") != NULL, "  ... %s", err_msg());
		keys_kek_free(samid);
	}

	is_int(keys_unwrap(kek, obj.data, obj.len, "other-ws", key_id, kek_id, got, NULL),
	       -EBADMSG, "unwrap for another workspace refused");
	ok(strstr(err_msg(), WS) && strstr(err_msg(), "other-ws"), "  ... naming both: %s",
	   err_msg());
	is_int(keys_unwrap(kek, obj.data, obj.len, WS, "0000000000000000", kek_id, got, NULL),
	       -EBADMSG, "unwrap as another key id refused");
	ok(strstr(err_msg(), key_id) && strstr(err_msg(), "0000000000000000"),
	   "  ... naming both: %s", err_msg());
	is_int(keys_unwrap(kek, obj.data, obj.len, WS, key_id, keys_kek_id(kek2), got, NULL),
	       -EBADMSG, "unwrap as wrapped by another kek id refused");
	ok(strstr(err_msg(), kek_id) && strstr(err_msg(), keys_kek_id(kek2)),
	   "  ... naming both: %s", err_msg());
	is_int(keys_unwrap(kek, obj.data, obj.len, "a/b", key_id, kek_id, got, NULL), -EINVAL,
	       "unwrap with an invalid expected workspace id: -EINVAL");

	{
		struct unwrap_ctx c = { kek, WS, key_id, kek_id };
		const size_t notsup[] = { 8, 10 };	/* version, algorithm */

		check_tamper("wrapped key", obj.data, obj.len, try_unwrap, &c, notsup, 2);
	}
	{
		uint8_t *b = xmalloc(obj.len);

		memcpy(b, obj.data, obj.len);
		b[8] = 2;
		is_int(keys_unwrap(kek, b, obj.len, WS, key_id, kek_id, got, NULL), -ENOTSUP,
		       "version 2: -ENOTSUP");
		ok(strstr(err_msg(), "version 2") && strstr(err_msg(), "version 1"),
		   "  ... naming the version found and supported: %s", err_msg());
		is_int(keys_wrap_peek(b, obj.len, &info), -ENOTSUP, "peek: -ENOTSUP too");
		memcpy(b, obj.data, obj.len);
		b[36] ^= 1;	/* check value */
		is_int(keys_unwrap(kek, b, obj.len, WS, key_id, kek_id, got, NULL), -EBADMSG,
		       "an altered check value is tampering, not a wrong key");
		free(b);
	}

	is_int(keys_wrap(kek, "a b", KEYS_KEY_DATA, key_id, key, &obj), -EINVAL,
	       "wrap: invalid workspace id refused");
	is_int(keys_wrap(kek, WS, 7, key_id, key, &obj), -EINVAL, "wrap: unknown kind refused");
	is_int(keys_wrap(kek, WS, KEYS_KEY_DATA, "nothex", key, &obj), -EINVAL,
	       "wrap: invalid key id refused");
	{
		struct buf o2 = BUF_INIT;

		keys_wrap(kek, WS, KEYS_KEY_DATA, key_id, key, &o2);
		ok(o2.len == obj.len && memcmp(o2.data + 52 + strlen(WS), obj.data + 52 + strlen(WS),
					       24) != 0,
		   "two wraps of one key use different nonces");
		buf_free(&o2);
	}

	buf_free(&obj);
	keys_kek_free(kek);
	keys_kek_free(kek2);
}

/* ---- keyring and blob ids ----------------------------------------------- */

static void test_ring(void)
{
	struct keys_ring *r, *r2, *r3, *e;
	const struct keys_key *id, *d1, *d2, *k;
	struct keys_kek *kek;
	struct buf wid = BUF_INIT, wd = BUF_INIT;
	uint8_t b1[32], b2[32], b3[32], plain[32];
	const uint8_t *ck1, *ck2;
	const char *data = "hello, blob";
	uint8_t raw[KEYS_KEY_LEN];

	is_int(keys_ring_new(WS, &r), 0, "fresh keyring");
	is_int(keys_ring_count(r), 2, "  ... holds two keys");
	is_int(keys_ring_identity(r, &id), 0, "  ... an identity key");
	is_int(keys_key_kind(id), KEYS_KEY_IDENTITY, "  ... of kind identity");
	is_int(keys_ring_current(r, &d1), 0, "  ... and a current data key");
	is_int(keys_key_kind(d1), KEYS_KEY_DATA, "  ... of kind data");
	ok(strcmp(keys_key_id(id), keys_key_id(d1)) != 0, "  ... with different ids");
	is_str(keys_ring_ws_id(r), WS, "  ... for its workspace");
	ok(keys_ring_key(r, 0) == id && keys_ring_key(r, 1) == d1 && !keys_ring_key(r, 2),
	   "keys_ring_key lists them in order");

	is_int(keys_blob_id(r, data, strlen(data), b1), 0, "blob id");
	crypto_generichash(plain, 32, (const uint8_t *)data, strlen(data), NULL, 0);
	ok(memcmp(b1, plain, 32) != 0, "blob id differs from unkeyed BLAKE2b-256");
	keys_blob_id(r, data, strlen(data), b2);
	is_mem(b2, 32, b1, 32, "blob id is deterministic");
	keys_blob_id(r, "hello, blob!", 12, b2);
	ok(memcmp(b1, b2, 32) != 0, "other data, other id");
	is_int(keys_blob_id(r, NULL, 0, b2), 0, "blob id of 0 bytes");
	{
		uint8_t as_data[KEYS_BLOB_ID_LEN], as_tree[KEYS_BLOB_ID_LEN];

		keys_blob_id_typed(r, KEYS_BLOB_DATA, data, strlen(data), as_data);
		keys_blob_id_typed(r, KEYS_BLOB_TREE, data, strlen(data), as_tree);
		keys_blob_id(r, data, strlen(data), b2);
		ok(memcmp(as_data, b2, sizeof(b2)) == 0, "a data blob's typed id is its blob id");
		ok(memcmp(as_data, as_tree, sizeof(as_tree)) != 0,
		   "the same bytes as a tree blob get another id (no data blob can pose as a tree)");
		is_int(keys_blob_id_typed(r, 9, data, 1, b2), -EINVAL, "typed id of an unknown type is refused");
	}
	is_int(keys_chunker_key(r, &ck1), 0, "chunker key");

	is_int(keys_ring_rotate(r, &d2), 0, "rotate the data key");
	ok(d2 != d1 && strcmp(keys_key_id(d1), keys_key_id(d2)) != 0, "  ... a new key id");
	keys_ring_current(r, &k);
	ok(k == d2, "  ... which is now current");
	is_int(keys_ring_count(r), 3, "  ... and the old one stays");
	keys_blob_id(r, data, strlen(data), b2);
	is_mem(b2, 32, b1, 32, "blob id unchanged by data-key rotation");
	keys_chunker_key(r, &ck2);
	ok(ck1 == ck2, "chunker key unchanged by rotation");
	is_int(keys_ring_find(r, keys_key_id(d1), &k), 0, "find the old data key");
	ok(k == d1, "  ... it is the one");
	is_int(keys_ring_set_current(r, keys_key_id(d1)), 0, "set the old one current");
	keys_ring_current(r, &k);
	ok(k == d1, "  ... it is");
	keys_ring_set_current(r, keys_key_id(d2));
	is_int(keys_ring_find(r, "0000000000000000", &k), -EKEYREJECTED, "unknown key id: -EKEYREJECTED");
	ok(strstr(err_msg(), "0000000000000000") && strstr(err_msg(), WS), "  ... %s",
	   err_msg());
	is_int(keys_ring_find(r, keys_key_id(id), &k), -EKEYREJECTED,
	       "the identity key is not a data key");
	is_int(keys_ring_set_current(r, "0000000000000000"), -ENOENT,
	       "set_current of an unknown key: -ENOENT");

	/* Load the same keys from their wrapped objects into another ring. */
	keys_kek_generate(&kek);
	is_int(keys_ring_wrap(r, kek, keys_key_id(id), &wid), 0, "wrap the identity key");
	is_int(keys_ring_wrap(r, kek, keys_key_id(d2), &wd), 0, "wrap the data key");
	is_int(keys_ring_wrap(r, kek, "0000000000000000", &wd), -ENOENT,
	       "wrap of an unknown key: -ENOENT");
	is_int(keys_ring_empty(WS, &r2), 0, "empty keyring");
	is_int(keys_ring_current(r2, &k), -ENOENT, "  ... has no current key");
	is_int(keys_blob_id(r2, data, 1, b2), -ENOENT, "  ... and no blob ids");
	is_int(keys_chunker_key(r2, &ck2), -ENOENT, "  ... nor a chunker key");
	is_int(keys_ring_add_wrapped(r2, kek, wid.data, wid.len, keys_key_id(id), keys_kek_id(kek)),
	       0, "add the wrapped identity key");
	is_int(keys_ring_add_wrapped(r2, kek, wd.data, wd.len, keys_key_id(d2), keys_kek_id(kek)),
	       0, "add the wrapped data key");
	is_int(keys_ring_add_wrapped(r2, kek, wd.data, wd.len, keys_key_id(d2), keys_kek_id(kek)),
	       0, "adding it again is a no-op");
	is_int(keys_ring_count(r2), 2, "  ... still two keys");
	is_int(keys_ring_set_current(r2, keys_key_id(d2)), 0, "make it current");
	keys_blob_id(r2, data, strlen(data), b2);
	is_mem(b2, 32, b1, 32, "same blob ids from the unwrapped identity key");
	keys_chunker_key(r2, &ck2);
	is_mem(ck2, 32, ck1, 32, "same chunker key");
	is_int(keys_ring_identity(r2, &k), 0, "identity key present");
	ok(k && keys_key_kind(k) == KEYS_KEY_IDENTITY, "  ... with kind from the header");
	{
		struct keys_ring *wrongws;

		keys_ring_empty("other-ws", &wrongws);
		is_int(keys_ring_add_wrapped(wrongws, kek, wd.data, wd.len, keys_key_id(d2),
					     keys_kek_id(kek)),
		       -EBADMSG, "a wrapped key of another workspace is refused");
		is_int(keys_ring_count(wrongws), 0, "  ... and not added");
		keys_ring_free(wrongws);
	}

	/* Rings of two workspaces: different identity keys, different ids. */
	keys_ring_new(WS2, &r3);
	keys_blob_id(r3, data, strlen(data), b3);
	ok(memcmp(b1, b3, 32) != 0, "another workspace gives another blob id");
	keys_chunker_key(r3, &ck2);
	ok(memcmp(ck1, ck2, 32) != 0, "  ... and another chunker key");

	/* keys_ring_add refusals. */
	keys_ring_empty(WS, &e);
	randombytes_buf(raw, sizeof(raw));
	is_int(keys_ring_add(e, KEYS_KEY_DATA, "1111111111111111", raw), 0, "add a raw data key");
	is_int(keys_ring_add(e, KEYS_KEY_DATA, "1111111111111111", raw), 0, "  ... again: no-op");
	raw[0] ^= 1;
	is_int(keys_ring_add(e, KEYS_KEY_DATA, "1111111111111111", raw), -EEXIST,
	       "same id, other bytes: -EEXIST");
	is_int(keys_ring_add(e, KEYS_KEY_IDENTITY, "2222222222222222", raw), 0, "add an identity key");
	is_int(keys_ring_add(e, KEYS_KEY_IDENTITY, "3333333333333333", raw), -EEXIST,
	       "a second identity key: -EEXIST");
	is_int(keys_ring_add(e, KEYS_KEY_DATA, "xyz", raw), -EINVAL, "bad id: -EINVAL");
	is_int(keys_ring_add(e, 9, "4444444444444444", raw), -EINVAL, "bad kind: -EINVAL");
	is_int(keys_ring_count(e), 2, "only the two good keys are in");
	{
		struct keys_ring *bad = (struct keys_ring *)1;

		is_int(keys_ring_empty("bad/ws", &bad), -EINVAL,
		       "ring for an invalid workspace id: -EINVAL");
		ok(bad == NULL, "  ... and no ring");
		bad = (struct keys_ring *)1;
		is_int(keys_ring_new("", &bad), -EINVAL, "fresh ring for an empty id: -EINVAL");
	}
	keys_ring_free(NULL);	/* must not crash: the sanitizer builds and valgrind look */

	buf_free(&wid);
	buf_free(&wd);
	keys_kek_free(kek);
	keys_ring_free(r);
	keys_ring_free(r2);
	keys_ring_free(r3);
	keys_ring_free(e);
}

/* ---- sealed blobs ------------------------------------------------------- */

struct blob_ctx {
	const struct keys_key *dk;
	enum keys_blob_type type;
	const uint8_t *id;
	struct buf *out;
};

static int try_open_blob(void *vctx, const uint8_t *b, size_t len, int *clean)
{
	struct blob_ctx *c = vctx;
	size_t before = c->out->len;
	int rc = keys_open_blob(c->dk, c->type, c->id, b, len, c->out);

	*clean = rc == 0 || c->out->len == before;
	buf_setlen(c->out, before);
	return rc;
}

static void test_blobs(void)
{
	struct keys_ring *r, *same_id;
	const struct keys_key *dk, *id, *dk2;
	struct buf sealed = BUF_INIT, out = BUF_INIT;
	static const size_t sizes[] = { 0, 1, 1000, 1 << 20 };
	uint8_t bid[32], bid2[32], raw[32];
	uint8_t *plain = xmalloc(1 << 20);

	tap_fill_random(plain, 1 << 20, 42);
	keys_ring_new(WS, &r);
	keys_ring_current(r, &dk);
	keys_ring_identity(r, &id);

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];

		keys_blob_id(r, plain, n, bid);
		buf_reset(&sealed);
		buf_reset(&out);
		is_int(keys_seal_blob(dk, KEYS_BLOB_DATA, bid, plain, n, &sealed), 0,
		       "seal a %zu-byte blob", n);
		is_int(sealed.len, n + KEYS_BLOB_OVERHEAD, "  ... %zu + 40 bytes", n);
		is_int(keys_open_blob(dk, KEYS_BLOB_DATA, bid, sealed.data, sealed.len, &out), 0,
		       "  ... opens");
		is_mem(out.data, out.len, plain, n, "  ... to the same bytes");
	}
	ok(!memmem(sealed.data, sealed.len, plain + 5000, 64),
	   "a 64-byte piece of the plaintext is not in the sealed blob");

	/* Appending, and two seals of the same blob. */
	{
		struct buf two = BUF_INIT;

		keys_blob_id(r, plain, 100, bid);
		buf_adds(&two, "head");
		keys_seal_blob(dk, KEYS_BLOB_TREE, bid, plain, 100, &two);
		keys_seal_blob(dk, KEYS_BLOB_TREE, bid, plain, 100, &two);
		ok(two.len == 4 + 2 * 140 && memcmp(two.data, "head", 4) == 0,
		   "seals append back to back");
		ok(memcmp(two.data + 4, two.data + 144, 140) != 0,
		   "two seals of one blob differ (random nonce)");
		buf_reset(&out);
		buf_adds(&out, "x");
		is_int(keys_open_blob(dk, KEYS_BLOB_TREE, bid, two.data + 144, 140, &out), 0,
		       "the second opens");
		ok(out.len == 101 && out.data[0] == 'x' && memcmp(out.data + 1, plain, 100) == 0,
		   "  ... appended to what out held");
		buf_free(&two);
	}

	keys_blob_id(r, plain, 100, bid);
	buf_reset(&sealed);
	keys_seal_blob(dk, KEYS_BLOB_DATA, bid, plain, 100, &sealed);
	buf_reset(&out);
	{
		struct blob_ctx c = { dk, KEYS_BLOB_DATA, bid, &out };

		check_tamper("sealed blob", sealed.data, sealed.len, try_open_blob, &c, NULL, 0);
	}
	memcpy(bid2, bid, 32);
	bid2[31] ^= 1;
	is_int(keys_open_blob(dk, KEYS_BLOB_DATA, bid2, sealed.data, sealed.len, &out), -EBADMSG,
	       "blob opened under another id refused");
	ok(strstr(err_msg(), "sealed data blob") != NULL, "  ... %s", err_msg());
	is_int(keys_open_blob(dk, KEYS_BLOB_TREE, bid, sealed.data, sealed.len, &out), -EBADMSG,
	       "blob opened as another type refused");
	keys_ring_rotate(r, &dk2);
	is_int(keys_open_blob(dk2, KEYS_BLOB_DATA, bid, sealed.data, sealed.len, &out), -EBADMSG,
	       "blob opened with another data key refused");
	is_int(keys_open_blob(id, KEYS_BLOB_DATA, bid, sealed.data, sealed.len, &out), -EINVAL,
	       "the identity key cannot open blobs");
	is_int(keys_seal_blob(id, KEYS_BLOB_DATA, bid, plain, 10, &out), -EINVAL,
	       "nor seal them");
	is_int(keys_seal_blob(dk, 3, bid, plain, 10, &out), -EINVAL, "unknown blob type refused");
	/* A key with the same id but other bytes. */
	keys_ring_empty(WS, &same_id);
	randombytes_buf(raw, sizeof(raw));
	keys_ring_add(same_id, KEYS_KEY_DATA, keys_key_id(dk), raw);
	{
		const struct keys_key *fake;

		keys_ring_find(same_id, keys_key_id(dk), &fake);
		is_int(keys_open_blob(fake, KEYS_BLOB_DATA, bid, sealed.data, sealed.len, &out),
		       -EBADMSG, "blob opened with other bytes under the same key id refused");
	}
	is_int(out.len, 0, "no refused open wrote any output");

	keys_ring_free(same_id);
	keys_ring_free(r);
	buf_free(&sealed);
	buf_free(&out);
	free(plain);
}

/* ---- sealed objects ----------------------------------------------------- */

struct obj_ctx {
	const struct keys_key *dk;
	enum keys_obj_kind kind;
	const char *name, *ws;
	struct buf *out;
};

static int try_open_object(void *vctx, const uint8_t *b, size_t len, int *clean)
{
	struct obj_ctx *c = vctx;
	size_t before = c->out->len;
	int rc = keys_open_object(c->dk, c->kind, c->name, c->ws, b, len, c->out);

	*clean = rc == 0 || c->out->len == before;
	buf_setlen(c->out, before);
	return rc;
}

static void test_objects(void)
{
	struct keys_ring *r, *same_id;
	const struct keys_key *dk, *dk2, *id;
	struct buf sealed = BUF_INIT, out = BUF_INIT;
	const char *name = "snapshots/0123456789abcdef";
	const char *rec = "{\"generation\": 7, \"snapshot\": \"abc\"}";
	char kid[KEYS_ID_SIZE];
	enum keys_obj_kind kind;
	uint8_t raw[32];

	keys_ring_new(WS, &r);
	keys_ring_current(r, &dk);
	keys_ring_identity(r, &id);

	for (int k = KEYS_OBJ_PACK_HEADER; k <= KEYS_OBJ_LEASE; k++) {
		buf_reset(&sealed);
		buf_reset(&out);
		is_int(keys_seal_object(dk, k, name, WS, rec, strlen(rec), &sealed), 0,
		       "seal a %s", keys_obj_kind_name(k));
		is_int(keys_open_object(dk, k, name, WS, sealed.data, sealed.len, &out), 0,
		       "  ... opens");
		is_mem(out.data, out.len, rec, strlen(rec), "  ... to the same bytes");
	}
	buf_reset(&sealed);
	buf_reset(&out);
	is_int(keys_seal_object(dk, KEYS_OBJ_INDEX, "index/x", WS, "", 0, &sealed), 0,
	       "seal an empty index");
	is_int(sealed.len, KEYS_OBJECT_OVERHEAD, "  ... 60 bytes");
	is_int(keys_open_object(dk, KEYS_OBJ_INDEX, "index/x", WS, sealed.data, sealed.len, &out),
	       0, "  ... opens");
	is_int(out.len, 0, "  ... to nothing");

	buf_reset(&sealed);
	keys_seal_object(dk, KEYS_OBJ_HEAD, name, WS, rec, strlen(rec), &sealed);
	is_int(sealed.len, strlen(rec) + KEYS_OBJECT_OVERHEAD, "sealed object is len + 60 bytes");
	ok(!memmem(sealed.data, sealed.len, "generation", 10), "plaintext not visible");
	is_int(keys_object_key_id(sealed.data, sealed.len, kid, &kind), 0, "peek the key id");
	is_str(kid, keys_key_id(dk), "  ... it is the sealing data key's");
	is_int(kind, KEYS_OBJ_HEAD, "  ... and the kind");
	is_int(keys_object_key_id(sealed.data, 10, kid, NULL), -EBADMSG, "peek truncated: -EBADMSG");

	buf_reset(&out);
	{
		struct obj_ctx c = { dk, KEYS_OBJ_HEAD, name, WS, &out };
		const size_t notsup[] = { 8, 10 };

		check_tamper("sealed object", sealed.data, sealed.len, try_open_object, &c,
			     notsup, 2);
	}
	{
		uint8_t *b = xmalloc(sealed.len);

		memcpy(b, sealed.data, sealed.len);
		b[8] = 9;
		is_int(keys_open_object(dk, KEYS_OBJ_HEAD, name, WS, b, sealed.len, &out),
		       -ENOTSUP, "object version 9: -ENOTSUP");
		ok(strstr(err_msg(), "version 9") && strstr(err_msg(), "version 1"),
		   "  ... %s", err_msg());
		is_int(keys_object_key_id(b, sealed.len, kid, NULL), -ENOTSUP,
		       "peek of version 9: -ENOTSUP");
		free(b);
	}
	is_int(keys_open_object(dk, KEYS_OBJ_SNAPSHOT, name, WS, sealed.data, sealed.len, &out),
	       -EBADMSG, "opened as another kind refused");
	ok(strstr(err_msg(), "head") && strstr(err_msg(), "snapshot"), "  ... %s", err_msg());
	is_int(keys_open_object(dk, KEYS_OBJ_HEAD, "snapshots/0123456789abcdee", WS, sealed.data,
				sealed.len, &out),
	       -EBADMSG, "opened under another object name refused");
	is_int(keys_open_object(dk, KEYS_OBJ_HEAD, name, WS2, sealed.data, sealed.len, &out),
	       -EBADMSG, "opened in another workspace refused");
	keys_ring_rotate(r, &dk2);
	is_int(keys_open_object(dk2, KEYS_OBJ_HEAD, name, WS, sealed.data, sealed.len, &out),
	       -EBADMSG, "opened with another data key refused");
	ok(strstr(err_msg(), keys_key_id(dk)) && strstr(err_msg(), keys_key_id(dk2)),
	   "  ... naming both keys: %s", err_msg());
	keys_ring_empty(WS, &same_id);
	randombytes_buf(raw, sizeof(raw));
	keys_ring_add(same_id, KEYS_KEY_DATA, keys_key_id(dk), raw);
	{
		const struct keys_key *fake;

		keys_ring_find(same_id, keys_key_id(dk), &fake);
		is_int(keys_open_object(fake, KEYS_OBJ_HEAD, name, WS, sealed.data, sealed.len,
					&out),
		       -EBADMSG, "opened with other bytes under the same key id refused");
	}
	{
		/* Length prefixes keep name and workspace id apart. */
		buf_reset(&sealed);
		keys_seal_object(dk, KEYS_OBJ_LEASE, "lease-a", "b", "x", 1, &sealed);
		is_int(keys_open_object(dk, KEYS_OBJ_LEASE, "lease-", "ab", sealed.data,
					sealed.len, &out),
		       -EBADMSG, "name/workspace boundary cannot shift");
	}
	is_int(out.len, 0, "no refused open wrote any output");

	is_int(keys_seal_object(id, KEYS_OBJ_HEAD, name, WS, "x", 1, &out), -EINVAL,
	       "the identity key cannot seal objects");
	is_int(keys_seal_object(dk, 0, name, WS, "x", 1, &out), -EINVAL, "kind 0 refused");
	is_int(keys_seal_object(dk, 6, name, WS, "x", 1, &out), -EINVAL, "kind 6 refused");
	is_int(keys_seal_object(dk, KEYS_OBJ_HEAD, "", WS, "x", 1, &out), -EINVAL,
	       "empty object name refused");
	is_int(keys_seal_object(dk, KEYS_OBJ_HEAD, name, "a/b", "x", 1, &out), -EINVAL,
	       "invalid workspace id refused");
	{
		char *longname = xmalloc(KEYS_OBJECT_NAME_MAX + 2);

		memset(longname, 'n', KEYS_OBJECT_NAME_MAX + 1);
		longname[KEYS_OBJECT_NAME_MAX + 1] = '\0';
		is_int(keys_seal_object(dk, KEYS_OBJ_HEAD, longname, WS, "x", 1, &out), -EINVAL,
		       "object name over %d bytes refused", KEYS_OBJECT_NAME_MAX);
		longname[KEYS_OBJECT_NAME_MAX] = '\0';
		buf_reset(&sealed);
		is_int(keys_seal_object(dk, KEYS_OBJ_HEAD, longname, WS, "x", 1, &sealed), 0,
		       "object name of %d bytes sealed", KEYS_OBJECT_NAME_MAX);
		is_int(keys_open_object(dk, KEYS_OBJ_HEAD, longname, WS, sealed.data, sealed.len,
					&out), 0, "  ... and opened");
		free(longname);
	}

	keys_ring_free(same_id);
	keys_ring_free(r);
	buf_free(&sealed);
	buf_free(&out);
}

/* ---- the spec, re-implemented with plain libsodium ---------------------- */

/* KDF as docs/format.md writes it: BLAKE2b(key, empty message, salt =
 * LE64(subkey id) || 8 zero bytes, personal = context || 8 zero bytes). */
static void spec_kdf(uint8_t *out, size_t len, const char ctx[8], const uint8_t key[32])
{
	uint8_t salt[16] = { 1 }, personal[16] = { 0 };

	memcpy(personal, ctx, 8);
	crypto_generichash_blake2b_salt_personal(out, len, NULL, 0, key, 32, salt, personal);
}

static void test_spec(void)
{
	uint8_t kek_raw[32], id_raw[32], data_raw[32], sub[32], sub2[32], key[32], bid[32];
	char k64[45], t[KEYS_KEK_TEXT_SIZE];
	struct keys_kek *kek;
	struct keys_ring *r;
	const struct keys_key *dk;
	struct buf obj = BUF_INIT, sealed = BUF_INIT;
	unsigned long long mlen;
	uint8_t out[64];
	const char *data = "spec check";

	randombytes_buf(kek_raw, 32);
	randombytes_buf(id_raw, 32);
	randombytes_buf(data_raw, 32);

	crypto_kdf_derive_from_key(sub, 32, 1, "cairnbid", id_raw);
	spec_kdf(sub2, 32, "cairnbid", id_raw);
	is_mem(sub, 32, sub2, 32, "spec: crypto_kdf is BLAKE2b with salt and personal as written");

	/* Wrapped key: AD = header, wrap key = KDF(KEK, 1, "cairnwrp"). */
	sodium_bin2base64(k64, sizeof(k64), kek_raw, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(t, sizeof(t), "cairn-kek-v1:00112233aabbccdd:%s", k64);
	keys_kek_parse(t, strlen(t), &kek);
	keys_wrap(kek, WS, KEYS_KEY_IDENTITY, "0102030405060708", id_raw, &obj);
	{
		size_t n = strlen(WS), h = 52 + n;
		const uint8_t *o = obj.data;

		ok(memcmp(o, "cairnkey", 8) == 0 && o[8] == 1 && o[9] == 1 && o[10] == 1 &&
		   o[11] == n, "spec: wrapped key magic, version, kind, algorithm, ws length");
		ok(memcmp(o + 12, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0 &&
		   memcmp(o + 20, "\x00\x11\x22\x33\xaa\xbb\xcc\xdd", 8) == 0,
		   "spec: key id and kek id as 8 raw bytes");
		spec_kdf(sub, 16, "cairnkcv", kek_raw);
		is_mem(o + 36, 16, sub, 16, "spec: check value = KDF(KEK, 1, cairnkcv)[16]");
		ok(memcmp(o + 52, WS, n) == 0, "spec: workspace id after the fixed header");
		spec_kdf(sub, 32, "cairnwrp", kek_raw);
		ok(crypto_aead_xchacha20poly1305_ietf_decrypt(key, &mlen, NULL, o + h + 24, 48,
							      o, h, o + h, sub) == 0 &&
		   mlen == 32 && memcmp(key, id_raw, 32) == 0,
		   "spec: the wrapped key opens with plain libsodium as documented");
	}

	/* Blob id and chunker key from a known identity key. */
	keys_ring_empty(WS, &r);
	keys_ring_add(r, KEYS_KEY_IDENTITY, "0102030405060708", id_raw);
	keys_ring_add(r, KEYS_KEY_DATA, "1112131415161718", data_raw);
	keys_ring_set_current(r, "1112131415161718");
	keys_ring_current(r, &dk);
	keys_blob_id(r, data, strlen(data), bid);
	spec_kdf(sub, 32, "cairnbid", id_raw);
	crypto_generichash(out, 32, (const uint8_t *)data, strlen(data), sub, 32);
	is_mem(bid, 32, out, 32, "spec: blob id = BLAKE2b-256(data, key = KDF(identity, cairnbid))");
	{
		const uint8_t *ck;

		keys_chunker_key(r, &ck);
		spec_kdf(sub, 32, "cairnchk", id_raw);
		is_mem(ck, 32, sub, 32, "spec: chunker key = KDF(identity, 1, cairnchk)");
	}

	/* Sealed blob. */
	keys_seal_blob(dk, KEYS_BLOB_TREE, bid, data, strlen(data), &sealed);
	{
		uint8_t ad[50];

		memcpy(ad, "cairnblb", 8);
		ad[8] = 1;
		ad[9] = KEYS_BLOB_TREE;
		memcpy(ad + 10, "\x11\x12\x13\x14\x15\x16\x17\x18", 8);
		memcpy(ad + 18, bid, 32);
		spec_kdf(sub, 32, "cairnsea", data_raw);
		ok(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, sealed.data + 24,
							      sealed.len - 24, ad, 50, sealed.data,
							      sub) == 0 &&
		   mlen == strlen(data) && memcmp(out, data, mlen) == 0,
		   "spec: the sealed blob opens with plain libsodium as documented");
	}

	/* Sealed object. */
	buf_reset(&sealed);
	keys_seal_object(dk, KEYS_OBJ_SNAPSHOT, "snapshots/s1", WS, data, strlen(data), &sealed);
	{
		struct buf ad = BUF_INIT;
		const uint8_t *s = sealed.data;

		ok(memcmp(s, "cairnobj", 8) == 0 && s[8] == 1 && s[9] == KEYS_OBJ_SNAPSHOT &&
		   s[10] == 1 && s[11] == 0 &&
		   memcmp(s + 12, "\x11\x12\x13\x14\x15\x16\x17\x18", 8) == 0,
		   "spec: sealed object header bytes");
		buf_add(&ad, s, 20);
		buf_add(&ad, "\x0c\x00", 2);
		buf_adds(&ad, "snapshots/s1");
		buf_addc(&ad, (char)strlen(WS));
		buf_adds(&ad, WS);
		ok(crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, s + 44,
							      sealed.len - 44, ad.data, ad.len,
							      s + 20, sub) == 0 &&
		   mlen == strlen(data) && memcmp(out, data, mlen) == 0,
		   "spec: the sealed object opens with plain libsodium as documented");
		buf_free(&ad);
	}

	buf_free(&obj);
	buf_free(&sealed);
	keys_ring_free(r);
	keys_kek_free(kek);
}

/* ---- the key set ---------------------------------------------------------- */

struct set_ctx {
	const struct keys_ring *ring;
	const char *ws;
};

static int try_set(void *vctx, const uint8_t *b, size_t len, int *clean)
{
	struct set_ctx *c = vctx;
	struct keys_set set;
	int rc = keys_set_parse(b, len, c->ws, &set);

	*clean = rc == 0 || set.live == NULL;
	if (!rc)
		rc = keys_set_verify(c->ring, b, len);
	keys_set_free(&set);
	return rc;
}

static void test_keyset(void)
{
	uint8_t id_raw[32], d1_raw[32], d2_raw[32], mk[32], mac[32];
	char live[3][KEYS_ID_SIZE] = { "2122232425262728", "1112131415161718", "" };
	struct keys_ring *r, *other;
	struct keys_set set = { .serial = 5, .created = 1700000000, .current = "2122232425262728",
				.n = 2, .live = live }, got, bad;
	struct buf obj = BUF_INIT, again = BUF_INIT;
	struct set_ctx ctx;
	const size_t notsup[] = { 8, 9 };
	size_t n = strlen(WS);
	const uint8_t *o;

	randombytes_buf(id_raw, 32);
	randombytes_buf(d1_raw, 32);
	randombytes_buf(d2_raw, 32);
	keys_ring_empty(WS, &r);
	keys_ring_add(r, KEYS_KEY_IDENTITY, "0102030405060708", id_raw);
	keys_ring_add(r, KEYS_KEY_DATA, "1112131415161718", d1_raw);
	keys_ring_add(r, KEYS_KEY_DATA, "2122232425262728", d2_raw);

	is_int(keys_set_encode(r, &set, &obj), 0, "key set: encode two live keys, the second current");
	is_int((int)obj.len, (int)(78 + n + 16), "key set: 78 + n + 8 * keys bytes");
	o = obj.data;
	ok(memcmp(o, "cairnset", 8) == 0 && o[8] == 1 && o[9] == 1 && o[10] == n && o[11] == 0,
	   "spec: key set magic, version, MAC algorithm, ws length, reserved");
	ok(o[12] == 5 && !memcmp(o + 13, "\0\0\0\0\0\0\0", 7) &&
	   o[20] == 0x00 && o[21] == 0xf1 && o[22] == 0x53 && o[23] == 0x65,
	   "spec: serial and creation time as LE64");
	ok(!memcmp(o + 28, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) &&
	   !memcmp(o + 36, "\x21\x22\x23\x24\x25\x26\x27\x28", 8) && o[44] == 2 && o[45] == 0,
	   "spec: identity key id, current key id, LE16 count");
	ok(!memcmp(o + 46, WS, n) && !memcmp(o + 46 + n, "\x11\x12\x13\x14\x15\x16\x17\x18", 8) &&
	   !memcmp(o + 54 + n, "\x21\x22\x23\x24\x25\x26\x27\x28", 8),
	   "spec: workspace id, then the live key ids in increasing order");
	spec_kdf(mk, 32, "cairnset", id_raw);
	crypto_generichash(mac, 32, o, obj.len - 32, mk, 32);
	is_mem(o + obj.len - 32, 32, mac, 32,
	       "spec: MAC = BLAKE2b-256 keyed with KDF(identity, 1, cairnset) of all before it");

	is_int(keys_set_parse(obj.data, obj.len, WS, &got), 0, "key set: parses");
	ok(got.serial == 5 && got.created == 1700000000 && !strcmp(got.identity, "0102030405060708") &&
	   !strcmp(got.current, "2122232425262728") && got.n == 2 &&
	   !strcmp(got.live[0], "1112131415161718") && !strcmp(got.live[1], "2122232425262728"),
	   "key set: every field back, the ids sorted");
	ok(keys_set_has(&got, "1112131415161718") && !keys_set_has(&got, "0102030405060708") &&
	   !keys_set_has(&got, "3132333435363738") && !keys_set_has(NULL, "1112131415161718"),
	   "key set: has the live keys, not the identity key nor another");
	is_int(keys_set_verify(r, obj.data, obj.len), 0, "key set: verifies with the identity key");
	is_int(keys_set_encode(r, &got, &again), 0, "key set: what parsed encodes");
	is_mem(again.data, again.len, obj.data, obj.len, "key set: to the same bytes (canonical)");
	keys_set_free(&got);

	ctx.ring = r;
	ctx.ws = WS;
	check_tamper("key set", obj.data, obj.len, try_set, &ctx, notsup, 2);

	is_int(keys_set_parse(obj.data, obj.len, WS2, &got), -EBADMSG, "key set: of another workspace refused");
	ok(strstr(err_msg(), "belongs to workspace " WS ", not " WS2) != NULL, "  ... %s", err_msg());
	keys_ring_empty(WS, &other);
	keys_ring_add(other, KEYS_KEY_IDENTITY, "0102030405060708", d1_raw);
	is_int(keys_set_verify(other, obj.data, obj.len), -EBADMSG,
	       "key set: another identity key with the same id does not verify it");
	keys_ring_free(other);
	buf_reset(&again);
	buf_add(&again, obj.data, obj.len);
	again.data[8] = 2;
	is_int(keys_set_parse(again.data, again.len, WS, &got), -ENOTSUP, "key set: version 2 not supported");
	ok(strstr(err_msg(), "version 2") && strstr(err_msg(), "version 1"), "  ... %s", err_msg());

	bad = set;
	bad.serial = 0;
	buf_reset(&again);
	is_int(keys_set_encode(r, &bad, &again), -EINVAL, "key set: serial 0 refused");
	bad = set;
	snprintf(bad.current, sizeof(bad.current), "%s", "3132333435363738");
	is_int(keys_set_encode(r, &bad, &again), -EINVAL, "key set: a current key not among the live ones refused");
	bad = set;
	snprintf(live[2], sizeof(live[2]), "%s", "1112131415161718");
	bad.n = 3;
	is_int(keys_set_encode(r, &bad, &again), -EINVAL, "key set: a key twice refused");
	snprintf(live[2], sizeof(live[2]), "%s", "0102030405060708");
	is_int(keys_set_encode(r, &bad, &again), -EINVAL, "key set: the identity key among the data keys refused");
	bad.n = 0;
	is_int(keys_set_encode(r, &bad, &again), -EINVAL, "key set: no live key refused");
	is_int((int)again.len, 0, "key set: nothing appended by a refused encode");

	buf_free(&obj);
	buf_free(&again);
	keys_ring_free(r);
}

int main(void)
{
	test_init_and_ids();
	test_kek_text();
	test_kek_files();
	test_wrap();
	test_ring();
	test_blobs();
	test_objects();
	test_spec();
	test_keyset();
	return tap_done();
}
