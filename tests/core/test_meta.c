/* Tests for core/meta.c: TTL, persistence across reopen, invalidation by
 * prefix, and unreadable files ignored. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meta_files.h"
#include "core/meta.h"

TestSuite(meta, .timeout = 30);

static char dir[256];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/pm-test-meta-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static pm_object_stat sample(uint64_t size, const char *version) {
  pm_object_stat st = {.size = size, .mtime_ns = 123456789};
  snprintf(st.version, sizeof st.version, "%s", version);
  return st;
}

/* Store n entries named by fmt and i, each of size i, as from the origin. */
static void store_numbered(pm_meta *m, const char *fmt, int n) {
  char uri[64];
  pm_object_stat st = sample(1, "x");
  for (int i = 0; i < n; i++) {
    snprintf(uri, sizeof uri, fmt, i);
    st.size = (uint64_t)i;
    pm__meta_store(m, uri, &st);
  }
}

Test(meta, fresh_then_stale) {
  make_dir();
  pm_meta *m;
  cr_assert_eq(pm__meta_open(dir, 400, &m), 0);
  pm_object_stat st = sample(42, "etag-1"), got;
  bool fresh;
  cr_assert_eq(pm__meta_lookup(m, "s3://b/k", &got, &fresh), PM_ENOENT);
  pm__meta_store(m, "s3://b/k", &st);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/k", &got, &fresh), 0);
  cr_assert(fresh);
  cr_assert_eq(got.size, 42);
  cr_assert_str_eq(got.version, "etag-1");
  usleep(500 * 1000);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/k", &got, &fresh), 0);
  cr_assert_not(fresh, "past the TTL an entry is stale, but kept");
  pm__meta_close(m);
}

Test(meta, survives_reopen_and_forgets_by_prefix) {
  make_dir();
  pm_meta *m;
  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  pm_object_stat st = sample(7, "v");
  pm__meta_store(m, "s3://b/a/1", &st);
  pm__meta_store(m, "s3://b/a/2", &st);
  pm__meta_store(m, "s3://b/c/3", &st);
  pm__meta_close(m);

  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  pm_object_stat got;
  bool fresh;
  cr_assert_eq(pm__meta_lookup(m, "s3://b/a/2", &got, &fresh), 0);
  cr_assert(fresh);
  cr_assert_eq(got.size, 7);
  pm__meta_forget_prefix(m, "s3://b/a/");
  cr_assert_eq(pm__meta_lookup(m, "s3://b/a/1", &got, &fresh), PM_ENOENT);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/a/2", &got, &fresh), PM_ENOENT);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/c/3", &got, &fresh), 0);
  pm__meta_close(m);

  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/a/1", &got, &fresh), PM_ENOENT,
               "forgotten entries stay forgotten on disk");
  pm__meta_close(m);
}

Test(meta, many_entries_and_garbage_files) {
  make_dir();
  pm_meta *m;
  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  char uri[64];
  store_numbered(m, "mem://%d", 5000);
  pm_object_stat got;
  bool fresh;
  for (int i = 0; i < 5000; i += 97) {
    snprintf(uri, sizeof uri, "mem://%d", i);
    cr_assert_eq(pm__meta_lookup(m, uri, &got, &fresh), 0);
    cr_assert_eq(got.size, (uint64_t)i);
  }
  pm__meta_close(m);
  /* Overwrite every persisted file with garbage: lookups miss, no crash. */
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "find %s/meta -name '*.m' -exec sh -c 'printf garbage > \"$1\"' _ "
           "{} \\;", dir);
  cr_assert_eq(system(cmd), 0);
  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  cr_assert_eq(pm__meta_lookup(m, "mem://5", &got, &fresh), PM_ENOENT);
  pm__meta_close(m);
}

static size_t meta_files(void) {
  return meta_files_in(dir);
}

