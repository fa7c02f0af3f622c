/*
 * cplane.c - the control-plane client (see cplane.h and
 * docs/control-plane.md).
 *
 * Invariants: certificate and host verification stay on; the bearer token
 * and any unwrapped key live in memory only for the request and are wiped;
 * a message names the URL and the reason, never the token, a key or a body.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "buf.h"
#include "cplane.h"
#include "err.h"

#define TOKEN_MAX 4096
#define REPLY_MAX (64 * 1024)

/* https://, or plain http:// to the loopback address only (the tests'
 * reference server): parsed, so that "http://127.0.0.1@elsewhere/" or
 * "http://127.0.0.1.example/" is not taken for loopback. */
static int url_ok(const char *u)
{
	CURLU *h;
	char *scheme = NULL, *host = NULL, *user = NULL;
	int ok;

	if (!u)
		return 0;
	h = curl_url();
	ok = h && curl_url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	     curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_NO_USER &&
	     (!strcmp(scheme, "https") ||
	      (!strcmp(scheme, "http") && (!strcmp(host, "127.0.0.1") || !strcmp(host, "[::1]"))));
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_url_cleanup(h);
	return ok;
}

int cplane_check(const struct cplane *cp)
{
	if (!cp->url || !*cp->url)
		return err_set(-EINVAL, "no control plane configured: set url in [control-plane] of cairn.conf (or CAIRN_CONTROL_PLANE)");
	if (!url_ok(cp->url))
		return err_set(-EINVAL, "control plane '%s' is not an https:// URL", cp->url);
	if (!cp->token_file || !*cp->token_file)
		return err_set(-EINVAL, "control plane %s: no token file: set token_file in [control-plane] of cairn.conf (or CAIRN_CONTROL_PLANE_TOKEN_FILE)",
			       cp->url);
	return 0;
}

/* jansson's memory is wiped when freed: an answer may hold a key. */
static void wipe_free(void *p)
{
	if (p) {
		sodium_memzero(p, malloc_usable_size(p));
		free(p);
	}
}

static void json_wiping(void)
{
	json_set_alloc_funcs(malloc, wipe_free);
}

/* The bearer token, first line of the file, in locked memory, into *out.
 * 0 or a negative code with the error set.  The file must not be
 * readable by others. */
static int read_token(const char *path, char **out)
{
	struct stat st;
	char *t;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	*out = NULL;
	if (fd < 0)
		return err_set(-errno, "control-plane token file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int rc = err_set(-errno, "control-plane token file %s: %s", path, strerror(errno));

		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(-EINVAL, "control-plane token file %s is not a regular file", path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return err_set(-EPERM, "control-plane token file %s is readable by others: chmod 600 it", path);
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		close(fd);
		return err_set(-EPERM, "control-plane token file %s belongs to uid %u, who could change it: chown it to this user or root",
			       path, (unsigned)st.st_uid);
	}
	t = sodium_malloc(TOKEN_MAX);
	n = t ? read(fd, t, TOKEN_MAX - 1) : -1;
	close(fd);
	if (n > 0) {
		t[n] = '\0';
		t[strcspn(t, "\r\n")] = '\0';
	}
	if (n <= 0 || !t[0]) {
		sodium_free(t);
		return err_set(-EINVAL, "control-plane token file %s is empty", path);
	}
	*out = t;
	return 0;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (b->len + size * n > REPLY_MAX)
		return 0;	/* a control plane's answers are small */
	buf_add(b, p, size * n);
	return size * n;
}

static int curl_code(CURLcode cc)
{
	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EACCES;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	default:
		return -EAGAIN;
	}
}

/* One request.  Fills *status (0 when there was no answer) and reply. */
static int post_once(const struct cplane *cp, const char *url, const char *auth,
		     const char *body, long *status, struct buf *reply)
{
	struct curl_slist *h = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	CURL *curl = curl_easy_init();

	*status = 0;
	if (!curl)
		return err_set(-ENOMEM, "control plane %s: cannot start libcurl", url);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, CPLANE_TIMEOUT_S);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
	if (cp->ca_file && *cp->ca_file) {
		/* the file is the only trust: not also libcurl's CA dir */
		curl_easy_setopt(curl, CURLOPT_CAINFO, cp->ca_file);
		curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	}
	cc = curl_easy_perform(curl);
	if (cc == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(curl);
	curl_slist_free_all(h);
	if (cc != CURLE_OK)
		return err_set(curl_code(cc), "control plane %s: %s", url,
			       cerr[0] ? cerr : curl_easy_strerror(cc));
	return 0;
}

/* The server's one-line reason from {"error": "..."}, or "". */
static const char *reason(json_t *j)
{
	const char *s = json_string_value(json_object_get(j, "error"));

	return s ? s : "";
}

