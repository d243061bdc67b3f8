/*
 * tests/ufs/test_azure.c - the pieces of the Azure backend: Shared Key
 * canonicalisation and signatures (against the examples of the Azure
 * Storage REST documentation and signatures computed by the Azure SDK for
 * Python's SharedKeyCredentialPolicy for the same requests), connection
 * strings and the environment, az:// and abfs:// URIs and the URLs they
 * become, and the List Blobs decoder on good and hostile input. Each test
 * runs in its own process (criterion forks), so the environment is free.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/azure_int.h"

#define DEV_KEY                                                                \
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"            \
  "K1SZFPTOtr/KBHBeksoGMGw=="

static void clear_env(void) {
  static const char *const vars[] = {"AZURE_STORAGE_CONNECTION_STRING",
                                     "AZURE_STORAGE_ACCOUNT",
                                     "AZURE_STORAGE_KEY",
                                     "AZURE_STORAGE_SAS_TOKEN",
                                     "AZURE_STORAGE_BLOB_ENDPOINT",
                                     "PAGEMESH_AZURE_MAX_RESULTS",
                                     "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                                     "AZURE_CLIENT_ID",
                                     "AZURE_TENANT_ID",
                                     "AZURE_CLIENT_SECRET",
                                     "AZURE_FEDERATED_TOKEN_FILE",
                                     "AZURE_AUTHORITY_HOST",
                                     "AZURE_CLIENT_CERTIFICATE_PATH",
                                     "AZURE_CLIENT_CERTIFICATE_PASSWORD"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv(vars[i]);
  /* This machine may be an Azure VM: no managed identity here. */
  setenv("PAGEMESH_AZURE_MANAGED_IDENTITY", "off", 1);
}

TestSuite(azure, .init = clear_env, .timeout = 30);

/* ---- Shared Key ------------------------------------------------------------
 */

static void resource_is(const char *account, const char *url,
                        const char *want) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__azure_canonical_resource(account, url, &sb), 0, "%s", url);
  cr_assert_str_eq(pm__sbuf_str(&sb), want, "%s", url);
  pm__sbuf_free(&sb);
}

Test(azure, canonicalized_resource_as_the_documentation_shows) {
  /* The examples of "Authorize with Shared Key", 2009-09-19 and later. */
  resource_is("myaccount",
              "http://myaccount.blob.core.windows.net/mycontainer"
              "?restype=container&comp=metadata",
              "/myaccount/mycontainer\ncomp:metadata\nrestype:container");
  resource_is("myaccount",
              "http://myaccount.blob.core.windows.net/mycontainer"
              "?restype=container&comp=list&include=snapshots"
              "&include=metadata&include=uncommittedblobs",
              "/myaccount/mycontainer\ncomp:list\ninclude:metadata,"
              "snapshots,uncommittedblobs\nrestype:container");
  /* Emulator URLs carry the account in the path: it appears twice. */
  resource_is("devstoreaccount1",
              "http://127.0.0.1:10000/devstoreaccount1/c/a%20b?COMP=list"
              "&prefix=a%2Fb",
              "/devstoreaccount1/devstoreaccount1/c/a%20b\ncomp:list\n"
              "prefix:a/b");
  resource_is("acct", "https://acct.blob.core.windows.net", "/acct/");
}

Test(azure, bad_query_escapes_are_refused) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__azure_canonical_resource("a", "http://h/c?x=%zz", &sb),
               PM_EBADURI);
  pm__sbuf_reset(&sb);
  cr_assert_eq(pm__azure_canonical_resource("a", "not a url", &sb), PM_EBADURI);
  pm__sbuf_free(&sb);
}

typedef struct vector {
  const char *method, *url, *range, *if_match, *want;
} vector;

/* Authorization values the Azure SDK for Python (azure-storage-blob
 * 12.x, SharedKeyCredentialPolicy) computed for these requests with
 * x-ms-date "Fri, 26 Jun 2015 23:39:12 GMT", x-ms-version 2021-08-06 and
 * the development account's published key. (The SDK sends ranges as
 * x-ms-range and leaves the Range slot empty; we send Range, whose slot
 * string_to_sign_layout checks, and Azurite verifies.) */
