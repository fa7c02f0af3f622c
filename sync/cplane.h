/*
 * cplane.h - the client side of the control-plane HTTP API
 * (docs/control-plane.md): JSON over HTTPS with a bearer token, the
 * server's certificate verified against a CA file or the system's CAs.
 *
 * These exchanges use it: the idle and lease reports (cairnd), the key
 * unwrap (the https:// key provider: the VM sends a wrapped workspace key
 * and gets the key back, so it never holds the tenant key), and the
 * generation and key-set reports (anti-rollback for a VM with no state
 * dir).  The token and any key
 * received are wiped after use and never reach a message.
 */
#ifndef CAIRN_CPLANE_H
#define CAIRN_CPLANE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keys.h"

struct cplane {
	const char *url;	/* https://HOST[:PORT][/PREFIX]; NULL: none configured */
	const char *token_file;	/* first line is the bearer token; 0600 or stricter */
	const char *ca_file;	/* PEM CAs to verify the server; NULL: the system's */
	const char *reporter;	/* "cairnd" in its generation reports; NULL: none */
};

#define CPLANE_TIMEOUT_S 30L

/* Checks what a request needs (an https:// URL -- or http:// on a loopback
 * address --, a token file).  0 or -EINVAL naming the missing piece. */
int cplane_check(const struct cplane *cp);

/* POSTs body (a JSON object, not consumed) to url + path.  On a 2xx answer
 * returns 0 and, when reply is not NULL, the parsed JSON object of the
 * answer (NULL when the body is empty) for the caller to json_decref.
 * Errors, each one line naming the URL: -EACCES a 401/403 or a certificate
 * that does not verify, -ENOENT 404, -EBADMSG a 4xx the server explains
 * or a 2xx body that is not JSON, -EAGAIN 5xx or no answer (tried
 * CPLANE_TRIES times with a pause between), -EINVAL bad configuration. */
#define CPLANE_TRIES 3
int cplane_post(const struct cplane *cp, const char *path, json_t *body, json_t **reply);

/* The https:// key provider: asks the control plane at cp->url to unwrap
 * obj (len bytes, workspace key key_id of ws_id wrapped by tenant key
 * kek_id, tenant `tenant`) into key_out.  Returns 0, -EACCES (the control
 * plane refuses: wrong token, or it cannot open this wrap), -ENOENT (it
 * lacks tenant key kek_id), -EBADMSG (its answer is not a 32-byte key),
 * -EAGAIN.  key_out is zero on error. */
int cplane_unwrap(const struct cplane *cp, const char *tenant, const char *ws_id,
		  const char *key_id, const char *kek_id, const uint8_t *obj, size_t len,
		  uint8_t key_out[KEYS_KEY_LEN]);

/* Reports head generation `generation` (0: only asking) of workspace ws_id
 * with its snapshot id (NULL for none), and reads back the highest
 * generation the control plane has been told of into *highest.  Returns 0
 * or an error of cplane_post; -EBADMSG for an answer without a generation. */
int cplane_generation(const struct cplane *cp, const char *tenant, const char *ws_id,
		      uint64_t generation, const char *snapshot_id, uint64_t *highest);

/* Reports key set serial `serial` of workspace ws_id (0: it has none) and
 * reads back the highest serial the control plane has been told of into
 * *highest (anti-rollback of the key set, as for the head generation).
 * Returns 0 or an error of cplane_post; -EBADMSG for an answer without a
 * serial. */
int cplane_keyset(const struct cplane *cp, const char *tenant, const char *ws_id,
		  uint64_t serial, uint64_t *highest);

#endif