int cplane_post(const struct cplane *cp, const char *path, json_t *body, json_t **reply)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	char *token, *text, *url, *auth = NULL;
	struct buf got = BUF_INIT;
	json_t *j = NULL;
	size_t ul;
	long status = 0;
	int rc;

	if (reply)
		*reply = NULL;
	rc = cplane_check(cp);
	if (!rc)
		rc = keys_init();
	if (rc)
		return rc;
	rc = read_token(cp->token_file, &token);
	if (rc)
		return rc;
	pthread_once(&once, json_wiping);
	ul = strlen(cp->url);
	url = xasprintf("%.*s%s", (int)(cp->url[ul - 1] == '/' ? ul - 1 : ul), cp->url, path);
	auth = sodium_malloc(TOKEN_MAX + 32);
	snprintf(auth, TOKEN_MAX + 32, "Authorization: Bearer %s", token);
	sodium_free(token);
	text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
	buf_grow(&got, REPLY_MAX + 1);	/* never reallocated: wiped once */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < CPLANE_TRIES; i++) {
		if (i)
			sleep((unsigned)i);
		sodium_memzero(got.data, got.len);
		buf_reset(&got);
		rc = post_once(cp, url, auth, text, &status, &got);
		if (rc != -EAGAIN && (rc || status < 500))
			break;
		if (!rc)
			rc = err_set(-EAGAIN, "control plane %s: HTTP %ld", url, status);
	}
	sodium_free(auth);
	free(text);	/* the request: nothing secret */
	if (!rc && got.len) {
		j = json_loadb((const char *)got.data, got.len, 0, NULL);
		if (!j && status >= 200 && status <= 299)
			rc = err_set(-EBADMSG, "control plane %s: HTTP %ld with an answer that is not JSON",
				     url, status);
	}
	if (!rc && (status < 200 || status > 299)) {
		const char *why = reason(j);

		rc = status == 401 || status == 403 ? -EACCES : status == 404 ? -ENOENT : -EBADMSG;
		err_set(rc, "control plane %s: HTTP %ld%s%s%s", url, status,
			status == 401 ? " (wrong or missing token?)" : "", *why ? ": " : "", why);
	}
	sodium_memzero(got.data, got.len);
	buf_free(&got);
	free(url);
	if (!rc && reply && j && json_is_object(j)) {
		*reply = j;
		return 0;
	}
	json_decref(j);
	return rc;
}

int cplane_unwrap(const struct cplane *cp, const char *tenant, const char *ws_id,
		  const char *key_id, const char *kek_id, const uint8_t *obj, size_t len,
		  uint8_t key_out[KEYS_KEY_LEN])
{
	size_t b64len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL), klen = 0;
	char *b64 = xmalloc(b64len);
	json_t *req, *reply = NULL;
	const char *k;
	int rc;

	sodium_memzero(key_out, KEYS_KEY_LEN);
	sodium_bin2base64(b64, b64len, obj, len, sodium_base64_VARIANT_ORIGINAL);
	req = json_pack("{s:s, s:s, s:s, s:s, s:s}", "tenant", tenant, "workspace_id", ws_id,
			"key_id", key_id, "kek_id", kek_id, "wrapped", b64);
	free(b64);
	rc = cplane_post(cp, "/v1/unwrap", req, &reply);
	json_decref(req);
	if (rc == -EBADMSG && strstr(err_msg(), "HTTP 422"))
		rc = -EACCES;	/* it has the tenant key, and it does not open this wrap */
	if (rc) {
		json_decref(reply);
		return err_prefix(rc, "cannot unwrap key %s (keys/%s.%s)", key_id, key_id, kek_id);
	}
	k = json_string_value(json_object_get(reply, "key"));
	if (!k || sodium_base642bin(key_out, KEYS_KEY_LEN, k, strlen(k), NULL, &klen, NULL,
				    sodium_base64_VARIANT_ORIGINAL) != 0 || klen != KEYS_KEY_LEN) {
		sodium_memzero(key_out, KEYS_KEY_LEN);
		rc = err_set(-EBADMSG, "cannot unwrap key %s: control plane %s answered without a key (want {\"key\": base64 of 32 bytes})",
			     key_id, cp->url);
	}
	json_decref(reply);
	return rc;
}

/* POSTs req (consumed) to path, a report of counter `name` of workspace
 * ws_id, and reads the highest value the control plane knows into
 * *highest from the answer's member `name`. */
static int counter_report(const struct cplane *cp, const char *path, const char *name,
			  const char *ws_id, json_t *req, uint64_t *highest)
{
	json_t *reply = NULL, *g;
	int rc = cplane_post(cp, path, req, &reply);

	json_decref(req);
	if (rc)
		return err_prefix(rc, "%s of workspace %s", name, ws_id);
	g = json_object_get(reply, name);
	if (!json_is_integer(g) || json_integer_value(g) < 0)
		rc = err_set(-EBADMSG, "control plane %s: the %s answer has no %s (want {\"%s\": N})",
			     cp->url, path, name, name);
	else
		*highest = (uint64_t)json_integer_value(g);
	json_decref(reply);
	return rc;
}

int cplane_generation(const struct cplane *cp, const char *tenant, const char *ws_id,
		      uint64_t generation, const char *snapshot_id, uint64_t *highest)
{
	json_t *req = json_pack("{s:s, s:s, s:I}", "tenant", tenant, "workspace_id", ws_id,
				"generation", (json_int_t)generation);

	json_object_set_new(req, "snapshot", snapshot_id && *snapshot_id ? json_string(snapshot_id) : json_null());
	if (cp->reporter)
		json_object_set_new(req, "reporter", json_string(cp->reporter));
	return counter_report(cp, "/v1/generation", "generation", ws_id, req, highest);
}

int cplane_keyset(const struct cplane *cp, const char *tenant, const char *ws_id,
		  uint64_t serial, uint64_t *highest)
{
	json_t *req = json_pack("{s:s, s:s, s:I}", "tenant", tenant, "workspace_id", ws_id,
				"keyset", (json_int_t)serial);

	return counter_report(cp, "/v1/keyset", "keyset", ws_id, req, highest);
}
