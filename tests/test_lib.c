/*
 * test_lib.c - lib/: buffers and the error context.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tap.h"

static void *other_thread(void *arg)
{
	(void)arg;
	err_set(-EIO, "message of another thread");
	return NULL;
}

int main(void)
{
	struct buf b = BUF_INIT;
	char big[5000];
	pthread_t t;
	size_t len;
	char *s;

	is_str(buf_str(&b), "", "an empty buffer reads as an empty string");
	buf_adds(&b, "hello");
	buf_addc(&b, ' ');
	buf_printf(&b, "%s %d", "world", 42);
	is_str(buf_str(&b), "hello world 42", "adds, addc and printf append");
	is_int(b.len, 14, "len counts the bytes");
	buf_reset(&b);
	is_str(buf_str(&b), "", "reset empties");
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 100; i++)
		buf_add(&b, big, sizeof(big));
	is_int(b.len, 500000, "the buffer grows past its first allocation");
	ok(b.data[b.len] == '\0', "and stays NUL-terminated");
	s = buf_detach(&b, &len);
	ok(len == 500000 && b.data == NULL && b.len == 0, "detach hands over the memory");
	free(s);
	s = xasprintf("%s-%05d", "id", 7);
	is_str(s, "id-00007", "xasprintf formats");
	free(s);

	is_int(err_set(-ENOENT, "object %s missing", "k"), -ENOENT, "err_set returns its code");
	is_str(err_msg(), "object k missing", "and records the message");
	err_prefix(-ENOENT, "store %s", "file:///x");
	is_str(err_msg(), "store file:///x: object k missing", "err_prefix puts context in front");
	pthread_create(&t, NULL, other_thread, NULL);
	pthread_join(t, NULL);
	is_str(err_msg(), "store file:///x: object k missing", "each thread has its own message");
	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_set(-EIO, "%s", big);
	ok(strlen(err_msg()) < 1024 && strstr(err_msg(), "...") != NULL,
	   "an overlong message is cut with an ellipsis");
	is_str(err_kind(-EBADMSG), "integrity check failed", "codes have names");
	return tap_done();
}