static const vector sdk_vectors[] = {
    {"GET", "http://127.0.0.1:10000/devstoreaccount1/pm-test/dir/a%20b%2Bc.bin",
     NULL, "\"0x8D0FFA7FCB8E1B1\"",
     "SharedKey devstoreaccount1:s+X8DlMyzeRUigeN/E7TMQ5CQqmKCTWyy2l3+aQ8aYs="},
    {"GET",
     "https://myaccount.blob.core.windows.net/mycontainer?restype=container"
     "&comp=list&prefix=a%2Fb%20c&delimiter=%2F&marker=M%2B1&maxresults=7",
     NULL, NULL,
     "SharedKey devstoreaccount1:VV1qt6i/+0Om7MT6NTUbImH7vCiivyjX1n+VtjMRuTs="},
    {"HEAD", "https://myaccount.blob.core.windows.net/mycontainer/x", NULL,
     NULL,
     "SharedKey devstoreaccount1:bX8zkkxfQcs4LSfUyUmXJ6YznXsBJkcZP3SnLMIPOxE="},
};

Test(azure, signatures_match_the_azure_sdk) {
  pm_azure_config cfg = {0};
  cr_assert_eq(pm__azure_config_parse(&cfg, "AccountKey=" DEV_KEY), 0);
  for (size_t i = 0; i < sizeof sdk_vectors / sizeof sdk_vectors[0]; i++) {
    const vector *v = &sdk_vectors[i];
    pm_azure_signed req = {.method = v->method,
                           .url = v->url,
                           .account = "devstoreaccount1",
                           .if_match = v->if_match,
                           .range = v->range,
                           .date = "Fri, 26 Jun 2015 23:39:12 GMT",
                           .version = "2021-08-06"};
    pm_sbuf auth;
    pm__sbuf_init(&auth, 0);
    cr_assert_eq(pm__azure_authorization(&req, cfg.key, cfg.key_len, &auth), 0);
    cr_assert_str_eq(pm__sbuf_str(&auth), v->want, "vector %zu", i);
    pm__sbuf_free(&auth);
  }
  pm__azure_config_free(&cfg);
}

Test(azure, string_to_sign_layout) {
  pm_azure_signed req = {.method = "GET",
                         .url = "https://a.blob.core.windows.net/c/b",
                         .account = "a",
                         .if_match = "\"0x1\"",
                         .range = "bytes=0-9",
                         .date = "D",
                         .version = "V"};
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__azure_string_to_sign(&req, &sb), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb),
                   "GET\n\n\n\n\n\n\n\n\"0x1\"\n\n\nbytes=0-9\n"
                   "x-ms-date:D\nx-ms-version:V\n/a/c/b");
  pm__sbuf_free(&sb);
}

Test(azure, http_dates_do_not_depend_on_the_locale) {
  char date[30];
  pm__azure_http_date(1435361952, date);
  cr_assert_str_eq(date, "Fri, 26 Jun 2015 23:39:12 GMT");
  pm__azure_http_date(0, date);
  cr_assert_str_eq(date, "Thu, 01 Jan 1970 00:00:00 GMT");
}

/* ---- configuration
 * -----------------------------------------------------------
 */

Test(azure, connection_string_fields) {
  pm_azure_config cfg = {0};
  cr_assert_eq(pm__azure_config_parse(
                   &cfg, " DefaultEndpointsProtocol = http ; accountname=acct;"
                         "AccountKey=" DEV_KEY ";EndpointSuffix=core.chinacl"
                         "oudapi.cn;QueueEndpoint=http://q/;;"
                         "BlobEndpoint=http://127.0.0.1:9/acct//;"
                         "SharedAccessSignature=?sv=1&sig=a%2Bb="),
               0);
  cr_assert_str_eq(cfg.protocol, "http");
  cr_assert_str_eq(cfg.account, "acct");
  cr_assert_eq(cfg.key_len, 64);
  cr_assert_str_eq(cfg.suffix, "core.chinacloudapi.cn");
  cr_assert_str_eq(cfg.endpoint, "http://127.0.0.1:9/acct");
  cr_assert_str_eq(cfg.sas, "sv=1&sig=a%2Bb=");
  pm__azure_config_free(&cfg);
}

