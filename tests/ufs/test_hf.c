/*
 * tests/ufs/test_hf.c - the pieces of the Hugging Face backend: hf:// URIs
 * as huggingface_hub's HfFileSystem spells them (repository types,
 * "@revision" plain, percent-encoded and special "refs/..."), the resolve
 * and tree URLs as hf_hub_url and list_repo_tree build them, the settings
 * (HF_ENDPOINT, tokens), tree pages (good, odd and hostile JSON) and Link
 * headers. Each test runs in its own process (criterion forks).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ufs/hf_int.h"

static char home[] = "/tmp/pm-hf-XXXXXX";

static void setup(void) {
  static const char *const vars[] = {"HF_ENDPOINT", "HF_TOKEN",
                                     "HUGGING_FACE_HUB_TOKEN", "HF_HOME",
                                     "HF_TOKEN_PATH", "XDG_CACHE_HOME"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv(vars[i]);
  cr_assert_not_null(mkdtemp(home));
  setenv("HOME", home, 1);
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", home);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(hf, .init = setup, .fini = teardown, .timeout = 30);

/* ---- URIs -----------------------------------------------------------------
 */

static pm_hf_path parsed(const char *uri) {
  pm_hf_path p;
  int rc = pm__hf_uri_parse(uri, &p);
  cr_assert_eq(rc, 0, "%s: %s", uri, pm__errmsg());
  return p;
}

Test(hf, repository_types_and_paths) {
  pm_hf_path p = parsed("hf://datasets/org/name/dir/a b.parquet");
  cr_assert_eq(p.type, PM_HF_DATASET);
  cr_assert_str_eq(p.repo, "org/name");
  cr_assert_str_eq(p.revision, "main");
  cr_assert_str_eq(p.file, "dir/a b.parquet");
  cr_assert_eq(p.root_len, strlen("hf://datasets/org/name"));
  p = parsed("hf://openai-community/gpt2.x_y/config.json");
  cr_assert_eq(p.type, PM_HF_MODEL);
  cr_assert_str_eq(p.repo, "openai-community/gpt2.x_y");
  p = parsed("hf://spaces/org/app");
  cr_assert_eq(p.type, PM_HF_SPACE);
  cr_assert_str_eq(p.file, "");
  p = parsed("hf://datasets/org/name/");
  cr_assert_str_eq(p.file, "");
}

Test(hf, revisions) {
  pm_hf_path p = parsed("hf://datasets/org/name@v1.0/x");
  cr_assert_str_eq(p.revision, "v1.0");
  cr_assert_str_eq(p.file, "x");
  cr_assert_eq(p.root_len, strlen("hf://datasets/org/name@v1.0"));
  p = parsed("hf://datasets/org/name@refs%2Fpr%2F7/data/x");
  cr_assert_str_eq(p.revision, "refs/pr/7");
  cr_assert_str_eq(p.file, "data/x");
  p = parsed("hf://datasets/org/name@refs/pr/7/data/x");
  cr_assert_str_eq(p.revision, "refs/pr/7");
  cr_assert_str_eq(p.file, "data/x");
  p = parsed("hf://datasets/org/name@refs/convert/parquet/default/t.parquet");
  cr_assert_str_eq(p.revision, "refs/convert/parquet");
  cr_assert_str_eq(p.file, "default/t.parquet");
  p = parsed("hf://org/model@feature%2Fbranch");
  cr_assert_str_eq(p.revision, "feature/branch");
  cr_assert_str_eq(p.file, "");
  /* Without the special form, "refs/heads/x" is a revision "refs". */
  p = parsed("hf://org/model@refs/heads/x");
  cr_assert_str_eq(p.revision, "refs");
  cr_assert_str_eq(p.file, "heads/x");
  /* '@' in a file path is part of the path. */
  p = parsed("hf://org/model/a@b.txt");
  cr_assert_str_eq(p.revision, "main");
  cr_assert_str_eq(p.file, "a@b.txt");
}

