/*
 * tests/core/test_disk_tier.c - the disk tier: the page header format (a
 * round trip, every flipped byte caught, each field check), the scan at
 * open (whole pages kept; truncated, garbage, stray, misnamed and resized
 * files removed; abandoned tmp files cleaned, live ones kept), a corrupted
 * data byte, a file removed by another process, a page evicted while it is
 * being read, and an unwritable directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>

#include "core/disk_tier_int.h"
#include "test_store_util.h"

static char *dir;
static pm_sketch *sketch;

static void setup(void) {
  dir = test_mkdtemp();
  cr_assert_eq(pm__sketch_open(64, &sketch), 0);
}

static void teardown(void) {
  if (dir) {
    char ro[600];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    umount2(ro, MNT_DETACH);
    test_rmtree(dir);
  }
  free(dir);
  dir = NULL;
  pm__sketch_close(sketch);
  sketch = NULL;
}

TestSuite(disk_tier, .init = setup, .fini = teardown, .timeout = 60);

static pm_disk_tier *tier_open(uint64_t capacity) {
  pm_store_config config = test_config(dir, capacity, 0);
  pm_disk_tier *tier;
  int rc = pm__disk_tier_open(&config, sketch, &tier);
  cr_assert_eq(rc, 0, "open: %s", pm__errmsg());
  return tier;
}

static void tier_put(pm_disk_tier *tier, uint64_t index, size_t length) {
  uint8_t buf[TEST_PAGE];
  pm_page_id id = test_page_id(index);
  test_fill(buf, length, index);
  int rc = pm__disk_tier_put(tier, &id, "s3://bucket/object", buf, length,
                             pm__sketch_clock(sketch));
  cr_assert_eq(rc, 0, "put: %s", pm__errmsg());
}

/* Read the whole page `index`; returns the read's result. */
static ssize_t tier_read(pm_disk_tier *tier, uint64_t index, uint8_t *buf) {
  pm_disk_ref ref;
  pm_page_id id = test_page_id(index);
  int rc = pm__disk_tier_acquire(tier, &id, pm__sketch_record(sketch, &id),
                                 &ref);
  if (rc < 0)
    return rc;
  ssize_t n = pm__disk_tier_read(tier, &ref, 0, buf, TEST_PAGE);
  pm__disk_tier_release(tier, &ref);
  return n;
}

static uint64_t tier_pages(pm_disk_tier *tier) {
  pm_tier_usage usage;
  uint64_t corrupt;
  pm__disk_tier_usage(tier, &usage, &corrupt);
  return usage.pages;
}

/* ---- the header format --------------------------------------------------- */

static void sample_header(pm_page_header *header, uint8_t *block) {
  uint8_t data[100];
  test_fill(data, sizeof data, 3);
  pm_page_id id = test_page_id(3);
  pm__page_header_init(header, &id, "s3://bucket/a b+c=d", data, sizeof data);
  pm__page_header_encode(header, block);
}

/* Rewrite the header checksum after tampering with a field. */
static void reseal(uint8_t *block) {
  pm_checksum sum = pm__checksum(block, PM_PAGE_SUM_OFFSET);
  memcpy(block + PM_PAGE_SUM_OFFSET, sum.bytes, 16);
}

Test(disk_tier, header_round_trip) {
  pm_page_header header, decoded;
  static uint8_t block[PM_PAGE_HEADER_SIZE], again[PM_PAGE_HEADER_SIZE];
  sample_header(&header, block);
  cr_assert_eq(pm__page_header_decode(block, sizeof block, &decoded), 0);
  cr_assert(pm__page_id_eq(&header.id, &decoded.id));
  cr_assert_eq(decoded.data_length, 100);
  cr_assert_str_eq(decoded.uri, "s3://bucket/a b+c=d");
  cr_assert_eq(memcmp(&header.data_sum, &decoded.data_sum, 16), 0);
  pm__page_header_encode(&decoded, again);
  cr_assert_eq(memcmp(block, again, sizeof block), 0);
}

Test(disk_tier, header_any_flipped_byte_is_caught) {
  pm_page_header header, decoded;
  static uint8_t block[PM_PAGE_HEADER_SIZE];
  sample_header(&header, block);
  for (size_t i = 0; i < sizeof block; i++) {
    block[i] ^= 0x20;
    cr_assert_eq(pm__page_header_decode(block, sizeof block, &decoded),
                 PM_ECORRUPT, "flip at %zu", i);
    block[i] ^= 0x20;
  }
  cr_assert_eq(pm__page_header_decode(block, 4095, &decoded), PM_ECORRUPT);
}