Test(azure, bad_connection_strings) {
  static const char *const bad[] = {"AccountName",
                                    "=x",
                                    "AccountKey=***",
                                    "AccountKey=",
                                    "DefaultEndpointsProtocol=ftp",
                                    "BlobEndpoint=ftp://x",
                                    "BlobEndpoint=http://",
                                    "BlobEndpoint=http://h/?q=1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pm_azure_config cfg = {0};
    cr_assert_eq(pm__azure_config_parse(&cfg, bad[i]), PM_ECONFIG, "%s",
                 bad[i]);
    cr_assert_neq(pm__errmsg()[0], '\0');
    pm__azure_config_free(&cfg);
  }
}

Test(azure, development_storage_shortcut) {
  setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true", 1);
  pm_azure_config cfg;
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.account, "devstoreaccount1");
  cr_assert_str_eq(cfg.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  cr_assert_eq(cfg.key_len, 64);
  cr_assert_str_eq(cfg.cred_source, "shared key");
  pm__azure_config_free(&cfg);
}

Test(azure, variables_fill_what_the_connection_string_leaves_out) {
  setenv("AZURE_STORAGE_CONNECTION_STRING",
         "BlobEndpoint=http://127.0.0.1:7/devstoreaccount1", 1);
  setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=2&sig=x", 1);
  pm_azure_config cfg;
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.account, "devstoreaccount1"); /* from the endpoint */
  cr_assert_str_eq(cfg.sas, "sv=2&sig=x");
  cr_assert_null(cfg.key);
  cr_assert_str_eq(cfg.cred_source, "SAS token");
  cr_assert_eq(cfg.max_results, 5000);
  pm__azure_config_free(&cfg);

  clear_env();
  setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
  setenv("AZURE_STORAGE_KEY", DEV_KEY, 1);
  setenv("PAGEMESH_AZURE_MAX_RESULTS", "7", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.account, "acct");
  cr_assert_null(cfg.endpoint);
  cr_assert_str_eq(cfg.protocol, "https");
  cr_assert_eq(cfg.max_results, 7);
  pm__azure_config_free(&cfg);

  setenv("PAGEMESH_AZURE_MAX_RESULTS", "5001", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), PM_ECONFIG);
}

Test(azure, account_from_a_host_style_endpoint) {
  setenv("AZURE_STORAGE_BLOB_ENDPOINT", "https://myacct.blob.example.net/", 1);
  pm_azure_config cfg;
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.account, "myacct");
  cr_assert_str_eq(cfg.endpoint, "https://myacct.blob.example.net");
  cr_assert_str_eq(cfg.cred_source, "anonymous");
  pm__azure_config_free(&cfg);
}

/* ---- URIs and URLs
 * -----------------------------------------------------------
 */

Test(azure, uris) {
  pm_azure_path p;
  const char *u = "az://pm-data/a/b c.bin";
  cr_assert_eq(pm__azure_uri_parse(u, &p), 0);
  cr_assert_str_eq(p.container, "pm-data");
  cr_assert_str_eq(p.blob, "a/b c.bin");
  cr_assert_str_eq(p.account, "");
  cr_assert_eq(p.root_len, strlen("az://pm-data"));
  u = "abfss://data@acct.dfs.core.windows.net/x/y";
  cr_assert_eq(pm__azure_uri_parse(u, &p), 0);
  cr_assert_str_eq(p.container, "data");
  cr_assert_str_eq(p.account, "acct");
  cr_assert_str_eq(p.suffix, "core.windows.net");
  cr_assert_str_eq(p.blob, "x/y");
  cr_assert_eq(p.root_len, strlen("abfss://data@acct.dfs.core.windows.net"));
  cr_assert_eq(pm__azure_uri_parse("az://c0n@acct", &p), 0);
  cr_assert_str_eq(p.blob, "");
  cr_assert_eq(pm__azure_uri_parse("az://$root/x", &p), 0);
}

Test(azure, bad_uris) {
  static const char *const bad[] = {"az://",
                                    "az:///x",
                                    "az://ab/x",
                                    "az://Upper/x",
                                    "az://c_d/x",
                                    "s3://bucket/x",
                                    "abfs://c0n@/x",
                                    "abfs://c0n@acct.queue.core.windows.net/x",
                                    "abfs://c0n@ACCT.dfs.core.windows.net/x",
                                    "az://c0n@a!b/x"};
  pm_azure_path p;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(pm__azure_uri_parse(bad[i], &p), PM_EBADURI, "%s", bad[i]);
}

