/*
 * tests/ufs/test_sbuf.c - ufs/sbuf.c: the capped growable string keeps its
 * cap, remembers its first failure, and hands its string over.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/ufs_priv.h"

TestSuite(sbuf, .timeout = 10);

Test(sbuf, empty_is_an_empty_string) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), "");
  char *s = pm__sbuf_take(&sb);
  cr_assert_str_eq(s, "");
  free(s);
  pm__sbuf_free(&sb);
  pm__sbuf_free(NULL);
}

Test(sbuf, grows_and_formats) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(pm__sbuf_printf(&sb, "%d,", i), 0);
  cr_assert_eq(strncmp(pm__sbuf_str(&sb), "0,1,2,", 6), 0);
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  size_t before = sb.len;
  cr_assert_eq(pm__sbuf_printf(&sb, "[%s]", big), 0);
  cr_assert_eq(sb.len, before + sizeof big + 1);
  cr_assert_eq(sb.data[sb.len], '\0');
  pm__sbuf_free(&sb);
}

Test(sbuf, cap_is_kept_and_failure_is_sticky) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 8);
  cr_assert_eq(pm__sbuf_puts(&sb, "12345678"), 0);
  cr_assert_eq(pm__sbuf_puts(&sb, "9"), PM_ETOOBIG);
  cr_assert_eq(pm__sbuf_puts(&sb, ""), PM_ETOOBIG);
  cr_assert_eq(sb.len, 8);
  cr_assert_null(pm__sbuf_take(&sb));
  pm__sbuf_reset(&sb);
  cr_assert_eq(sb.err, 0);
  cr_assert_eq(pm__sbuf_printf(&sb, "%s", "123456789"), PM_ETOOBIG);
  pm__sbuf_free(&sb);
}

Test(sbuf, binary_bytes) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__sbuf_append(&sb, "a\0b", 3), 0);
  cr_assert_eq(sb.len, 3);
  cr_assert_eq(memcmp(sb.data, "a\0b", 4), 0);
  pm__sbuf_free(&sb);
}
