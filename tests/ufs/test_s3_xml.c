/*
 * tests/ufs/test_s3_xml.c - ufs/s3_xml.c: ListObjectsV2 pages and <Error>
 * documents decode right when well formed, and anything truncated,
 * malformed, hostile (DOCTYPE, NUL, bad references, deep nesting, huge
 * text) or random is refused with PM_EPROTO - never a crash, never a
 * read past the buffer (run under ASan in CI).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/s3_int.h"

TestSuite(s3_xml, .timeout = 30);

#define MAX_ITEMS 16

typedef struct seen {
  int count;
  char keys[MAX_ITEMS][256];
  bool prefix[MAX_ITEMS];
  uint64_t size[MAX_ITEMS];
  int64_t mtime[MAX_ITEMS];
  char etag[MAX_ITEMS][64];
  int stop_at; /* return 99 at this item (0: never) */
} seen;

static int on_item(void *arg, const pm_s3_item *item) {
  seen *s = arg;
  if (s->count < MAX_ITEMS) {
    snprintf(s->keys[s->count], sizeof s->keys[0], "%s", item->key);
    s->prefix[s->count] = item->is_prefix;
    s->size[s->count] = item->size;
    s->mtime[s->count] = item->mtime_ns;
    snprintf(s->etag[s->count], sizeof s->etag[0], "%s", item->etag);
  }
  s->count++;
  return s->stop_at && s->count == s->stop_at ? 99 : 0;
}

