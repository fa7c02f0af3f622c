/*
 * cmd-stats.c - `cairn stats`: what a workspace holds and what it costs:
 * snapshots, packs, unique blobs, bytes stored against bytes snapshotted,
 * and the latest snapshot's size.  Read-only; no lease.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cmd-common.h"
#include "err.h"
#include "fetch.h"
#include "idset.h"

struct listing_sums {
	uint64_t data_packs, tree_packs, pack_bytes;
	uint64_t index_objects, index_bytes;
	uint64_t total_bytes;		/* every object of the workspace */
};

static int sum_object(const char *key, uint64_t size, void *arg)
{
	struct listing_sums *s = arg;
	enum keys_blob_type type;

	s->total_bytes += size;
	if (!pack_name_parse(key, &type)) {
		if (type == KEYS_BLOB_DATA)
			s->data_packs++;
		else
			s->tree_packs++;
		s->pack_bytes += size;
	} else if (index_name_valid(key)) {
		s->index_objects++;
		s->index_bytes += size;
	}
	err_clear();	/* pack_name_parse's message for names that are not packs */
	return 0;
}

struct blob_sums {
	struct idset seen;
	uint64_t blobs[3], raw[3], stored[3];	/* by enum keys_blob_type */
};

static int sum_blob(const struct index_entry *ent, void *arg)
{
	struct blob_sums *s = arg;
	unsigned t = ent->e.ref.type == KEYS_BLOB_TREE ? KEYS_BLOB_TREE : KEYS_BLOB_DATA;

	if (idset_add(&s->seen, ent->e.ref.id))
		return 0;	/* a duplicate in another pack */
	s->blobs[t]++;
	s->raw[t] += ent->e.ref.raw_length;
	s->stored[t] += ent->e.ref.length;
	return 0;
}

/* a / b, or JSON null when b is 0 */
static json_t *ratio_json(uint64_t a, uint64_t b)
{
	return b ? json_real((double)a / (double)b) : json_null();
}

static const char *ratio_text(uint64_t a, uint64_t b, char out[32])
{
	if (b)
		snprintf(out, 32, "%.2fx", (double)a / (double)b);
	else
		snprintf(out, 32, "-");
	return out;
}