Test(hf, bad_uris) {
  static const char *const bad[] = {"hf://",
                                    "hf://datasets/",
                                    "hf://datasets/org",
                                    "hf://org",
                                    "hf://org/",
                                    "hf:///name/x",
                                    "hf://o!/n/x",
                                    "hf://org/na me/x",
                                    "hf://org/name@/x",
                                    "hf://org/name@%zz/x",
                                    "hf://org/name@a%0Ab/x",
                                    "hf://org/name@%00/x",
                                    "s3://org/name",
                                    "hf://org/name#x"};
  pm_hf_path p;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(pm__hf_uri_parse(bad[i], &p), PM_EBADURI, "%s", bad[i]);
}

/* ---- URLs -----------------------------------------------------------------
 */

static void resolve_is(const char *uri, const char *want) {
  pm_hf_path p = parsed(uri);
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__hf_resolve_url("https://huggingface.co", &p, &sb), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), want);
  pm__sbuf_free(&sb);
}

Test(hf, resolve_urls_as_hf_hub_url_builds_them) {
  resolve_is("hf://datasets/org/name@refs%2Fpr%2F1/dir/a b+c~.txt",
             "https://huggingface.co/datasets/org/name/resolve/refs%2Fpr%2F1/"
             "dir/a%20b%2Bc~.txt");
  resolve_is("hf://org/model/w.safetensors",
             "https://huggingface.co/org/model/resolve/main/w.safetensors");
  resolve_is("hf://spaces/org/app@v2/app.py",
             "https://huggingface.co/spaces/org/app/resolve/v2/app.py");
}

Test(hf, tree_urls_as_list_repo_tree_builds_them) {
  pm_hf_path p = parsed("hf://datasets/org/name@feature%2Fx/data/train/");
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__hf_tree_url("http://h:1", &p, p.file, true, &sb), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb),
                   "http://h:1/api/datasets/org/name/tree/feature%2Fx/"
                   "data%2Ftrain?recursive=true");
  pm__sbuf_reset(&sb);
  p = parsed("hf://org/model");
  cr_assert_eq(pm__hf_tree_url("http://h:1", &p, p.file, false, &sb), 0);
  cr_assert_str_eq(pm__sbuf_str(&sb), "http://h:1/api/models/org/model/tree/"
                                      "main");
  pm__sbuf_free(&sb);
}

Test(hf, origins) {
  cr_assert_eq(pm__hf_origin_len("https://huggingface.co/api/x?y"),
               strlen("https://huggingface.co"));
  cr_assert_eq(pm__hf_origin_len("http://127.0.0.1:8080"),
               strlen("http://127.0.0.1:8080"));
  cr_assert_eq(pm__hf_origin_len("/relative/x"), 0);
  cr_assert_eq(pm__hf_origin_len("a/b://c"), 0);
}

/* ---- settings -------------------------------------------------------------
 */

Test(hf, settings_from_the_environment) {
  pm_hf_config cfg;
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.endpoint, "https://huggingface.co");
  cr_assert_null(cfg.token);
  pm__hf_config_free(&cfg);

  setenv("HF_ENDPOINT", "http://127.0.0.1:9/mirror//", 1);
  setenv("HUGGING_FACE_HUB_TOKEN", "hf_old", 1);
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.endpoint, "http://127.0.0.1:9/mirror");
  cr_assert_str_eq(cfg.token, "hf_old");
  pm__hf_config_free(&cfg);

  setenv("HF_TOKEN", "hf_new", 1);
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.token, "hf_new");
  cr_assert_str_eq(cfg.token_source, "HF_TOKEN");
  pm__hf_config_free(&cfg);

  setenv("HF_ENDPOINT", "ftp://x", 1);
  cr_assert_eq(pm__hf_config_load(&cfg), PM_ECONFIG);
}