static const char GOOD[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bkt</Name><Prefix>dir/</Prefix><KeyCount>3</KeyCount>"
    "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
    "<IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>tok/+=</NextContinuationToken>"
    "<!-- a comment <Contents> -->"
    "<Contents><Key>dir/a &amp; b &lt;c&gt; &quot;&apos;&#65;&#x42;"
    "&#x1F600;</Key>"
    "<LastModified>2023-04-05T06:07:08.250Z</LastModified>"
    "<ETag>&quot;0123abcd&quot;</ETag><Size>42</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key><![CDATA[dir/raw<&>]]></Key><Size>0</Size>"
    "<Owner id='x\"y>z'><ID>1</ID></Owner></Contents>"
    "<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>"
    "<Empty/>"
    "</ListBucketResult>\n";

static int parse(const char *xml, size_t n, seen *s, pm_s3_list_page *page) {
  memset(s, 0, sizeof *s);
  return pm__s3_list_parse(xml, n, on_item, s, page);
}

Test(s3_xml, good_page) {
  seen s;
  pm_s3_list_page page;
  cr_assert_eq(parse(GOOD, strlen(GOOD), &s, &page), 0, "%s", pm__errmsg());
  cr_assert_eq(s.count, 3);
  cr_assert_eq(page.items, 3);
  cr_assert(page.truncated);
  cr_assert_str_eq(page.next_token, "tok/+=");
  cr_assert_str_eq(s.keys[0], "dir/a & b <c> \"'AB\xF0\x9F\x98\x80");
  cr_assert_eq(s.size[0], 42);
  cr_assert_eq(s.mtime[0], 1680674828250000000LL);
  cr_assert_str_eq(s.etag[0], "\"0123abcd\"");
  cr_assert_str_eq(s.keys[1], "dir/raw<&>");
  cr_assert_eq(s.size[1], 0);
  cr_assert_eq(s.mtime[1], 0);
  cr_assert_str_eq(s.keys[2], "dir/sub/");
  cr_assert(s.prefix[2]);
}

Test(s3_xml, last_page_and_empty_listing) {
  seen s;
  pm_s3_list_page page;
  const char *xml = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                    "</ListBucketResult>";
  cr_assert_eq(parse(xml, strlen(xml), &s, &page), 0);
  cr_assert_not(page.truncated);
  cr_assert_eq(s.count, 0);
  cr_assert_str_eq(page.next_token, "");
}

Test(s3_xml, callback_can_stop) {
  seen s;
  pm_s3_list_page page;
  memset(&s, 0, sizeof s);
  s.stop_at = 2;
  cr_assert_eq(pm__s3_list_parse(GOOD, strlen(GOOD), on_item, &s, &page), 99);
  cr_assert_eq(s.count, 2);
}

Test(s3_xml, every_truncation_is_refused) {
  seen s;
  pm_s3_list_page page;
  const char *end = strstr(GOOD, "</ListBucketResult>");
  size_t complete = (size_t)(end - GOOD) + strlen("</ListBucketResult>");
  for (size_t n = 0; n < complete; n++) {
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
    memcpy(copy, GOOD, n);
    cr_assert_eq(parse(copy, n, &s, &page), PM_EPROTO, "prefix of %zu", n);
    free(copy);
  }
}

static void refused(const char *xml, const char *why) {
  seen s;
  pm_s3_list_page page;
  size_t n = strlen(xml);
  char *copy = malloc(n + 1);
  memcpy(copy, xml, n);
  int rc = parse(copy, n, &s, &page);
  free(copy);
  cr_assert_eq(rc, PM_EPROTO, "%s: %d", why, rc);
  cr_assert_neq(pm__errmsg()[0], '\0', "%s: no detail", why);
}

Test(s3_xml, malformed_documents) {
  refused("", "empty");
  refused("   \n", "blank");
  refused("<Error><Code>x</Code></Error>", "wrong root");
  refused("<ListBucketResult><a></b></ListBucketResult>", "mismatch");
  refused("<ListBucketResult></ListBucketResult><x/>", "second root");
  refused("junk<ListBucketResult/>", "text before root");
  refused("<ListBucketResult/>junk", "text after root");
  refused("<!DOCTYPE x [<!ENTITY a 'b'>]><ListBucketResult/>", "doctype");
  refused("<ListBucketResult>&bogus;</ListBucketResult>", "entity");
  refused("<ListBucketResult>&amp</ListBucketResult>", "open entity");
  refused("<ListBucketResult>&#0;</ListBucketResult>", "NUL reference");
  refused("<ListBucketResult>&#xD800;</ListBucketResult>", "surrogate");
  refused("<ListBucketResult>&#x110000;</ListBucketResult>", "too big");
  refused("<ListBucketResult>&#;</ListBucketResult>", "empty reference");
  refused("<ListBucketResult>&#x;</ListBucketResult>", "empty hex");
  refused("<ListBucketResult>&#12a;</ListBucketResult>", "bad digit");
  refused("<ListBucketResult><Contents><Size>1</Size></Contents>"
          "</ListBucketResult>",
          "no key");
  refused("<ListBucketResult><Contents><Key>k</Key></Contents>"
          "</ListBucketResult>",
          "no size");
  refused("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size>"
          "</Contents></ListBucketResult>",
          "negative size");
  refused("<ListBucketResult><Contents><Key>k</Key><Size>1e3</Size>"
          "</Contents></ListBucketResult>",
          "float size");
  refused("<ListBucketResult><CommonPrefixes></CommonPrefixes>"
          "</ListBucketResult>",
          "prefix without Prefix");
  refused("<ListBucketResult><a <b>></a></ListBucketResult>", "lt in tag");
  refused("<ListBucketResult><></ListBucketResult>", "empty name");
  refused("<ListBucketResult><![CDATA[x</ListBucketResult>", "open CDATA");
  refused("<![CDATA[x]]><ListBucketResult/>", "CDATA outside");
  refused("<ListBucketResult><!-- x </ListBucketResult>", "open comment");
  refused("<?xml <ListBucketResult/>", "open declaration");
  refused("<ListBucketResult><a b='>", "open attribute");
}

Test(s3_xml, nul_bytes_are_refused) {
  seen s;
  pm_s3_list_page page;
  const char xml[] = "<ListBucketResult>a\0b</ListBucketResult>";
  cr_assert_eq(parse(xml, sizeof xml - 1, &s, &page), PM_EPROTO);
  const char tag[] = "<ListBucketResult\0></ListBucketResult>";
  cr_assert_eq(parse(tag, sizeof tag - 1, &s, &page), PM_EPROTO);
}

Test(s3_xml, nesting_is_capped) {
  seen s;
  pm_s3_list_page page;
  char xml[4096] = "<ListBucketResult>";
  for (int i = 0; i < PM_S3_XML_DEPTH_MAX; i++)
    strcat(xml, "<a>");
  for (int i = 0; i < PM_S3_XML_DEPTH_MAX; i++)
    strcat(xml, "</a>");
  strcat(xml, "</ListBucketResult>");
  cr_assert_eq(parse(xml, strlen(xml), &s, &page), PM_EPROTO);
  cr_assert(strstr(pm__errmsg(), "deep"));
}

Test(s3_xml, text_is_capped) {
  seen s;
  pm_s3_list_page page;
  size_t n = PM_S3_XML_TEXT_MAX + 100;
  char *xml = malloc(n + 64);
  strcpy(xml, "<ListBucketResult><Name>");
  size_t at = strlen(xml);
  memset(xml + at, 'x', n);
  strcpy(xml + at + n, "</Name></ListBucketResult>");
  cr_assert_eq(parse(xml, strlen(xml), &s, &page), PM_EPROTO);
  free(xml);
  char token[PM_S3_TOKEN_MAX + 200];
  snprintf(token, sizeof token, "<ListBucketResult><NextContinuationToken>");
  at = strlen(token);
  memset(token + at, 't', PM_S3_TOKEN_MAX);
  strcpy(token + at + PM_S3_TOKEN_MAX,
         "</NextContinuationToken></ListBucketResult>");
  cr_assert_eq(parse(token, strlen(token), &s, &page), PM_EPROTO);
}

Test(s3_xml, random_garbage_never_crashes) {
  seen s;
  pm_s3_list_page page;
  unsigned seed = 42;
  static const char alphabet[] = "<>/&;#x!-?[]\"'= abcKeySizeContents01\0";
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)rand_r(&seed) % 200;
    char *buf = malloc(n ? n : 1);
    for (size_t j = 0; j < n; j++)
      buf[j] = i % 2 ? (char)rand_r(&seed)
                     : alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
    int rc = parse(buf, n, &s, &page);
    cr_assert(rc == 0 || rc == PM_EPROTO, "rc %d", rc);
    free(buf);
  }
  /* Mutations of the good page. */
  size_t n = strlen(GOOD);
  char *buf = malloc(n);
  for (int i = 0; i < 20000; i++) {
    memcpy(buf, GOOD, n);
    for (int k = 0; k < 3; k++)
      buf[(size_t)rand_r(&seed) % n] = (char)rand_r(&seed);
    int rc = parse(buf, n, &s, &page);
    cr_assert(rc == 0 || rc == PM_EPROTO, "rc %d", rc);
  }
  free(buf);
}

