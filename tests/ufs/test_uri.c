/*
 * tests/ufs/test_uri.c - ufs/uri.c: one spelling per object (POSIX paths,
 * file:// URIs, s3:// keys kept verbatim, http(s) hosts lowercased), the
 * scheme of a URI, S3 bucket/key splitting and RFC 3986 encoding.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ufs/ufs_priv.h"

TestSuite(uri, .timeout = 10);

static char out[PM_UFS_URI_MAX];

static void norm_is(const char *in, const char *want) {
  int rc = pm__uri_normalize(in, out, sizeof out);
  cr_assert_eq(rc, 0, "%s: %d %s", in, rc, pm__errmsg());
  cr_assert_str_eq(out, want, "%s", in);
}

static void norm_fails(const char *in, int want) {
  int rc = pm__uri_normalize(in, out, sizeof out);
  cr_assert_eq(rc, want, "%s: got %d", in, rc);
  cr_assert_neq(pm__errmsg()[0], '\0');
}

Test(uri, plain_paths_and_file_uris_are_one_object) {
  norm_is("/a/b", "file:///a/b");
  norm_is("file:///a/b", "file:///a/b");
  norm_is("FILE:///a/b", "file:///a/b");
  norm_is("file://localhost/a/b", "file:///a/b");
  norm_is("/", "file:///");
  norm_is("file:///", "file:///");
}

Test(uri, dots_and_slashes_resolve_lexically) {
  norm_is("/a/./b//c/../d", "file:///a/b/d");
  norm_is("/..", "file:///");
  norm_is("/a/../..", "file:///");
  norm_is("/a/b/", "file:///a/b/");
  norm_is("/a/b/.", "file:///a/b/");
  norm_is("/a/b/..", "file:///a/");
  norm_is("/a b/%20/c", "file:///a b/%20/c");
}

Test(uri, relative_paths_become_absolute) {
  char cwd[PATH_MAX], want[PATH_MAX + 64];
  cr_assert_not_null(getcwd(cwd, sizeof cwd));
  snprintf(want, sizeof want, "file://%s/x/y", strcmp(cwd, "/") ? cwd : "");
  norm_is("x/y", want);
  norm_is("./x/./y", want);
}

Test(uri, bad_file_uris) {
  norm_fails("", PM_EBADURI);
  norm_fails("file://otherhost/a", PM_EBADURI);
  norm_fails("file://", PM_EBADURI);
  cr_assert_eq(pm__uri_normalize(NULL, out, sizeof out), PM_EINVAL);
}

Test(uri, s3_keys_are_verbatim) {
  norm_is("s3://bucket/key", "s3://bucket/key");
  norm_is("S3://bucket/Key With Space+=?#%2F",
          "s3://bucket/Key With Space+=?#%2F");
  norm_is("s3://bucket//double//slash/../x", "s3://bucket//double//slash/../x");
  norm_is("s3://bucket", "s3://bucket/");
  norm_is("s3://bucket/", "s3://bucket/");
  norm_is("s3://my.bucket-1/k\xc3\xa9", "s3://my.bucket-1/k\xc3\xa9");
}

Test(uri, bad_s3_uris) {
  norm_fails("s3://", PM_EBADURI);
  norm_fails("s3:///key", PM_EBADURI);
  norm_fails("s3://ab/key", PM_EBADURI);
  norm_fails("s3://bad!bucket/key", PM_EBADURI);
  char long_bucket[80];
  memset(long_bucket, 'a', sizeof long_bucket);
  memcpy(long_bucket, "s3://", 5);
  long_bucket[sizeof long_bucket - 1] = '\0';
  norm_fails(long_bucket, PM_EBADURI);
}

Test(uri, http_scheme_and_host_lowercased) {
  norm_is("HTTP://Example.COM:8080/Path/A?Q=1#frag",
          "http://example.com:8080/Path/A?Q=1");
  norm_is("https://User:PaSS@Host.Org/x", "https://User:PaSS@host.org/x");
  norm_is("http://h", "http://h/");
  norm_is("http://h?x=1", "http://h/?x=1");
  norm_fails("http:///x", PM_EBADURI);
  norm_fails("http://h/a b", PM_EBADURI);
  norm_fails("http://h/a\nb", PM_EBADURI);
}

Test(uri, other_schemes_keep_their_rest) {
  norm_is("HF://Org/Repo/File", "hf://Org/Repo/File");
}

Test(uri, too_long_for_the_buffer) {
  char small[16];
  cr_assert_eq(pm__uri_normalize("/aaaaaaaaaaaaaaaaaaaa", small, sizeof small),
               PM_ETOOBIG);
  cr_assert_eq(
      pm__uri_normalize("s3://bucket/aaaaaaaaaaaaa", small, sizeof small),
      PM_ETOOBIG);
  cr_assert_eq(
      pm__uri_normalize("http://aaaaaaaaaaaaaaaa/", small, sizeof small),
      PM_ETOOBIG);
}

Test(uri, scheme) {
  char scheme[16];
  cr_assert_eq(pm__uri_scheme("S3://b/k", scheme, sizeof scheme), 5);
  cr_assert_str_eq(scheme, "s3");
  cr_assert_eq(pm__uri_scheme("/a:b", scheme, sizeof scheme), 0);
  cr_assert_str_eq(scheme, "");
  cr_assert_eq(pm__uri_scheme("a:b/c", scheme, sizeof scheme), 0);
  cr_assert_eq(pm__uri_scheme("1http://x", scheme, sizeof scheme), 0);
  cr_assert_eq(pm__uri_scheme("git+ssh://x", scheme, sizeof scheme), 10);
  cr_assert_str_eq(scheme, "git+ssh");
  cr_assert_eq(
      pm__uri_scheme("averyveryverylongscheme://x", scheme, sizeof scheme),
      PM_EBADURI);
}

Test(uri, s3_split) {
  char bucket[64];
  const char *key;
  cr_assert_eq(pm__s3_uri_split("s3://bkt/a/b c", bucket, sizeof bucket, &key),
               0);
  cr_assert_str_eq(bucket, "bkt");
  cr_assert_str_eq(key, "a/b c");
  cr_assert_eq(pm__s3_uri_split("s3://bkt", bucket, sizeof bucket, &key), 0);
  cr_assert_str_eq(key, "");
  cr_assert_eq(pm__s3_uri_split("http://bkt/x", bucket, sizeof bucket, &key),
               PM_EBADURI);
  cr_assert_eq(pm__s3_uri_split("s3://bkt/x", bucket, 3, &key), PM_EBADURI);
}

Test(uri, rfc3986_encoding) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  const char *key = "a b+c=d/\xc3\xa9~%?#_.-";
  cr_assert_eq(pm__uri_encode(&sb, key, strlen(key), true), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), "a%20b%2Bc%3Dd/%C3%A9~%25%3F%23_.-");
  pm__sbuf_reset(&sb);
  pm__uri_encode(&sb, "a/b", 3, false);
  cr_assert_str_eq(pm__sbuf_str(&sb), "a%2Fb");
  pm__sbuf_reset(&sb);
  pm__uri_encode(&sb, "\0\x7f\xff", 3, false);
  cr_assert_str_eq(pm__sbuf_str(&sb), "%00%7F%FF");
  pm__sbuf_free(&sb);
}
