/*
 * tests/ufs/test_posix.c - ufs/posix.c through the ufs wrappers, on real
 * files in a temporary directory: stat and its version, exact reads, a
 * file changed under the reader, missing files, and listings (flat,
 * recursive, symlink loops, unreadable entries, a file listed alone).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ufs/ufs_int.h"

static char dir[] = "/tmp/pm-posix-XXXXXX";
static pm_ufs_set *set;
static uint64_t counted_requests, counted_bytes;

static void count(void *arg, uint64_t requests, uint64_t bytes) {
  (void)arg;
  counted_requests += requests;
  counted_bytes += bytes;
}

static const char *path(const char *name) {
  static char buf[4][512];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static void put(const char *name, const char *data) {
  FILE *f = fopen(path(name), "w");
  cr_assert_not_null(f);
  fputs(data, f);
  fclose(f);
}

static void setup(void) {
  cr_assert_not_null(mkdtemp(dir));
  pm_ufs_config config = {.size = sizeof config, .count = count};
  cr_assert_eq(pm__ufs_set_open(&config, &set), 0);
  put("hello.txt", "hello, world");
  cr_assert_eq(mkdir(path("sub"), 0755), 0);
  cr_assert_eq(mkdir(path("sub/deeper"), 0755), 0);
  put("sub/a", "a");
  put("sub/b c", "bc");
  put("sub/deeper/d", "ddd");
}

static void teardown(void) {
  pm__ufs_set_close(set);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "chmod -R u+rwx %s; rm -rf %s", dir, dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(posix, .init = setup, .fini = teardown, .timeout = 10);

Test(posix, stat_gives_size_mtime_version) {
  pm_object_stat st;
  struct stat sys;
  cr_assert_eq(stat(path("hello.txt"), &sys), 0);
  cr_assert_eq(pm__ufs_stat(set, path("hello.txt"), &st), 0);
  cr_assert_eq(st.size, 12);
  int64_t ns = (int64_t)sys.st_mtim.tv_sec * 1000000000 + sys.st_mtim.tv_nsec;
  cr_assert_eq(st.mtime_ns, ns);
  char want[64];
  snprintf(want, sizeof want, "%lld-12", (long long)ns);
  cr_assert_str_eq(st.version, want);
  cr_assert_eq(counted_requests, 1);
  char uri[600];
  snprintf(uri, sizeof uri, "file://%s", path("hello.txt"));
  pm_object_stat again;
  cr_assert_eq(pm__ufs_stat(set, uri, &again), 0);
  cr_assert_str_eq(again.version, st.version);
}

Test(posix, reads_are_exact_and_clipped) {
  pm_object_stat st;
  char buf[64];
  cr_assert_eq(pm__ufs_stat(set, path("hello.txt"), &st), 0);
  cr_assert_eq(pm__ufs_read(set, path("hello.txt"), &st, 7, buf, 5), 5);
  cr_assert_eq(memcmp(buf, "world", 5), 0);
  cr_assert_eq(pm__ufs_read(set, path("hello.txt"), &st, 7, buf, 64), 5);
  cr_assert_eq(pm__ufs_read(set, path("hello.txt"), &st, 12, buf, 64), 0);
  cr_assert_eq(pm__ufs_read(set, path("hello.txt"), &st, 99, buf, 64), 0);
  cr_assert_eq(pm__ufs_read(set, path("hello.txt"), &st, 0, buf, 0), 0);
  cr_assert_eq(counted_bytes, 10);
}

Test(posix, changed_file_is_echanged) {
  pm_object_stat st;
  char buf[64];
  cr_assert_eq(pm__ufs_stat(set, path("hello.txt"), &st), 0);
  put("hello.txt", "HELLO, WORLD"); /* same size, new mtime */
  struct timespec times[2] = {{0, UTIME_OMIT}, {12345, 0}};
  cr_assert_eq(utimensat(AT_FDCWD, path("hello.txt"), times, 0), 0);
  cr_assert_eq(pm__ufs_read(set, path("hello.txt"), &st, 0, buf, 5),
               PM_ECHANGED);
  cr_assert(strstr(pm__errmsg(), "changed"));
  put("hello.txt", "short"); /* truncated */
  cr_assert_eq(pm__ufs_read(set, path("hello.txt"), &st, 0, buf, 5),
               PM_ECHANGED);
}