static void url_is(const pm_azure_config *cfg, const char *uri,
                   const char *query, const char *want, bool own) {
  pm_azure_path p;
  pm_azure_target target;
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__azure_uri_parse(uri, &p), 0);
  cr_assert_eq(pm__azure_url(cfg, &p, query, &sb, &target), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), want);
  cr_assert_eq(target.own_account, own, "%s", uri);
  pm__sbuf_free(&sb);
}

Test(azure, urls) {
  pm_azure_config cfg = {0};
  cr_assert_eq(
      pm__azure_config_parse(&cfg, "AccountName=devstoreaccount1;BlobEndpoint="
                                   "http://127.0.0.1:10000/devstoreaccount1"),
      0);
  url_is(&cfg, "az://c0n/a b/ü+%.bin", NULL,
         "http://127.0.0.1:10000/devstoreaccount1/c0n/a%20b/%C3%BC%2B%25.bin",
         true);
  url_is(&cfg, "az://c0n", "comp=list&restype=container",
         "http://127.0.0.1:10000/devstoreaccount1/c0n?comp=list&restype="
         "container",
         true);
  url_is(&cfg, "abfs://c0n@other.dfs.core.usgovcloudapi.net/x", NULL,
         "https://other.blob.core.usgovcloudapi.net/c0n/x", false);
  url_is(&cfg, "abfs://c0n@devstoreaccount1.dfs.core.windows.net/x", NULL,
         "http://127.0.0.1:10000/devstoreaccount1/c0n/x", true);
  pm__azure_config_free(&cfg);

  pm_azure_config none = {0};
  pm_azure_path p;
  pm_azure_target target;
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__azure_uri_parse("az://c0n/x", &p), 0);
  cr_assert_eq(pm__azure_url(&none, &p, NULL, &sb, &target), PM_ECONFIG);
  pm__sbuf_free(&sb);
}

/* ---- List Blobs
 * ----------------------------------------------------------------
 */

#define MAX_ITEMS 8

typedef struct seen {
  int count;
  char names[MAX_ITEMS][128];
  bool prefix[MAX_ITEMS];
  uint64_t size[MAX_ITEMS];
  int64_t mtime[MAX_ITEMS];
  char etag[MAX_ITEMS][64];
} seen;

static int on_item(void *arg, const pm_azure_item *item) {
  seen *s = arg;
  if (s->count < MAX_ITEMS) {
    snprintf(s->names[s->count], sizeof s->names[0], "%s", item->name);
    s->prefix[s->count] = item->is_prefix;
    s->size[s->count] = item->size;
    s->mtime[s->count] = item->mtime_ns;
    snprintf(s->etag[s->count], sizeof s->etag[0], "%s", item->etag);
  }
  s->count++;
  return 0;
}

static const char page[] =
    "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<EnumerationResults ServiceEndpoint=\"http://x/\" ContainerName=\"c\">"
    "<Prefix>d/</Prefix><MaxResults>3</MaxResults><Delimiter>/</Delimiter>"
    "<Blobs><Blob><Name>d/a &amp; b</Name><Properties>"
    "<Creation-Time>Tue, 03 Jan 2023 10:00:00 GMT</Creation-Time>"
    "<Last-Modified>Wed, 04 Jan 2023 10:00:00 GMT</Last-Modified>"
    "<Etag>0x8DAEE5AB1C2D3E4</Etag><Content-Length>123</Content-Length>"
    "<BlobType>BlockBlob</BlobType></Properties><OrMetadata/></Blob>"
    "<BlobPrefix><Name>d/sub/</Name></BlobPrefix>"
    "<Blob><Name Encoded=\"true\">d/%EF%BF%BE%01x</Name><Properties>"
    "<Content-Length>0</Content-Length></Properties></Blob>"
    "</Blobs><NextMarker>2!16!MDAw</NextMarker></EnumerationResults>";

Test(azure, list_page_decodes) {
  seen s = {0};
  pm_azure_list_page pg;
  /* Azure starts its XML with a UTF-8 byte order mark. */
  cr_assert_eq(pm__azure_list_parse(page, sizeof page - 1, on_item, &s, &pg), 0,
               "%s", pm__errmsg());
  cr_assert_eq(s.count, 3);
  cr_assert_eq(pg.items, 3);
  cr_assert_str_eq(s.names[0], "d/a & b");
  cr_assert_eq(s.size[0], 123);
  cr_assert_eq(s.mtime[0], 1672826400LL * 1000000000LL);
  cr_assert_str_eq(s.etag[0], "0x8DAEE5AB1C2D3E4");
  cr_assert(s.prefix[1]);
  cr_assert_str_eq(s.names[1], "d/sub/");
  cr_assert_str_eq(s.names[2], "d/\xEF\xBF\xBE\x01x");
  cr_assert_str_eq(pg.next_marker, "2!16!MDAw");
}

