/*
 * tests/ufs/test_ufs.c - ufs/ufs.c: the backend set, dispatch by scheme,
 * the wrappers' argument checks and contracts (NULL optional method is
 * PM_ENOTSUP, reads clipped to the object), and a backend whose init fails
 * being kept out with its reason.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/ufs_int.h"
#include "ufs/ufs_priv.h"

static void clean_env(void) {
  unsetenv("AWS_PROFILE");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  setenv("HOME", "/nonexistent", 1);
}

TestSuite(ufs, .init = clean_env, .timeout = 10);

Test(ufs, open_close_with_defaults) {
  pm_ufs_set *set;
  cr_assert_eq(pm__ufs_set_open(NULL, &set), 0);
  pm_ufs *ufs = pm__ufs_for(set, "/tmp", NULL);
  cr_assert_not_null(ufs);
  cr_assert_eq(ufs->config.timeout_ms, 30000);
  cr_assert_eq(ufs->config.retry_base_ms, 100);
  pm__ufs_set_close(set);
  pm__ufs_set_close(NULL);
  cr_assert_eq(pm__ufs_set_open(NULL, NULL), PM_EINVAL);
}

Test(ufs, config_is_copied) {
  pm_ufs_config config = {
      .size = sizeof config, .timeout_ms = 1234, .retries = 2};
  pm_ufs_set *set;
  cr_assert_eq(pm__ufs_set_open(&config, &set), 0);
  config.timeout_ms = 1;
  pm_ufs *ufs = pm__ufs_for(set, "s3://bucket/key", NULL);
  cr_assert_eq(ufs->config.timeout_ms, 1234);
  cr_assert_eq(ufs->config.retries, 2);
  pm__ufs_set_close(set);
}

Test(ufs, dispatch_by_scheme) {
  pm_ufs_set *set;
  int err;
  cr_assert_eq(pm__ufs_set_open(NULL, &set), 0);
  cr_assert_str_eq(pm__ufs_for(set, "s3://b/k", &err)->methods->name, "s3");
  cr_assert_str_eq(pm__ufs_for(set, "HTTPS://h/", &err)->methods->name, "http");
  cr_assert_str_eq(pm__ufs_for(set, "http://h/", &err)->methods->name, "http");
  cr_assert_str_eq(pm__ufs_for(set, "file:///x", &err)->methods->name, "posix");
  cr_assert_str_eq(pm__ufs_for(set, "rel/path", &err)->methods->name, "posix");
  cr_assert_null(pm__ufs_for(set, "ftp://h/x", &err));
  cr_assert_eq(err, PM_EBADURI);
  cr_assert(strstr(pm__errmsg(), "ftp"));
  cr_assert_null(pm__ufs_for(set, NULL, &err));
  cr_assert_eq(err, PM_EINVAL);
  pm__ufs_set_close(set);
}

Test(ufs, wrapper_argument_checks) {
  pm_ufs_set *set;
  pm_object_stat st = {.size = 10};
  char buf[4];
  cr_assert_eq(pm__ufs_set_open(NULL, &set), 0);
  cr_assert_eq(pm__ufs_stat(set, "/tmp/x", NULL), PM_EINVAL);
  cr_assert_eq(pm__ufs_stat(NULL, "/tmp/x", &st), PM_EINVAL);
  cr_assert_eq(pm__ufs_stat(set, "", &st), PM_EBADURI);
  cr_assert_eq(pm__ufs_read(set, "/tmp/x", NULL, 0, buf, 4), PM_EINVAL);
  cr_assert_eq(pm__ufs_read(set, "/tmp/x", &st, 0, NULL, 4), PM_EINVAL);
  cr_assert_eq(pm__ufs_list(set, "/tmp", 0, NULL, NULL), PM_EINVAL);
  /* Past the end: no origin request at all, even for an unknown file. */
  cr_assert_eq(pm__ufs_read(set, "/no/such/file", &st, 10, buf, 4), 0);
  pm__ufs_set_close(set);
}

static int never(void *arg, const pm_list_entry *e) {
  (void)arg;
  (void)e;
  return 1;
}

Test(ufs, missing_optional_method_is_enotsup) {
  pm_ufs_set *set;
  cr_assert_eq(pm__ufs_set_open(NULL, &set), 0);
  cr_assert_eq(pm__ufs_list(set, "http://127.0.0.1:1/", 0, never, NULL),
               PM_ENOTSUP);
  cr_assert(strstr(pm__errmsg(), "cannot list"));
  pm__ufs_set_close(set);
}

Test(ufs, failed_backend_is_kept_out_with_its_reason) {
  setenv("AWS_PROFILE", "no-such-profile", 1);
  pm_ufs_set *set;
  pm_object_stat st;
  cr_assert_eq(pm__ufs_set_open(NULL, &set), 0);
  cr_assert_eq(pm__ufs_stat(set, "s3://bucket/key", &st), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "no-such-profile"), "%s", pm__errmsg());
  cr_assert(strstr(pm__errmsg(), "s3 backend unavailable"));
  /* The others still work. */
  cr_assert_eq(pm__ufs_stat(set, "/nonexistent-file", &st), PM_ENOENT);
  pm__ufs_set_close(set);
}

Test(ufs, secrets_go_to_https_or_to_this_host_only) {
  static const char *const ok[] = {
      "https://oauth2.googleapis.com/token", "http://127.0.0.1:8080/token",
      "http://127.1.2.3/t", "http://localhost:9/x", "http://localhost",
      "http://[::1]:80/t", "http://[::1]"};
  static const char *const refused[] = {
      "http://oauth.example/token", "http://127.evil.example/",
      "http://127.0.0.1@evil.example/", "http://localhost:1@evil.example/",
      "http://localhost.evil.example/", "http://127.0.0.1.evil/",
      "http://128.0.0.1/", "http://127.0.0.256/", "http://[::1].evil/",
      "https://", "ftp://127.0.0.1/", "http://1270.0.0.1/"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    cr_assert(pm__ufs_url_for_secrets(ok[i]), "%s", ok[i]);
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
    cr_assert_not(pm__ufs_url_for_secrets(refused[i]), "%s", refused[i]);
}