/* A listing's entries cost no file each; the ones a stat uses are kept. */
Test(meta, listed_entries_go_to_disk_only_once_used) {
  make_dir();
  pm_meta *m;
  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  char uri[64];
  pm_object_stat st = sample(7, "listed"), got;
  bool fresh;
  for (int i = 0; i < 1000; i++) {
    snprintf(uri, sizeof uri, "s3://b/ds/%04d", i);
    pm__meta_store_listed(m, uri, &st);
  }
  cr_assert_eq(meta_files(), 0, "a listing wrote files");
  cr_assert_eq(pm__meta_lookup(m, "s3://b/ds/0003", &got, &fresh), 0);
  cr_assert(fresh && got.size == 7);
  cr_assert_eq(meta_files(), 0, "a plain lookup keeps nothing");
  cr_assert_eq(pm__meta_lookup_keep(m, "s3://b/ds/0003", &got, &fresh), 0);
  cr_assert_eq(pm__meta_lookup_keep(m, "s3://b/ds/0003", &got, &fresh), 0);
  cr_assert_eq(meta_files(), 1);
  /* The same answer listed again leaves the file as it is; a new one does
   * not claim the old file says it. */
  pm__meta_store_listed(m, "s3://b/ds/0003", &st);
  pm_object_stat changed = sample(8, "changed");
  pm__meta_store_listed(m, "s3://b/ds/0003", &changed);
  cr_assert_eq(pm__meta_lookup_keep(m, "s3://b/ds/0003", &got, &fresh), 0);
  /* A node told that a reader uses an entry keeps it, if it says the same
   * as the reader's. */
  pm__meta_keep(m, "s3://b/ds/0005", &changed);
  cr_assert_eq(meta_files(), 1, "a stat other than the entry's is not kept");
  pm__meta_keep(m, "s3://b/ds/0005", &st);
  cr_assert_eq(meta_files(), 2);
  pm__meta_close(m);
  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/ds/0005", &got, &fresh), 0);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/ds/0003", &got, &fresh), 0);
  cr_assert_eq(got.size, 8, "the used entry survives a reopen as it was");
  cr_assert_str_eq(got.version, "changed");
  cr_assert_eq(pm__meta_lookup(m, "s3://b/ds/0004", &got, &fresh),
               PM_ENOENT);
  pm__meta_close(m);
}

/* Listed again more than half a TTL after its file was written, an entry's
 * file is rewritten when a read next uses it: after a reopen it is as fresh
 * as the last listing said, not stale from the first one. */
Test(meta, a_relisted_entry_is_fresh_after_a_reopen) {
  make_dir();
  pm_meta *m;
  cr_assert_eq(pm__meta_open(dir, 4000, &m), 0);
  pm_object_stat st = sample(9, "same"), got;
  bool fresh;
  pm__meta_store(m, "s3://b/relisted", &st); /* t0, on disk */
  usleep(2200 * 1000);                       /* > TTL / 2 */
  pm__meta_store_listed(m, "s3://b/relisted", &st); /* t1 >= t0 + 2.2 s */
  cr_assert_eq(pm__meta_lookup_keep(m, "s3://b/relisted", &got, &fresh), 0);
  pm__meta_close(m);
  usleep(2000 * 1000); /* t0 + 4.2 s: past t0's TTL, not t1's */
  cr_assert_eq(pm__meta_open(dir, 4000, &m), 0);
  cr_assert_eq(pm__meta_lookup(m, "s3://b/relisted", &got, &fresh), 0);
  cr_assert(fresh, "the file kept the first fetch time");
  cr_assert_eq(got.size, 9);
  pm__meta_close(m);
}

/* Memory holds a bounded number of entries; what is on disk comes back. */
Test(meta, memory_is_bounded) {
  make_dir();
  pm_meta *m;
  cr_assert_eq(pm__meta_open(dir, 60000, &m), 0);
  pm__meta_set_limit(m, 100);
  char uri[64];
  pm_object_stat st = sample(1, "v");
  store_numbered(m, "s3://b/kept/%d", 50);
  for (int i = 0; i < 5000; i++) {
    snprintf(uri, sizeof uri, "s3://b/listed/%d", i);
    pm__meta_store_listed(m, uri, &st);
    cr_assert_leq(pm__meta_count(m), 100);
  }
  pm_object_stat got;
  bool fresh;
  cr_assert_eq(pm__meta_lookup(m, "s3://b/listed/4999", &got, &fresh), 0,
               "the newest entry is in memory");
  for (int i = 0; i < 50; i++) {
    snprintf(uri, sizeof uri, "s3://b/kept/%d", i);
    cr_assert_eq(pm__meta_lookup(m, uri, &got, &fresh), 0, "%s", uri);
    cr_assert_eq(got.size, (uint64_t)i);
  }
  cr_assert_leq(pm__meta_count(m), 100);
  pm__meta_close(m);
}

#include "core/mesh.h"

