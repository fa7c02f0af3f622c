/*
 * hex.c - lowercase hex encoding and strict decoding (see hex.h).
 */
#include "config.h"

#include <string.h>

#include "hex.h"

int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int hex_is_lower(const char *s, size_t n)
{
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < n; i++)
		if (hex_val(s[i]) < 0)
			return 0;
	return s[i] == '\0';
}

int hex_decode(const char *s, uint8_t *bin, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++)
		if (hex_val(s[i]) < 0)
			return -1;
	for (size_t i = 0; i < n; i++)
		bin[i] = (uint8_t)(hex_val(s[2 * i]) << 4 | hex_val(s[2 * i + 1]));
	return 0;
}

void hex_encode(const uint8_t *bin, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * n] = '\0';
}
