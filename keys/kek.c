/*
 * kek.c - tenant keys (KEKs): generation, the one-line text form shared by
 * key files, environment variables and exec output, and key files.
 *
 * Invariants: the secret bytes only ever sit in sodium_malloc'd memory or in
 * a stack buffer wiped before return; no error message quotes the text it
 * was given (only its length or the version number it names); a key file is
 * created 0600 with O_EXCL and never overwritten.
 */
#include "config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "keys.h"
#include "keys_int.h"

#define KEK_PREFIX "cairn-kek-v"
#define KEK_PREFIX_V1 "cairn-kek-v1:"
#define KEK_B64_LEN 44			/* base64 of 32 bytes, with one '=' */
#define KEK_FILE_MAX 256		/* a key file is one short line */

/* Fills a new read-only KEK from its id and key bytes; derives the wrapping
 * key and check value. */
static int kek_make(const char *id, const uint8_t key[KEYS_KEY_LEN], struct keys_kek **out)
{
	struct keys_kek *kek = sodium_malloc(sizeof(*kek));

	*out = NULL;
	if (!kek)
		return err_set(-ENOMEM, "out of locked memory for a tenant key");
	memset(kek, 0, sizeof(*kek));
	memcpy(kek->id, id, KEYS_ID_SIZE);
	keys_id_from_hex(id, kek->id_bin);
	memcpy(kek->key, key, KEYS_KEY_LEN);
	crypto_kdf_derive_from_key(kek->wrap_key, KEYS_KEY_LEN, KEYS_SUBKEY_ID,
				   KEYS_CTX_KEK_WRAP, kek->key);
	crypto_kdf_derive_from_key(kek->check, KEYS_KCV_LEN, KEYS_SUBKEY_ID,
				   KEYS_CTX_KEK_CHECK, kek->key);
	sodium_mprotect_readonly(kek);
	*out = kek;
	return 0;
}

int keys_kek_generate(struct keys_kek **out)
{
	char id[KEYS_ID_SIZE];
	uint8_t *key;
	int rc;

	*out = NULL;
	rc = keys_random_id(id);
	if (rc)
		return rc;
	key = sodium_malloc(KEYS_KEY_LEN);
	if (!key)
		return err_set(-ENOMEM, "out of locked memory for a tenant key");
	crypto_kdf_keygen(key);
	rc = kek_make(id, key, out);
	sodium_free(key);
	return rc;
}

void keys_kek_free(struct keys_kek *kek)
{
	if (kek)
		sodium_free(kek);	/* makes it writable again and wipes it */
}

const char *keys_kek_id(const struct keys_kek *kek)
{
	return kek->id;
}

/* ---- the text form ------------------------------------------------------ */

int keys_kek_parse(const char *text, size_t len, struct keys_kek **out)
{
	const size_t plen = sizeof(KEK_PREFIX_V1) - 1;
	char id[KEYS_ID_SIZE];
	char canon[KEK_B64_LEN + 1];
	uint8_t *key;
	const char *b64, *end;
	size_t i, keylen;
	int rc = keys_init();

	*out = NULL;
	if (rc)
		return rc;
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len == 0)
		return err_set(-EINVAL, "malformed tenant key: it is empty");
	for (i = 0; i < len; i++)
		if (text[i] == '\n' || text[i] == '\r' || text[i] == ' ' || text[i] == '\t')
			return err_set(-EINVAL, "malformed tenant key: it holds whitespace or a "
				       "line break (only one final newline is allowed)");
	if (len < sizeof(KEK_PREFIX) - 1 || memcmp(text, KEK_PREFIX, sizeof(KEK_PREFIX) - 1))
		return err_set(-EINVAL, "malformed tenant key: it does not start with '%s'",
			       KEK_PREFIX_V1);
	if (len < plen || memcmp(text, KEK_PREFIX_V1, plen)) {
		/* "cairn-kek-vN:" with another N is a format from another cairn. */
		unsigned long v = 0;
		size_t d = sizeof(KEK_PREFIX) - 1;

		for (i = d; i < len && i < d + 6 && text[i] >= '0' && text[i] <= '9'; i++)
			v = v * 10 + (unsigned long)(text[i] - '0');
		if (i > d && i < d + 6 && i < len && text[i] == ':' && v != 1)
			return err_set(-ENOTSUP, "tenant key format cairn-kek-v%lu is not "
				       "supported (this cairn reads cairn-kek-v1)", v);
		return err_set(-EINVAL, "malformed tenant key: it does not start with '%s'",
			       KEK_PREFIX_V1);
	}
	if (len < plen + KEYS_ID_LEN + 1 || text[plen + KEYS_ID_LEN] != ':')
		return err_set(-EINVAL, "malformed tenant key: the kek id after '%s' must be "
			       "16 lowercase hex digits followed by ':'", KEK_PREFIX_V1);
	memcpy(id, text + plen, KEYS_ID_LEN);
	id[KEYS_ID_LEN] = '\0';
	if (!keys_id_valid(id))
		return err_set(-EINVAL, "malformed tenant key: the kek id after '%s' must be "
			       "16 lowercase hex digits followed by ':'", KEK_PREFIX_V1);
	b64 = text + plen + KEYS_ID_LEN + 1;
	keylen = len - plen - KEYS_ID_LEN - 1;
	if (keylen != KEK_B64_LEN)
		return err_set(-EINVAL, "malformed tenant key %s: the key must be %d characters "
			       "of base64 (32 bytes), not %zu", id, KEK_B64_LEN, keylen);
	key = sodium_malloc(KEYS_KEY_LEN);
	if (!key)
		return err_set(-ENOMEM, "out of locked memory for a tenant key");
	/* Strict: standard alphabet with padding, nothing ignored, and only the
	 * canonical encoding (re-encoding must give the same text back). */
	rc = sodium_base642bin(key, KEYS_KEY_LEN, b64, keylen, NULL, &i, &end,
			       sodium_base64_VARIANT_ORIGINAL);
	if (rc == 0 && (i != KEYS_KEY_LEN || end != b64 + keylen))
		rc = -1;
	if (rc == 0) {
		sodium_bin2base64(canon, sizeof(canon), key, KEYS_KEY_LEN,
				  sodium_base64_VARIANT_ORIGINAL);
		if (sodium_memcmp(canon, b64, KEK_B64_LEN) != 0)
			rc = -1;
		sodium_memzero(canon, sizeof(canon));
	}
	if (rc == 0)
		rc = kek_make(id, key, out);
	else
		rc = err_set(-EINVAL, "malformed tenant key %s: the key is not the base64 "
			     "form of 32 bytes", id);
	sodium_free(key);
	return rc;
}