Test(s3_xml, error_documents) {
  char code[64], message[128];
  const char *xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>"
                    "<Message>The bucket &quot;b&quot; does not exist"
                    "</Message><BucketName>b</BucketName></Error>";
  cr_assert_eq(pm__s3_error_parse(xml, strlen(xml), code, sizeof code, message,
                                  sizeof message),
               0);
  cr_assert_str_eq(code, "NoSuchBucket");
  cr_assert_str_eq(message, "The bucket \"b\" does not exist");
  pm__errmsg_set("earlier detail");
  cr_assert_eq(pm__s3_error_parse("<html>oops</html>", 17, code, sizeof code,
                                  message, sizeof message),
               PM_EPROTO);
  cr_assert_str_eq(code, "");
  cr_assert_str_eq(pm__errmsg(), "earlier detail");
  cr_assert_eq(
      pm__s3_error_parse(NULL, 0, code, sizeof code, message, sizeof message),
      PM_EPROTO);
  cr_assert_eq(pm__s3_error_parse("<Error><Code>", 13, code, sizeof code,
                                  message, sizeof message),
               PM_EPROTO);
}

Test(s3_xml, timestamps) {
  int64_t ns;
  cr_assert_eq(pm__s3_parse_time("1970-01-01T00:00:01.000Z", &ns), 0);
  cr_assert_eq(ns, 1000000000);
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08Z", &ns), 0);
  cr_assert_eq(ns, 1680674828000000000LL);
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08.123456789999Z", &ns), 0);
  cr_assert_eq(ns % 1000000000, 123456789);
  cr_assert_eq(pm__s3_parse_time("2023-13-05T06:07:08Z", &ns), PM_EPROTO);
  cr_assert_eq(pm__s3_parse_time("2023-04-05 06:07:08Z", &ns), PM_EPROTO);
  /* An offset (credential_process output carries "+00:00"). */
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08+01:00", &ns), 0);
  cr_assert_eq(ns, 1680674828000000000LL - 3600000000000LL);
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08-00:30", &ns), 0);
  cr_assert_eq(ns, 1680674828000000000LL + 1800000000000LL);
  /* The SSO cache of early AWS CLI v2 versions */
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08UTC", &ns), 0);
  cr_assert_eq(ns, 1680674828000000000LL);
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08UT", &ns), PM_EPROTO);
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08+0100", &ns), PM_EPROTO);
  cr_assert_eq(pm__s3_parse_time("2023-04-05T06:07:08+24:00", &ns), PM_EPROTO);
  cr_assert_eq(pm__s3_parse_time("", &ns), PM_EPROTO);
}