Test(hf, token_files) {
  char path[256];
  snprintf(path, sizeof path, "%s/.cache", home);
  cr_assert_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof path, "%s/.cache/huggingface", home);
  cr_assert_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof path, "%s/.cache/huggingface/token", home);
  FILE *f = fopen(path, "w");
  fputs("hf_from_file  \r\nignored\n", f);
  fclose(f);
  pm_hf_config cfg;
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.token, "hf_from_file");
  cr_assert_str_eq(cfg.token_source, path);
  pm__hf_config_free(&cfg);
  setenv("HF_HOME", "/nonexistent", 1); /* HF_HOME wins, and has none */
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_null(cfg.token);
  pm__hf_config_free(&cfg);
  setenv("HF_TOKEN_PATH", path, 1);
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.token, "hf_from_file");
  pm__hf_config_free(&cfg);
  /* "~/" is $HOME, in HF_HOME as in HF_TOKEN_PATH. */
  unsetenv("HF_TOKEN_PATH");
  setenv("HF_HOME", "~/.cache/huggingface", 1);
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.token, "hf_from_file");
  cr_assert_str_eq(cfg.token_source, path);
  pm__hf_config_free(&cfg);
  /* Without HF_HOME, XDG_CACHE_HOME holds huggingface/token. */
  unsetenv("HF_HOME");
  setenv("XDG_CACHE_HOME", "/nonexistent", 1);
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_null(cfg.token);
  pm__hf_config_free(&cfg);
  snprintf(path, sizeof path, "%s/.cache", home);
  setenv("XDG_CACHE_HOME", path, 1);
  cr_assert_eq(pm__hf_config_load(&cfg), 0);
  cr_assert_str_eq(cfg.token, "hf_from_file");
  pm__hf_config_free(&cfg);
}

/* ---- tree pages -------------------------------------------------------------
 */

#define MAX_ENTRIES 8

typedef struct seen {
  int count;
  char paths[MAX_ENTRIES][128];
  bool dir[MAX_ENTRIES];
  uint64_t size[MAX_ENTRIES];
  char version[MAX_ENTRIES][80];
  int stop_at;
} seen;

static int on_entry(void *arg, const pm_hf_entry *e) {
  seen *s = arg;
  if (s->count < MAX_ENTRIES) {
    snprintf(s->paths[s->count], sizeof s->paths[0], "%s", e->path);
    s->dir[s->count] = e->is_dir;
    s->size[s->count] = e->size;
    snprintf(s->version[s->count], sizeof s->version[0], "%s", e->version);
  }
  s->count++;
  return s->stop_at && s->count == s->stop_at ? 77 : 0;
}

static const char tree_page[] =
    "[{\"type\":\"directory\",\"oid\":\"d1\",\"size\":0,\"path\":\"data\"},"
    " {\"type\":\"file\",\"oid\":\"a1b2\",\"size\":12,\"path\":\"README.md\"},"
    " {\"type\":\"file\",\"oid\":\"c3d4\",\"size\":1000,\"path\":\"w.bin\","
    "  \"lfs\":{\"oid\":\"sha256hex\",\"size\":1000,\"pointerSize\":130},"
    "  \"xetHash\":\"x\",\"lastCommit\":{\"id\":\"c\"}},"
    " {\"type\":\"submodule\",\"path\":\"sub\"},"
    " {\"type\":\"file\",\"size\":5,\"path\":\"caf\\u00e9.txt\"}]";

Test(hf, tree_page_decodes) {
  seen s = {0};
  size_t items = 0;
  cr_assert_eq(
      pm__hf_tree_parse(tree_page, sizeof tree_page - 1, on_entry, &s, &items),
      0, "%s", pm__errmsg());
  cr_assert_eq(s.count, 4);
  cr_assert_eq(items, 4);
  cr_assert(s.dir[0]);
  cr_assert_str_eq(s.paths[0], "data");
  cr_assert_str_eq(s.version[1], "a1b2");
  cr_assert_eq(s.size[1], 12);
  cr_assert_str_eq(s.version[2], "sha256hex"); /* LFS: the sha256 */
  cr_assert_eq(s.size[2], 1000);
  cr_assert_str_eq(s.paths[3], "caf\xC3\xA9.txt");
  cr_assert_str_eq(s.version[3], "");
}

Test(hf, tree_callback_can_stop) {
  seen s = {.stop_at = 2};
  cr_assert_eq(
      pm__hf_tree_parse(tree_page, sizeof tree_page - 1, on_entry, &s, NULL),
      77);
  cr_assert_eq(s.count, 2);
}

