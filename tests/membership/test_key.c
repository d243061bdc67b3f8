/*
 * tests/membership/test_key.c - the cluster key file reader: raw and hex
 * keys, files that group or others could read (refused, with the fix in
 * the message), wrong lengths, bad hex, missing files and directories.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_int.h"
#include "membership/swim_int.h"

static char dir[64];

static void make_dir(void) {
  strcpy(dir, "/tmp/pm_key_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(key, .init = make_dir, .fini = remove_dir, .timeout = 30);

static const char *write_file(const char *name, const void *data, size_t n,
                              mode_t mode) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, data, n), (ssize_t)n);
  close(fd);
  cr_assert_eq(chmod(path, mode), 0);
  return path;
}

static const char hex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

Test(key, raw_bytes) {
  uint8_t raw[32];
  for (int i = 0; i < 32; i++)
    raw[i] = (uint8_t)(0xff - i);
  uint8_t *key = NULL;
  cr_assert_eq(pm__cluster_key_read(write_file("k", raw, 32, 0600), &key), 0);
  cr_assert_eq(memcmp(key, raw, 32), 0);
  pm__cluster_key_free(key);
}

Test(key, hex_with_a_newline) {
  char text[80];
  snprintf(text, sizeof text, "  %s\n", hex);
  uint8_t *key = NULL;
  const char *path = write_file("k", text, strlen(text), 0400);
  cr_assert_eq(pm__cluster_key_read(path, &key), 0);
  for (int i = 0; i < 32; i++)
    cr_assert_eq(key[i], i);
  pm__cluster_key_free(key);
}

Test(key, group_or_world_access_is_refused) {
  mode_t modes[] = {0644, 0640, 0604, 0620, 0660};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    uint8_t *key = NULL;
    const char *path = write_file("k", hex, 64, modes[i]);
    cr_assert_eq(pm__cluster_key_read(path, &key), PM_EACCES, "mode %o",
                 modes[i]);
    cr_assert_null(key);
    cr_assert_not_null(strstr(pm__errmsg(), "chmod 600"), "%s", pm__errmsg());
  }
}

Test(key, wrong_lengths_and_bad_hex) {
  uint8_t *key = NULL;
  uint8_t raw[33] = {0};
  cr_assert_eq(pm__cluster_key_read(write_file("k", raw, 31, 0600), &key),
               PM_ECONFIG);
  cr_assert_eq(pm__cluster_key_read(write_file("k", raw, 33, 0600), &key),
               PM_ECONFIG);
  cr_assert_eq(pm__cluster_key_read(write_file("k", hex, 63, 0600), &key),
               PM_ECONFIG);
  char bad[65];
  memcpy(bad, hex, 65);
  bad[10] = 'g';
  cr_assert_eq(pm__cluster_key_read(write_file("k", bad, 64, 0600), &key),
               PM_ECONFIG);
  char big[1000];
  memset(big, 'a', sizeof big);
  cr_assert_eq(pm__cluster_key_read(write_file("k", big, 1000, 0600), &key),
               PM_ECONFIG);
  cr_assert_null(key);
}

Test(key, missing_file_and_directory) {
  uint8_t *key = NULL;
  char path[128];
  snprintf(path, sizeof path, "%s/none", dir);
  cr_assert_eq(pm__cluster_key_read(path, &key), PM_ENOENT);
  cr_assert_not_null(strstr(pm__errmsg(), path));
  chmod(dir, 0700);
  cr_assert_eq(pm__cluster_key_read(dir, &key), PM_ECONFIG);
  cr_assert_eq(pm__cluster_key_read(NULL, &key), PM_EINVAL);
}

Test(key, parse_hex_from_memory) {
  uint8_t out[32];
  cr_assert_eq(pm__cluster_key_parse_hex(hex, 64, out), 0);
  cr_assert_eq(out[31], 0x1f);
  cr_assert_eq(pm__cluster_key_parse_hex(hex, 62, out), PM_ECONFIG);
  cr_assert_eq(pm__cluster_key_parse_hex("\t\n", 2, out), PM_ECONFIG);
}
