/*
 * chunker-bench.c - throughput of the content-defined chunker (and of the
 * blob id hash beside it, for scale) over random data in memory.
 *
 * Usage: tests/bench/chunker-bench [MiB [rounds]]   (default 512 MiB, 5 rounds)
 * Prints the best and the median of the rounds in MB/s (10^6 bytes/s), the
 * chunk count and the mean chunk size with the default parameters.  Not part
 * of `make check`: a benchmark, not a test.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "chunker.h"
#include "err.h"
#include "keys.h"
#include "tap.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	size_t len = mib << 20, chunks = 0;
	uint8_t key[KEYS_KEY_LEN];
	struct chunker *c;
	uint8_t *data;
	double *mbps;

	if (mib == 0 || rounds < 1 || rounds > 100) {
		fprintf(stderr, "usage: chunker-bench [MiB [rounds]]\n");
		return 2;
	}
	data = malloc(len);
	mbps = calloc((size_t)rounds, sizeof(*mbps));
	if (!data || !mbps) {
		fprintf(stderr, "chunker-bench: out of memory\n");
		return 1;
	}
	tap_fill_random(data, len, 42);
	tap_fill_random(key, sizeof(key), 7);
	if (chunker_new(key, NULL, &c)) {
		fprintf(stderr, "chunker-bench: %s\n", err_msg());
		return 1;
	}
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		size_t off = 0;

		chunks = 0;
		while (off < len) {
			size_t n = chunker_next(c, data + off, len - off, 1);

			off += n;
			chunks++;
		}
		mbps[r] = (double)len / (now() - t0) / 1e6;
	}
	qsort(mbps, (size_t)rounds, sizeof(*mbps), cmp_double);
	printf("chunker: %zu MiB random, %d rounds: best %.0f MB/s, median %.0f MB/s; "
	       "%zu chunks, mean %.0f KiB\n", mib, rounds, mbps[rounds - 1],
	       mbps[rounds / 2], chunks, (double)len / (double)chunks / 1024);
	/* For scale: the keyed BLAKE2b-256 every chunk also goes through. */
	for (int r = 0; r < rounds; r++) {
		uint8_t id[32];
		double t0 = now();

		for (size_t off = 0; off < len; off += 1u << 20)
			crypto_generichash(id, sizeof(id), data + off, 1u << 20, key, sizeof(key));
		mbps[r] = (double)len / (now() - t0) / 1e6;
	}
	qsort(mbps, (size_t)rounds, sizeof(*mbps), cmp_double);
	printf("blob id (keyed BLAKE2b-256, 1 MiB pieces): best %.0f MB/s, median %.0f MB/s\n",
	       mbps[rounds - 1], mbps[rounds / 2]);
	chunker_free(c);
	free(mbps);
	free(data);
	return 0;
}