Test(hf, hostile_tree_pages_are_refused) {
  static const char *const bad[] = {
      "",
      "{",
      "{}",
      "null",
      "[1]",
      "[[]]",
      "[{\"type\":\"file\"}]",
      "[{\"path\":\"x\"}]",
      "[{\"type\":\"file\",\"path\":\"x\"}]",
      "[{\"type\":\"file\",\"path\":\"x\",\"size\":-1}]",
      "[{\"type\":\"file\",\"path\":\"x\",\"size\":\"5\"}]",
      "[{\"type\":\"file\",\"path\":\"\",\"size\":5}]",
      "[{\"type\":\"file\",\"path\":\"a\\u0000b\",\"size\":5}]",
      "[{\"type\":\"file\",\"path\":\"x\",\"path\":\"y\",\"size\":1}]",
      "[{\"type\":\"file\",\"path\":\"x\",\"size\":1}] trailing",
      "[{\"type\":\"file\",\"path\":\"x\",\"size\":1}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    seen s = {0};
    cr_assert_eq(pm__hf_tree_parse(bad[i], strlen(bad[i]), on_entry, &s, NULL),
                 PM_EPROTO, "%s", bad[i]);
    cr_assert_neq(pm__errmsg()[0], '\0');
  }
}

Test(hf, deep_nesting_and_garbage_never_crash) {
  static char deep[20000];
  memset(deep, '[', sizeof deep - 1);
  seen s = {0};
  cr_assert_eq(pm__hf_tree_parse(deep, sizeof deep - 1, on_entry, &s, NULL),
               PM_EPROTO);
  unsigned seed = 7;
  char buf[sizeof tree_page];
  for (int round = 0; round < 3000; round++) {
    memcpy(buf, tree_page, sizeof buf);
    for (int k = 0; k < 4; k++)
      buf[(size_t)rand_r(&seed) % (sizeof buf - 1)] = (char)rand_r(&seed);
    size_t n = (size_t)rand_r(&seed) % sizeof buf;
    int rc = pm__hf_tree_parse(buf, n, on_entry, &s, NULL);
    cr_assert(rc == 0 || rc == PM_EPROTO);
  }
}

/* ---- Link headers
 * ------------------------------------------------------------ */

static void next_is(const char *value, int want_rc, const char *want) {
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__hf_link_next(value, strlen(value), &sb), want_rc, "%s",
               value);
  if (want)
    cr_assert_str_eq(pm__sbuf_str(&sb), want);
  pm__sbuf_free(&sb);
}

Test(hf, link_headers) {
  next_is("<https://h/api/x?cursor=abc&y=1>; rel=\"next\"", 1,
          "https://h/api/x?cursor=abc&y=1");
  next_is("<https://h/p1>; rel=\"prev\", <https://h/p3>; rel=\"next\"", 1,
          "https://h/p3");
  next_is("<https://h/a,b>;rel=next", 1, "https://h/a,b");
  next_is("<https://h/n>; title=\"x\"; rel=\"last next\"", 1, "https://h/n");
  next_is("<https://h/l>; rel=\"last\"", 0, NULL);
  next_is("", 0, NULL);
  next_is("https://h/n; rel=\"next\"", PM_EPROTO, NULL);
  next_is("<https://h/n; rel=\"next\"", PM_EPROTO, NULL);
  next_is("<>; rel=\"next\"", PM_EPROTO, NULL);
  next_is("<https://h/n>; rel=\"nextx\"", 0, NULL);
}

Test(hf, link_values_are_read_within_their_length) {
  /* A rel list at the very end of a value that is not NUL-terminated (a
   * header line as curl hands it over): found by fuzz_http_headers, and
   * caught here under ASan. */
  static const char text[] = "<https://h/n>; rel=\"last next";
  char *exact = malloc(sizeof text - 1);
  memcpy(exact, text, sizeof text - 1);
  pm_sbuf sb;
  pm__sbuf_init(&sb, 0);
  cr_assert_eq(pm__hf_link_next(exact, sizeof text - 1, &sb), 1);
  cr_assert_str_eq(pm__sbuf_str(&sb), "https://h/n");
  pm__sbuf_reset(&sb);
  cr_assert_eq(pm__hf_link_next(exact, sizeof text - 6, &sb), 0);
  pm__sbuf_free(&sb);
  free(exact);
}