Test(posix, missing_and_not_files) {
  pm_object_stat st = {.size = 5};
  char buf[8];
  cr_assert_eq(pm__ufs_stat(set, path("nope"), &st), PM_ENOENT);
  cr_assert(strstr(pm__errmsg(), "nope"));
  cr_assert_eq(pm__ufs_read(set, path("nope"), &st, 0, buf, 5), PM_ENOENT);
  cr_assert_eq(pm__ufs_stat(set, path("sub"), &st), PM_ENOENT);
  cr_assert(strstr(pm__errmsg(), "directory"));
  cr_assert_eq(pm__ufs_stat(set, "/dev/null", &st), PM_ENOTSUP);
  cr_assert_eq(pm__ufs_stat(set, path("hello.txt/x"), &st), PM_ENOENT);
}

#define MAX_ENTRIES 16

typedef struct listing {
  int count;
  char uri[MAX_ENTRIES][600];
  int is_dir[MAX_ENTRIES];
  uint64_t size[MAX_ENTRIES];
  int stop_after;
} listing;

static int collect(void *arg, const pm_list_entry *e) {
  listing *l = arg;
  cr_assert_lt(l->count, MAX_ENTRIES);
  snprintf(l->uri[l->count], sizeof l->uri[0], "%s", e->uri);
  l->is_dir[l->count] = e->is_dir;
  l->size[l->count] = e->size;
  cr_assert(e->is_dir ? e->version == NULL : e->version != NULL);
  l->count++;
  return l->stop_after && l->count == l->stop_after ? 7 : 0;
}

static int by_uri(const void *a, const void *b) {
  return strcmp(a, b);
}

static void sorted(listing *l) {
  qsort(l->uri, (size_t)l->count, sizeof l->uri[0], by_uri);
}

static const char *file_uri(const char *name) {
  static char buf[4][600];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, 600, "file://%s", path(name));
  return p;
}

Test(posix, flat_listing) {
  listing l = {0};
  cr_assert_eq(pm__ufs_list(set, dir, 0, collect, &l), 0);
  cr_assert_eq(l.count, 2);
  sorted(&l);
  cr_assert_str_eq(l.uri[0], file_uri("hello.txt"));
  cr_assert_str_eq(l.uri[1], file_uri("sub/"));
  memset(&l, 0, sizeof l);
  cr_assert_eq(pm__ufs_list(set, path("sub/"), 0, collect, &l), 0);
  cr_assert_eq(l.count, 3);
}

Test(posix, recursive_listing_lists_files_only) {
  listing l = {0};
  cr_assert_eq(symlink(dir, path("sub/loop")), 0); /* a cycle */
  cr_assert_eq(symlink("/nonexistent", path("dangling")), 0);
  cr_assert_eq(pm__ufs_list(set, dir, PM_LIST_RECURSIVE, collect, &l), 0);
  sorted(&l);
  cr_assert_eq(l.count, 4);
  cr_assert_str_eq(l.uri[0], file_uri("hello.txt"));
  cr_assert_str_eq(l.uri[1], file_uri("sub/a"));
  cr_assert_str_eq(l.uri[2], file_uri("sub/b c"));
  cr_assert_str_eq(l.uri[3], file_uri("sub/deeper/d"));
}

Test(posix, unreadable_subdirectory_is_skipped) {
  if (geteuid() == 0)
    cr_skip_test("root reads everything");
  listing l = {0};
  cr_assert_eq(chmod(path("sub/deeper"), 0), 0);
  cr_assert_eq(pm__ufs_list(set, dir, PM_LIST_RECURSIVE, collect, &l), 0);
  cr_assert_eq(l.count, 3);
}

Test(posix, a_file_is_listed_alone) {
  listing l = {0};
  cr_assert_eq(pm__ufs_list(set, path("sub/b c"), 0, collect, &l), 0);
  cr_assert_eq(l.count, 1);
  cr_assert_str_eq(l.uri[0], file_uri("sub/b c"));
  cr_assert_eq(l.size[0], 2);
}

Test(posix, missing_directory_and_stop) {
  listing l = {0};
  cr_assert_eq(pm__ufs_list(set, path("nope/"), 0, collect, &l), PM_ENOENT);
  cr_assert_eq(pm__ufs_list(set, path("nope"), 0, collect, &l), PM_ENOENT);
  cr_assert(strstr(pm__errmsg(), "nope"));
  l.stop_after = 1;
  cr_assert_eq(pm__ufs_list(set, dir, PM_LIST_RECURSIVE, collect, &l), 7);
  cr_assert_eq(l.count, 1);
}

Test(posix, root_listing) {
  listing l = {0};
  l.stop_after = 1;
  cr_assert_eq(pm__ufs_list(set, "/", 0, collect, &l), 7);
  cr_assert_eq(strncmp(l.uri[0], "file:///", 8), 0);
  cr_assert_neq(l.uri[0][8], '/');
}