/* An account with a hierarchical namespace (abfs) lists its directories
 * as empty blobs too, marked <ResourceType>directory: not objects (they
 * were listed as 0-byte files beside their own contents). */
Test(azure, directories_of_a_hierarchical_namespace_are_not_blobs) {
  static const char hns[] =
      "<EnumerationResults><Blobs>"
      "<Blob><Name>dir1</Name><Properties><Content-Length>0</Content-Length>"
      "<ResourceType>directory</ResourceType></Properties></Blob>"
      "<Blob><Name>dir1/file1</Name><Properties>"
      "<Content-Length>42</Content-Length>"
      "<ResourceType>file</ResourceType></Properties></Blob>"
      "</Blobs><NextMarker/></EnumerationResults>";
  seen s = {0};
  pm_azure_list_page pg;
  cr_assert_eq(pm__azure_list_parse(hns, sizeof hns - 1, on_item, &s, &pg), 0,
               "%s", pm__errmsg());
  cr_assert_eq(s.count, 1);
  cr_assert_str_eq(s.names[0], "dir1/file1");
  cr_assert_eq(s.size[0], 42);
}

Test(azure, last_page_has_an_empty_marker) {
  static const char last[] = "<EnumerationResults><Blobs/><NextMarker/>"
                             "</EnumerationResults>";
  seen s = {0};
  pm_azure_list_page pg;
  cr_assert_eq(pm__azure_list_parse(last, sizeof last - 1, on_item, &s, &pg),
               0);
  cr_assert_eq(s.count, 0);
  cr_assert_str_eq(pg.next_marker, "");
}

Test(azure, hostile_list_pages_are_refused) {
  static const char *const bad[] = {
      "",
      "<ListBucketResult/>",
      "<EnumerationResults><Blobs><Blob><Properties><Content-Length>1"
      "</Content-Length></Properties></Blob></Blobs></EnumerationResults>",
      "<EnumerationResults><Blobs><Blob><Name>x</Name></Blob></Blobs>"
      "</EnumerationResults>",
      "<EnumerationResults><Blobs><Blob><Name>x</Name><Properties>"
      "<Content-Length>-1</Content-Length></Properties></Blob></Blobs>"
      "</EnumerationResults>",
      "<EnumerationResults><Blobs><Blob><Name Encoded='true'>%zz</Name>"
      "</Blob></Blobs></EnumerationResults>",
      "<!DOCTYPE x [<!ENTITY a \"b\">]><EnumerationResults/>",
      "<EnumerationResults><Blobs><Blob><Name>x",
      "<EnumerationResults></Blobs>"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    seen s = {0};
    pm_azure_list_page pg;
    cr_assert_eq(pm__azure_list_parse(bad[i], strlen(bad[i]), on_item, &s, &pg),
                 PM_EPROTO, "%s", bad[i]);
  }
}

Test(azure, random_bytes_never_crash) {
  unsigned seed = 42;
  char buf[512];
  for (int round = 0; round < 2000; round++) {
    size_t n = (size_t)rand_r(&seed) % sizeof buf;
    size_t cut = (size_t)rand_r(&seed) % (sizeof page - 1);
    memcpy(buf, page + 3, PM_MIN(n, sizeof page - 4));
    for (size_t i = cut % 7; i < n; i += 1 + (size_t)rand_r(&seed) % 40)
      buf[i] = (char)rand_r(&seed);
    seen s = {0};
    pm_azure_list_page pg;
    int rc =
        pm__azure_list_parse(buf, PM_MIN(n, sizeof page - 4), on_item, &s, &pg);
    cr_assert(rc == 0 || rc == PM_EPROTO);
  }
}

Test(azure, one_spelling_per_blob) {
  char out[PM_UFS_URI_MAX];
  cr_assert_eq(pm__uri_normalize("ABFS://c0n@Acct.DFS.core.windows.net/A/B",
                                 out, sizeof out),
               0);
  cr_assert_str_eq(out, "abfs://c0n@acct.dfs.core.windows.net/A/B");
  cr_assert_eq(pm__uri_normalize("Az://c0n/Blob Name", out, sizeof out), 0);
  cr_assert_str_eq(out, "az://c0n/Blob Name");
}