int keys_kek_format(const struct keys_kek *kek, char *out, size_t size)
{
	const size_t plen = sizeof(KEK_PREFIX_V1) - 1;

	if (size < KEYS_KEK_TEXT_SIZE)
		return err_set(-ERANGE, "buffer of %zu bytes too small for tenant key text "
			       "(%d needed)", size, KEYS_KEK_TEXT_SIZE);
	memcpy(out, KEK_PREFIX_V1, plen);
	memcpy(out + plen, kek->id, KEYS_ID_LEN);
	out[plen + KEYS_ID_LEN] = ':';
	sodium_bin2base64(out + plen + KEYS_ID_LEN + 1, KEK_B64_LEN + 1, kek->key,
			  KEYS_KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

/* ---- key files ---------------------------------------------------------- */

int keys_kek_load_file(const char *path, struct keys_kek **out)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, rc;

	*out = NULL;
	if (keys_init())
		return -EIO;
	/* O_NONBLOCK so that a FIFO cannot make open() hang before fstat
	 * refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return err_set(-errno, "cannot open tenant key file '%s': %s", path,
			       strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = err_set(-errno, "cannot stat tenant key file '%s': %s", path,
			     strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = err_set(-EINVAL, "tenant key file '%s' is not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = err_set(-EPERM, "permissions %04o for '%s' are too open: chmod 600 %s",
			     (unsigned)(st.st_mode & 07777), path, path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rc = err_set(-EPERM, "tenant key file '%s' belongs to uid %u, who could replace it: chown it to this user or root",
			     path, (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_size > KEK_FILE_MAX) {
		rc = err_set(-EINVAL, "tenant key file '%s' is %lld bytes: too large for a "
			     "tenant key", path, (long long)st.st_size);
		goto out;
	}
	text = sodium_malloc(KEK_FILE_MAX + 1);
	if (!text) {
		rc = err_set(-ENOMEM, "out of locked memory for a tenant key");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, KEK_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_set(-errno, "cannot read tenant key file '%s': %s", path,
				     strerror(errno));
			goto out;
		}
		if (n == 0 || (len += (size_t)n) > KEK_FILE_MAX)
			break;
	}
	if (len > KEK_FILE_MAX) {
		rc = err_set(-EINVAL, "tenant key file '%s' is too large for a tenant key",
			     path);
		goto out;
	}
	rc = keys_kek_parse(text, len, out);
	if (rc)
		err_prefix(rc, "tenant key file '%s'", path);
out:
	if (text)
		sodium_free(text);
	close(fd);
	return rc;
}

/* fsyncs the directory that holds path, so that its new name is durable. */
static int kek_sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, rc = 0;

	if (!slash)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = err_set(-errno, "cannot sync directory '%s': %s", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int keys_kek_write_file(const struct keys_kek *kek, const char *path)
{
	char *text;
	size_t len, done = 0;
	int fd, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0 && errno == EEXIST)
		return err_set(-EEXIST, "tenant key file '%s' already exists; cairn never "
			       "overwrites a key file (remove it first if you mean it)", path);
	if (fd < 0)
		return err_set(-errno, "cannot create tenant key file '%s': %s", path,
			       strerror(errno));
	text = sodium_malloc(KEYS_KEK_TEXT_SIZE + 1);
	if (!text) {
		rc = err_set(-ENOMEM, "out of locked memory for a tenant key");
		goto fail;
	}
	keys_kek_format(kek, text, KEYS_KEK_TEXT_SIZE + 1);
	len = strlen(text);
	text[len++] = '\n';
	/* The umask may have taken bits away; 0600 is what we promise. */
	if (fchmod(fd, 0600) < 0) {
		rc = err_set(-errno, "cannot chmod tenant key file '%s': %s", path,
			     strerror(errno));
		goto fail;
	}
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_set(-errno, "cannot write tenant key file '%s': %s", path,
				     strerror(errno));
			goto fail;
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0) {
		rc = err_set(-errno, "cannot sync tenant key file '%s': %s", path,
			     strerror(errno));
		goto fail;
	}
	sodium_free(text);
	text = NULL;
	if (close(fd) < 0) {
		fd = -1;
		rc = err_set(-errno, "cannot write tenant key file '%s': %s", path,
			     strerror(errno));
		goto fail;
	}
	fd = -1;
	rc = kek_sync_dir(path);
	if (rc)
		goto fail;
	return 0;
fail:
	if (text)
		sodium_free(text);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return rc;
}
