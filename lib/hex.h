/*
 * hex.h - lowercase hex, the one spelling cairn accepts for ids and names:
 * key ids, blob ids, pack, index and snapshot ids.
 */
#ifndef CAIRN_HEX_H
#define CAIRN_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of a lowercase hex digit, or -1 for any other character. */
int hex_val(char c);
/* 1 when s is exactly n lowercase hex digits followed by NUL, else 0. */
int hex_is_lower(const char *s, size_t n);
/* Decodes the first 2n characters of s into bin; 0, or -1 when one of
 * them is not a lowercase hex digit (bin is then unchanged). */
int hex_decode(const char *s, uint8_t *bin, size_t n);
/* Writes n bytes as 2n lowercase hex digits and a NUL. */
void hex_encode(const uint8_t *bin, size_t n, char *out);

#endif