Test(azure, managed_identity_only_without_key_or_sas) {
  pm_azure_config cfg;
  setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
  setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1/", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_null(cfg.identity, "PAGEMESH_AZURE_MANAGED_IDENTITY=off");
  cr_assert_str_eq(cfg.cred_source, "anonymous");
  pm__azure_config_free(&cfg);
  unsetenv("PAGEMESH_AZURE_MANAGED_IDENTITY");
  setenv("AZURE_CLIENT_ID", "1234-abcd", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_not_null(cfg.identity);
  cr_assert_str_eq(cfg.cred_source,
                   "managed identity 1234-abcd (http://127.0.0.1:1)");
  pm__azure_config_free(&cfg);
  setenv("AZURE_STORAGE_SAS_TOKEN", "sv=2021&sig=x", 1); /* SAS wins */
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_null(cfg.identity);
  pm__azure_config_free(&cfg);
  unsetenv("AZURE_STORAGE_SAS_TOKEN");
  setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "169.254.169.254", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "AZURE_POD_IDENTITY_AUTHORITY_HOST"));
  setenv("PAGEMESH_AZURE_MANAGED_IDENTITY", "off", 1);
}

Test(azure, entra_application_before_the_managed_identity) {
  pm_azure_config cfg;
  setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
  setenv("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47", 1);
  setenv("AZURE_CLIENT_ID", "app-1", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_null(cfg.identity, "no secret, no federated token: not an app");
  pm__azure_config_free(&cfg);
  /* workload identity: a federated token file (read by each fetch) */
  setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/token", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_not_null(cfg.identity);
  cr_assert_str_eq(cfg.cred_source, "Entra application app-1 with a "
                                    "federated token (workload identity)");
  pm__azure_config_free(&cfg);
  /* a client secret comes first, as in the Azure SDKs; even with the
   * managed identity on, an application is used */
  unsetenv("PAGEMESH_AZURE_MANAGED_IDENTITY");
  setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1", 1);
  setenv("AZURE_CLIENT_SECRET", "s3cret~", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0, "%s", pm__errmsg());
  cr_assert_str_eq(cfg.cred_source, "Entra application app-1 with a client "
                                    "secret");
  pm__azure_config_free(&cfg);
  /* a key or a SAS token wins over both */
  setenv("AZURE_STORAGE_KEY", DEV_KEY, 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0);
  cr_assert_null(cfg.identity);
  pm__azure_config_free(&cfg);
  unsetenv("AZURE_STORAGE_KEY");
  /* what goes into the token URL is checked */
  setenv("AZURE_TENANT_ID", "../evil?x=", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "AZURE_TENANT_ID"), "%s", pm__errmsg());
  setenv("AZURE_TENANT_ID", "contoso.onmicrosoft.com", 1);
  setenv("AZURE_AUTHORITY_HOST", "http://login.example/", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "not https://"), "%s", pm__errmsg());
  setenv("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), 0, "%s", pm__errmsg());
  pm__azure_config_free(&cfg);
  setenv("AZURE_AUTHORITY_HOST", "login.microsoftonline.us", 1); /* https */
  cr_assert_eq(pm__azure_config_load(&cfg), 0, "%s", pm__errmsg());
  pm__azure_config_free(&cfg);
  /* a certificate instead of a secret: checked when the config loads
   * (test_ufs_azure.py signs with a real one) */
  unsetenv("AZURE_CLIENT_SECRET");
  unsetenv("AZURE_FEDERATED_TOKEN_FILE");
  setenv("AZURE_CLIENT_CERTIFICATE_PATH", "/nonexistent/app.pem", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "AZURE_CLIENT_CERTIFICATE_PATH: "
                                 "/nonexistent/app.pem: no such file"),
            "%s", pm__errmsg());
  setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pw", 1);
  cr_assert_eq(pm__azure_config_load(&cfg), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "with a password is not supported"), "%s",
            pm__errmsg());
  unsetenv("AZURE_CLIENT_CERTIFICATE_PASSWORD");
  unsetenv("AZURE_CLIENT_CERTIFICATE_PATH");
  setenv("PAGEMESH_AZURE_MANAGED_IDENTITY", "off", 1);
}