Test(disk_tier, header_field_checks) {
  static const struct {
    size_t offset;
    uint8_t value;
    const char *what;
  } bad[] = {
      {0, 'X', "magic"},       {8, 2, "version"},
      {13, 0x20, "header size"},  {35, 1, "data length"},
      {64, 2, "flags"},        {69, 0x10, "URI length"},
      {72 + 3, 0, "URI NUL"},  {4000, 1, "padding"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    pm_page_header header, decoded;
    static uint8_t block[PM_PAGE_HEADER_SIZE];
    sample_header(&header, block);
    block[bad[i].offset] = bad[i].value;
    reseal(block);
    cr_assert_eq(pm__page_header_decode(block, sizeof block, &decoded),
                 PM_ECORRUPT, "%s accepted", bad[i].what);
  }
}

Test(disk_tier, long_uri_is_cut_and_flagged) {
  static char uri[5000];
  memset(uri, 'u', sizeof uri - 1);
  pm_page_header header, decoded;
  static uint8_t block[PM_PAGE_HEADER_SIZE];
  pm_page_id id = test_page_id(1);
  pm__page_header_init(&header, &id, uri, "x", 1);
  cr_assert_eq(header.uri_length, PM_PAGE_URI_MAX);
  cr_assert(header.flags & PM_PAGE_URI_TRUNCATED);
  pm__page_header_encode(&header, block);
  cr_assert_eq(pm__page_header_decode(block, sizeof block, &decoded), 0);
  cr_assert_eq(strlen(decoded.uri), PM_PAGE_URI_MAX);
}

Test(disk_tier, page_names) {
  pm_page_id id = test_page_id(9), parsed;
  char path[PM_PAGE_PATH_MAX];
  pm__page_path(&id, path);
  cr_assert_eq(strlen(path), 38);
  cr_assert_eq(path[2], '/');
  cr_assert_eq(pm__page_name_parse(path + 3, &parsed), 0);
  cr_assert(pm__page_id_eq(&id, &parsed));
  cr_assert_eq(pm__page_name_parse("zz.pg", &parsed), PM_EINVAL);
  cr_assert_eq(pm__page_name_parse("0123456789ABCDEF0123456789abcdef.pg",
                                   &parsed),
               PM_EINVAL);
}

/* ---- the scan at open ---------------------------------------------------- */

Test(disk_tier, reopen_restores_pages) {
  pm_disk_tier *tier = tier_open(1 << 20);
  for (uint64_t i = 0; i < 10; i++)
    tier_put(tier, i, i == 9 ? 100 : TEST_PAGE);
  pm__disk_tier_close(tier);
  tier = tier_open(1 << 20);
  cr_assert_eq(tier_pages(tier), 10);
  uint8_t buf[TEST_PAGE];
  for (uint64_t i = 0; i < 10; i++) {
    ssize_t n = tier_read(tier, i, buf);
    cr_assert_eq(n, i == 9 ? 100 : TEST_PAGE);
    cr_assert(test_check(buf, (size_t)n, i, 0));
  }
  pm__disk_tier_close(tier);
}

static void write_file(const char *path, const void *data, size_t length) {
  FILE *f = fopen(path, "wb");
  cr_assert(f, "%s: %s", path, strerror(errno));
  cr_assert_eq(fwrite(data, 1, length, f), length);
  fclose(f);
}

static bool exists(const char *path) {
  return access(path, F_OK) == 0;
}

Test(disk_tier, scan_removes_torn_and_foreign_files) {
  pm_disk_tier *tier = tier_open(1 << 20);
  for (uint64_t i = 0; i < 5; i++)
    tier_put(tier, i, TEST_PAGE);
  pm__disk_tier_close(tier);
  char p0[512], p1[512], p2[512], p3[512], garbage[512], stray[512];
  char misnamed[512];
  test_page_path(dir, 0, p0, sizeof p0);
  test_page_path(dir, 1, p1, sizeof p1);
  test_page_path(dir, 2, p2, sizeof p2);
  test_page_path(dir, 3, p3, sizeof p3);
  cr_assert_eq(truncate(p0, PM_PAGE_HEADER_SIZE + 100), 0); /* torn */
  cr_assert_eq(truncate(p1, 1000), 0);                      /* torn header */
  FILE *f = fopen(p2, "ab");                                 /* too long */
  fputc('!', f);
  fclose(f);
  /* page 3's file copied under page 7's name: header names another page */
  test_page_path(dir, 7, misnamed, sizeof misnamed);
  char bucket[512];
  snprintf(bucket, sizeof bucket, "%.*s", (int)(strrchr(misnamed, '/') -
                                                misnamed), misnamed);
  mkdir(bucket, 0755);
  static uint8_t copy[PM_PAGE_HEADER_SIZE + TEST_PAGE];
  f = fopen(p3, "rb");
  cr_assert_eq(fread(copy, 1, sizeof copy, f), sizeof copy);
  fclose(f);
  write_file(misnamed, copy, sizeof copy);
  snprintf(garbage, sizeof garbage, "%.*s/garbage",
           (int)(strrchr(p3, '/') - p3), p3);
  write_file(garbage, "not a page", 10);
  snprintf(stray, sizeof stray, "%s/pages/stray.txt", dir);
  write_file(stray, "stray", 5);

  tier = tier_open(1 << 20);
  cr_assert_eq(tier_pages(tier), 2); /* pages 3 and 4 */
  cr_assert_not(exists(p0));
  cr_assert_not(exists(p1));
  cr_assert_not(exists(p2));
  cr_assert(exists(p3));
  cr_assert_not(exists(misnamed));
  cr_assert_not(exists(garbage));
  cr_assert_not(exists(stray));
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(tier_read(tier, 0, buf), PM_ENOENT);
  cr_assert_eq(tier_read(tier, 3, buf), TEST_PAGE);
  cr_assert(test_check(buf, TEST_PAGE, 3, 0));
  pm__disk_tier_close(tier);
}

static pid_t dead_pid(void) {
  pid_t pid = fork();
  if (pid == 0)
    _exit(0);
  waitpid(pid, NULL, 0);
  return pid;
}

Test(disk_tier, scan_cleans_abandoned_tmp_files) {
  pm__disk_tier_close(tier_open(1 << 20));
  char dead[512], live[512], foreign[512], old_foreign[512];
  snprintf(dead, sizeof dead, "%s/tmp/%ld-7.tmp", dir, (long)dead_pid());
  snprintf(live, sizeof live, "%s/tmp/%ld-999.tmp", dir, (long)getpid());
  snprintf(foreign, sizeof foreign, "%s/tmp/someone-else", dir);
  snprintf(old_foreign, sizeof old_foreign, "%s/tmp/old-file", dir);
  write_file(dead, "x", 1);
  write_file(live, "x", 1);
  write_file(foreign, "x", 1);
  write_file(old_foreign, "x", 1);
  struct timespec old[2] = {{.tv_sec = time(NULL) - 120},
                            {.tv_sec = time(NULL) - 120}};
  cr_assert_eq(utimensat(AT_FDCWD, old_foreign, old, 0), 0);
  pm__disk_tier_close(tier_open(1 << 20));
  cr_assert_not(exists(dead), "a dead writer's tmp file survived");
  cr_assert(exists(live), "a live writer's tmp file was removed");
  cr_assert(exists(foreign));
  cr_assert_not(exists(old_foreign));
}

Test(disk_tier, scan_evicts_down_to_capacity_oldest_first) {
  pm_disk_tier *tier = tier_open(1 << 20);
  for (uint64_t i = 0; i < 6; i++) {
    tier_put(tier, i, TEST_PAGE);
    char path[512];
    test_page_path(dir, i, path, sizeof path);
    struct timespec when[2] = {{.tv_sec = 1000000 + (time_t)i},
                               {.tv_sec = 1000000 + (time_t)i}};
    utimensat(AT_FDCWD, path, when, 0);
  }
  pm__disk_tier_close(tier);
  tier = tier_open(4 * TEST_PAGE);
  cr_assert_eq(tier_pages(tier), 4);
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(tier_read(tier, 0, buf), PM_ENOENT);
  cr_assert_eq(tier_read(tier, 1, buf), PM_ENOENT);
  cr_assert_eq(tier_read(tier, 5, buf), TEST_PAGE);
  pm__disk_tier_close(tier);
}

/* ---- reading ------------------------------------------------------------- */

Test(disk_tier, corrupt_data_byte_is_detected_and_removed) {
  pm_disk_tier *tier = tier_open(1 << 20);
  tier_put(tier, 1, TEST_PAGE);
  pm__disk_tier_close(tier);
  char path[512];
  test_page_path(dir, 1, path, sizeof path);
  int fd = open(path, O_WRONLY);
  cr_assert_eq(pwrite(fd, "\xff", 1, PM_PAGE_HEADER_SIZE + 1234), 1);
  close(fd);
  tier = tier_open(1 << 20);
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(tier_read(tier, 1, buf), PM_ECORRUPT);
  cr_assert(strstr(pm__errmsg(), "checksum"), "detail: %s", pm__errmsg());
  cr_assert(strstr(pm__errmsg(), path + strlen(dir)), "detail: %s",
            pm__errmsg());
  cr_assert_not(exists(path));
  cr_assert_eq(tier_read(tier, 1, buf), PM_ENOENT);
  pm_tier_usage usage;
  uint64_t corrupt;
  pm__disk_tier_usage(tier, &usage, &corrupt);
  cr_assert_eq(corrupt, 1);
  cr_assert_eq(usage.used, 0);
  pm__disk_tier_close(tier);
}

Test(disk_tier, file_removed_by_another_process_is_a_miss) {
  pm_disk_tier *tier = tier_open(1 << 20);
  tier_put(tier, 1, TEST_PAGE);
  char path[512];
  test_page_path(dir, 1, path, sizeof path);
  cr_assert_eq(unlink(path), 0);
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(tier_read(tier, 1, buf), PM_ENOENT);
  cr_assert_eq(tier_pages(tier), 0);
  pm__disk_tier_close(tier);
}

Test(disk_tier, page_removed_while_read_stays_readable) {
  pm_disk_tier *tier = tier_open(1 << 20);
  tier_put(tier, 1, TEST_PAGE);
  pm_page_id id = test_page_id(1);
  pm_disk_ref ref;
  cr_assert_eq(pm__disk_tier_acquire(tier, &id, 1, &ref), 0);
  cr_assert_eq(pm__disk_tier_remove(tier, &id), 0);
  char path[512];
  test_page_path(dir, 1, path, sizeof path);
  cr_assert_not(exists(path));
  uint8_t buf[TEST_PAGE];
  cr_assert_eq(pm__disk_tier_read(tier, &ref, 0, buf, sizeof buf), TEST_PAGE);
  cr_assert(test_check(buf, TEST_PAGE, 1, 0));
  pm__disk_tier_release(tier, &ref);
  cr_assert_eq(pm__disk_tier_remove(tier, &id), PM_ENOENT);
  pm__disk_tier_close(tier);
}

Test(disk_tier, ranges_and_verification_of_partial_reads) {
  pm_disk_tier *tier = tier_open(1 << 20);
  tier_put(tier, 2, 3000);
  pm__disk_tier_close(tier);
  tier = tier_open(1 << 20); /* unverified again */
  pm_page_id id = test_page_id(2);
  pm_disk_ref ref;
  uint8_t buf[64];
  cr_assert_eq(pm__disk_tier_acquire(tier, &id, 1, &ref), 0);
  cr_assert(ref.verify);
  cr_assert_eq(pm__disk_tier_read(tier, &ref, 100, buf, sizeof buf), 64);
  cr_assert(test_check(buf, 64, 2, 100));
  cr_assert_not(ref.verify);
  cr_assert_eq(pm__disk_tier_read(tier, &ref, 2990, buf, sizeof buf), 10);
  cr_assert(test_check(buf, 10, 2, 2990));
  cr_assert_eq(pm__disk_tier_read(tier, &ref, 5000, buf, sizeof buf), 0);
  pm__disk_tier_release(tier, &ref);
  pm__disk_tier_close(tier);
}

Test(disk_tier, descriptor_cache_stays_bounded) {
  pm_disk_tier *tier = tier_open(1 << 20);
  tier->fd_max = 8;
  for (uint64_t i = 0; i < 50; i++)
    tier_put(tier, i, 16);
  uint8_t buf[TEST_PAGE];
  for (int round = 0; round < 2; round++)
    for (uint64_t i = 0; i < 50; i++) {
      cr_assert_eq(tier_read(tier, i, buf), 16);
      cr_assert(test_check(buf, 16, i, 0));
      cr_assert_leq(tier->fd_count, 8);
    }
  cr_assert_eq(tier->fd_count, 8);
  pm__disk_tier_close(tier);
}

/* ---- unwritable directories ---------------------------------------------- */

Test(disk_tier, file_in_place_of_directory_is_eacces) {
  char path[512];
  snprintf(path, sizeof path, "%s/cache", dir);
  write_file(path, "x", 1);
  pm_store_config config = test_config(path, 1 << 20, 0);
  pm_disk_tier *tier;
  cr_assert_eq(pm__disk_tier_open(&config, sketch, &tier), PM_EACCES);
  cr_assert(strstr(pm__errmsg(), path), "detail: %s", pm__errmsg());
}

Test(disk_tier, read_only_mount_is_eacces) {
  char path[512];
  snprintf(path, sizeof path, "%s/ro", dir);
  mkdir(path, 0755);
  if (mount(path, path, NULL, MS_BIND, NULL) != 0 ||
      mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
    int e = errno;
    teardown(); /* Criterion does not run .fini for a skipped test */
    cr_skip_test("cannot make a read-only bind mount: %s", strerror(e));
  }
  pm_store_config config = test_config(path, 1 << 20, 0);
  pm_disk_tier *tier;
  int rc = pm__disk_tier_open(&config, sketch, &tier);
  umount(path);
  cr_assert_eq(rc, PM_EACCES, "rc %d: %s", rc, pm__errmsg());
  cr_assert(strstr(pm__errmsg(), path), "detail: %s", pm__errmsg());
}

/* A page dropped from the index (evicted, condemned) whose new copy was
 * written before the drop's file removal ran: the removal leaves the new
 * copy's file alone (it removed it by path before, and the index then
 * held a page without a file). */
Test(disk_tier, a_new_copy_outlives_the_removal_of_the_old_one) {
  pm_disk_tier *tier = tier_open(1 << 20);
  tier_put(tier, 7, TEST_PAGE);
  pm_page_id id = test_page_id(7);
  pm_disk_page *doomed = NULL;
  pthread_mutex_lock(&tier->lock);
  pm_disk_page *old = pm__pagemap_get(&tier->map, &id);
  cr_assert_not_null(old);
  pm__disk_drop_locked(tier, old, &doomed);
  pthread_mutex_unlock(&tier->lock);
  tier_put(tier, 7, TEST_PAGE);
  pm__disk_bury(tier, doomed);
  uint8_t buf[TEST_PAGE], want[TEST_PAGE];
  test_fill(want, TEST_PAGE, 7);
  cr_assert_eq(tier_read(tier, 7, buf), TEST_PAGE);
  cr_assert_eq(memcmp(buf, want, TEST_PAGE), 0);
  /* With no new copy, the old file goes. */
  pthread_mutex_lock(&tier->lock);
  doomed = NULL;
  pm__disk_drop_locked(tier, pm__pagemap_get(&tier->map, &id), &doomed);
  pthread_mutex_unlock(&tier->lock);
  pm__disk_bury(tier, doomed);
  char path[PM_PAGE_PATH_MAX], full[800];
  pm__page_path(&id, path);
  snprintf(full, sizeof full, "%s/pages/%s", dir, path);
  cr_assert_neq(access(full, F_OK), 0, "%s is still there", full);
  pm__disk_tier_close(tier);
}

static unsigned mode_of(const char *sub) {
  char path[800];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, sub);
  cr_assert_eq(stat(path, &st), 0, "%s", path);
  return st.st_mode & 0777u;
}

/* The subdirectories that hold page bytes are not for others (pages of
 * private datasets were world-readable: 0755 directories, 0644 files);
 * a group-writable cache directory shares them with its group, and an
 * existing cache is narrowed at open. */
Test(disk_tier, page_directories_are_private) {
  chmod(dir, 0700);
  pm__disk_tier_close(tier_open(1 << 20));
  cr_assert_eq(mode_of("pages"), 0700u);
  cr_assert_eq(mode_of("tmp"), 0700u);
  char path[800];
  snprintf(path, sizeof path, "%s/pages", dir);
  chmod(path, 0755);
  chmod(dir, 0775);
  pm__disk_tier_close(tier_open(1 << 20));
  cr_assert_eq(mode_of("pages"), 0750u & 0770u);
  chmod(dir, 0700);
}
