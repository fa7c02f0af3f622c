/*
 * provider.c - key providers: where a tenant key comes from.
 *
 *   file:PATH   a tenant key file (0600 enforced by keys_kek_load_file)
 *   env:VAR     the tenant key's text form in an environment variable
 *
 * Every provider answers the same question, "the tenant key for this
 * workspace", so callers never care which one is configured.  The provider
 * spec itself is not secret and may appear in messages; what it yields is.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "keys.h"

int keys_provider_load(const char *spec, struct keys_kek **out)
{
	*out = NULL;
	if (!spec || !*spec)
		return err_set(-EINVAL, "no key given: use --key file:PATH (or CAIRN_KEY, or `key` in cairn.conf)");
	if (!strncmp(spec, "file:", 5)) {
		if (!spec[5])
			return err_set(-EINVAL, "key provider 'file:' needs a path, as in file:/etc/cairn/tenant.key");
		return keys_kek_load_file(spec + 5, out);
	}
	if (!strncmp(spec, "env:", 4)) {
		const char *text = getenv(spec + 4);

		if (!spec[4])
			return err_set(-EINVAL, "key provider 'env:' needs a variable name, as in env:CAIRN_TENANT_KEY");
		if (!text || !*text)
			return err_set(-ENOENT, "key provider %s: the variable is not set", spec);
		if (keys_kek_parse(text, strlen(text), out))
			return err_prefix(-EINVAL, "key provider %s", spec);
		return 0;
	}
	return err_set(-EINVAL, "unknown key provider '%.*s': use file:PATH or env:VAR",
		       (int)strcspn(spec, ":"), spec);
}

const char *keys_provider_file(const char *spec)
{
	return spec && !strncmp(spec, "file:", 5) && spec[5] ? spec + 5 : NULL;
}