static int cmd_stats_exec(int argc, char **argv)
{
	static const struct option longopts[] = {
		CMD_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_common c = { 0 };
	struct listing_sums ls = { 0 };
	struct blob_sums bs = { IDSET_INIT, { 0 }, { 0 }, { 0 } };
	struct record_snapshot *recs = NULL;
	const struct record_snapshot *latest = NULL;
	char (*ids)[RECORD_ID_SIZE] = NULL;
	struct repo_head head = { 0 };
	struct index *idx = NULL;
	struct repo *r = NULL;
	uint64_t logical = 0, unique_raw, unique_stored;
	size_t n = 0, damaged = 0;
	char b1[32], b2[32], b3[32], b4[32];
	int opt, rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, CMD_COMMON_SHORTOPTS, longopts, NULL)) != -1)
		if (!cmd_common_opt(&c, opt, optarg))
			return cmd_usage(&cmd_stats_entry);
	if (optind != argc)
		return cmd_usage(&cmd_stats_entry);
	rc = cmd_open_repo(&cmd_stats_entry, &c, &r);
	if (rc) {
		cmd_common_free(&c);
		return rc;
	}
	rc = store_list(r->store, "", sum_object, &ls);
	if (!rc)
		rc = cmd_list_snapshots(r, &recs, &ids, &n, &damaged);
	if (!rc && damaged)
		rc = err_set(-EBADMSG, "%zu snapshot record%s could not be read: run 'cairn check'",
			     damaged, damaged == 1 ? "" : "s");
	if (!rc)
		rc = repo_head_read(r, &head);
	if (!rc)
		rc = fetch_index(r, &idx);
	if (!rc)
		rc = index_foreach(idx, sum_blob, &bs);
	if (rc) {
		rc = cmd_fail(&cmd_stats_entry, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		logical += recs[i].stats.bytes;
		if (head.generation && !strcmp(ids[i], head.snapshot_id))
			latest = &recs[i];
	}
	unique_raw = bs.raw[KEYS_BLOB_DATA] + bs.raw[KEYS_BLOB_TREE];
	unique_stored = bs.stored[KEYS_BLOB_DATA] + bs.stored[KEYS_BLOB_TREE];
	if (c.json) {
		json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
				      "snapshots", (json_int_t)n,
				      "packs", (json_int_t)(ls.data_packs + ls.tree_packs),
				      "data_packs", (json_int_t)ls.data_packs,
				      "tree_packs", (json_int_t)ls.tree_packs,
				      "index_objects", (json_int_t)ls.index_objects,
				      "blobs", (json_int_t)bs.seen.n,
				      "data_blobs", (json_int_t)bs.blobs[KEYS_BLOB_DATA],
				      "tree_blobs", (json_int_t)bs.blobs[KEYS_BLOB_TREE],
				      "stored_bytes", (json_int_t)ls.pack_bytes,
				      "total_stored_bytes", (json_int_t)ls.total_bytes,
				      "raw_bytes", (json_int_t)unique_raw,
				      "data_raw_bytes", (json_int_t)bs.raw[KEYS_BLOB_DATA],
				      "sealed_bytes", (json_int_t)unique_stored,
				      "logical_bytes", (json_int_t)logical,
				      "dedup_ratio", ratio_json(logical, bs.raw[KEYS_BLOB_DATA]),
				      "compression_ratio", ratio_json(unique_raw, unique_stored));

		if (latest)
			json_object_set_new(o, "latest", json_pack("{s:s, s:I, s:I, s:I}",
					    "id", head.snapshot_id,
					    "generation", (json_int_t)latest->generation,
					    "files", (json_int_t)latest->stats.files,
					    "bytes", (json_int_t)latest->stats.bytes));
		else
			json_object_set_new(o, "latest", json_null());
		cmd_json_line(o);
		goto out;
	}
	printf("workspace        %s (tenant %s)\n", r->ws_id, r->tenant);
	printf("snapshots        %zu\n", n);
	printf("packs            %llu (%llu data, %llu tree), %s\n",
	       (unsigned long long)(ls.data_packs + ls.tree_packs),
	       (unsigned long long)ls.data_packs, (unsigned long long)ls.tree_packs,
	       cmd_bytes(ls.pack_bytes, b1));
	printf("index objects    %llu, %s\n", (unsigned long long)ls.index_objects,
	       cmd_bytes(ls.index_bytes, b1));
	printf("stored           %s in all\n", cmd_bytes(ls.total_bytes, b1));
	printf("unique blobs     %zu (%llu data, %llu tree), %s raw\n", bs.seen.n,
	       (unsigned long long)bs.blobs[KEYS_BLOB_DATA],
	       (unsigned long long)bs.blobs[KEYS_BLOB_TREE], cmd_bytes(unique_raw, b1));
	printf("deduplication    %s (%s in all snapshots, %s of unique data)\n",
	       ratio_text(logical, bs.raw[KEYS_BLOB_DATA], b1), cmd_bytes(logical, b2),
	       cmd_bytes(bs.raw[KEYS_BLOB_DATA], b3));
	printf("compression      %s (%s raw, %s sealed)\n",
	       ratio_text(unique_raw, unique_stored, b1), cmd_bytes(unique_raw, b2),
	       cmd_bytes(unique_stored, b4));
	if (latest)
		printf("latest snapshot  %.8s (generation %llu): %llu files, %s\n", head.snapshot_id,
		       (unsigned long long)latest->generation,
		       (unsigned long long)latest->stats.files, cmd_bytes(latest->stats.bytes, b1));
	else
		printf("latest snapshot  none\n");
out:
	idset_free(&bs.seen);
	index_free(idx);
	cmd_free_snapshots(recs, ids, n);
	repo_close(r);
	cmd_common_free(&c);
	return rc;
}

const struct cmd_entry cmd_stats_entry = {
	.name = "stats",
	.usage = CMD_COMMON_USAGE,
	.summary = "snapshots, packs, blobs, bytes stored, dedup and compression",
	.exec = cmd_stats_exec,
};