Test(s3_xml, the_region_an_error_names) {
  char region[32];
  const char *xml =
      "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region "
      "'us-east-1' is wrong; expecting 'eu-west-3'</Message>"
      "<Region>eu-west-3</Region><RequestId>X</RequestId></Error>";
  cr_assert_eq(pm__s3_error_region(xml, strlen(xml), region, sizeof region),
               0);
  cr_assert_str_eq(region, "eu-west-3");
  const char *none = "<Error><Code>AccessDenied</Code></Error>";
  cr_assert_eq(pm__s3_error_region(none, strlen(none), region, sizeof region),
               0);
  cr_assert_str_eq(region, "");
  const char *deep = "<Error><Details><Region>x</Region></Details></Error>";
  cr_assert_eq(pm__s3_error_region(deep, strlen(deep), region, sizeof region),
               0);
  cr_assert_str_eq(region, "", "only <Error>'s own <Region>");
  cr_assert_eq(pm__s3_error_region("<Region>x</Region>", 18, region,
                                   sizeof region),
               PM_EPROTO);
  cr_assert_eq(pm__s3_error_region(NULL, 0, region, sizeof region),
               PM_EPROTO);
}

Test(s3_xml, sts_web_identity_answers) {
  pm_s3_keys k = {0};
  int64_t exp;
  const char *xml =
      "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/"
      "doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials>"
      "<AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
      "<SessionToken>tok</SessionToken><Expiration>2026-11-27T10:00:00Z"
      "</Expiration></Credentials><Provider>x</Provider>"
      "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
  cr_assert_eq(pm__sts_parse_credentials(xml, strlen(xml), &k, &exp), 0,
               "%s", pm__errmsg());
  cr_assert_str_eq(k.access_key, "ASIA1");
  cr_assert_str_eq(k.secret_key, "s");
  cr_assert_str_eq(k.session_token, "tok");
  cr_assert_eq(exp, 1795773600ll * 1000000000ll);
  pm__s3_keys_free(&k);
  const char *assumed =
      "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/"
      "\"><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-"
      "role/r/s</Arn></AssumedRoleUser><Credentials><AccessKeyId>ASIA2"
      "</AccessKeyId><SecretAccessKey>s2</SecretAccessKey><SessionToken>t2"
      "</SessionToken><Expiration>2026-11-27T10:00:00Z</Expiration>"
      "</Credentials></AssumeRoleResult></AssumeRoleResponse>";
  cr_assert_eq(pm__sts_parse_credentials(assumed, strlen(assumed), &k, &exp),
               0, "%s", pm__errmsg());
  cr_assert_str_eq(k.access_key, "ASIA2");
  cr_assert_str_eq(k.session_token, "t2");
  pm__s3_keys_free(&k);
  /* STS's refusals: the query APIs' error shape */
  char code[64], message[128];
  const char *refusal =
      "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
      "<Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not "
      "authorized to perform sts:AssumeRole</Message></Error><RequestId>x"
      "</RequestId></ErrorResponse>";
  cr_assert_eq(pm__s3_error_parse(refusal, strlen(refusal), code, sizeof code,
                                  message, sizeof message),
               0);
  cr_assert_str_eq(code, "AccessDenied");
  cr_assert_str_eq(message, "not authorized to perform sts:AssumeRole");
  static const char *const bad[] = {
      "",
      "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>",
      "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
      "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>s"
      "</SecretAccessKey><SessionToken>t</SessionToken></Credentials>"
      "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
      "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
      "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>s"
      "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>soon"
      "</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
      "</AssumeRoleWithWebIdentityResponse>",
      "<AssumeRoleWithWebIdentityResponse><AccessKeyId>A</AccessKeyId>"
      "</AssumeRoleWithWebIdentityResponse>",
      "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
      "<Credentials><AccessKeyId>A</AccessKeyId>"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    k = (pm_s3_keys){0};
    cr_assert_eq(pm__sts_parse_credentials(bad[i], strlen(bad[i]), &k, &exp),
                 PM_EPROTO, "case %zu", i);
    cr_assert_null(k.access_key, "case %zu", i);
    cr_assert_null(k.session_token, "case %zu", i);
  }
}