/* The answer to a metadata request from another peer is network input. */
Test(meta, metadata_answers_round_trip_and_refuse_garbage) {
  pm_object_stat st = sample(123456789, "0123abcd-9"), got;
  char text[512];
  ssize_t n = pm__meta_encode(&st, text, sizeof text);
  cr_assert_gt(n, 0);
  cr_assert_eq(pm__meta_decode(text, (size_t)n, &got), 0);
  cr_assert_eq(got.size, st.size);
  cr_assert_eq(got.mtime_ns, st.mtime_ns);
  cr_assert_str_eq(got.version, st.version);
  /* The HTTP origin's version of an object without an ETag has spaces:
   * the version is the rest of the answer. */
  st = sample(1234, "lm:1700000000 size:1234");
  n = pm__meta_encode(&st, text, sizeof text);
  cr_assert_eq(pm__meta_decode(text, (size_t)n, &got), 0);
  cr_assert_str_eq(got.version, "lm:1700000000 size:1234");
  const char *bad[] = {"", "garbage", "12", "12 34", "12 34 ", "-1 2 v x",
                       "1 2 a\nb", "1 2 a\tb", "1 2 \x7f",
                       "99999999999999999999999 1 v"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_neq(pm__meta_decode(bad[i], strlen(bad[i]), &got), 0, "%s",
                  bad[i]);
  /* a NUL inside the version */
  cr_assert_neq(pm__meta_decode("1 2 ab\0cd", 10, &got), 0);
  char huge[400];
  memset(huge, 'v', sizeof huge);
  memcpy(huge, "1 2 ", 4);
  cr_assert_neq(pm__meta_decode(huge, sizeof huge, &got), 0);
}

Test(meta, doubts_cover_a_prefix_for_one_ttl) {
  pm_meta *m;
  cr_assert_eq(pm__meta_open(NULL, 200, &m), 0);
  cr_assert_not(pm__meta_doubted(m, "s3://b/set/a"));
  pm__meta_doubt(m, "s3://b/set/");
  pm__meta_retract(m, "s3://b/other");
  cr_assert(pm__meta_doubted(m, "s3://b/set/a"));
  cr_assert(pm__meta_doubted(m, "s3://b/other"));
  cr_assert_not(pm__meta_doubted(m, "s3://b/se"));
  cr_assert_not(pm__meta_doubted(m, "s3://c/set/a"));
  usleep(250000);
  cr_assert_not(pm__meta_doubted(m, "s3://b/set/a"), "expired with the TTL");
  cr_assert_not(pm__meta_doubted(m, "s3://b/other"));
  pm__meta_close(m);
}

Test(meta, a_retracted_entry_is_forgotten) {
  pm_meta *m;
  cr_assert_eq(pm__meta_open(NULL, 60000, &m), 0);
  pm_object_stat st = sample(7, "v1"), got;
  bool fresh;
  pm__meta_store(m, "s3://b/k", &st);
  pm__meta_retract(m, "s3://b/k");
  cr_assert_eq(pm__meta_lookup(m, "s3://b/k", &got, &fresh), PM_ENOENT);
  cr_assert(pm__meta_doubted(m, "s3://b/k"));
  pm__meta_close(m);
}

Test(meta, too_many_doubts_doubt_everything) {
  pm_meta *m;
  cr_assert_eq(pm__meta_open(NULL, 200, &m), 0);
  char uri[64];
  for (int i = 0; i <= PM_META_DOUBTS_MAX; i++) {
    snprintf(uri, sizeof uri, "s3://b/gone-%d", i);
    pm__meta_doubt(m, uri);
  }
  cr_assert(pm__meta_doubted(m, "s3://b/gone-0"));
  cr_assert(pm__meta_doubted(m, "gs://never/named"),
            "past the bound, nothing may be answered from an old entry");
  usleep(250000);
  cr_assert_not(pm__meta_doubted(m, "gs://never/named"));
  pm__meta_doubt(m, "s3://b/again");
  cr_assert(pm__meta_doubted(m, "s3://b/again"));
  cr_assert_not(pm__meta_doubted(m, "s3://b/gone-1"));
  pm__meta_close(m);
}

Test(meta, a_ttl_of_zero_keeps_no_doubt) {
  pm_meta *m;
  cr_assert_eq(pm__meta_open(NULL, 0, &m), 0);
  pm__meta_doubt(m, "s3://b/");
  cr_assert_not(pm__meta_doubted(m, "s3://b/k"));
  pm__meta_close(m);
}
