/*
 * ufs/hf_path.c - what an hf:// URI names and where the Hub serves it, the
 * way huggingface_hub does it: HfFileSystem's path grammar (repository
 * type prefix, ORG/NAME, "@revision" with percent-encoded or special
 * "refs/..." revisions), hf_hub_url's resolve URLs, list_repo_tree's tree
 * URLs, and the settings (HF_ENDPOINT, HF_TOKEN and the token file).
 * The token is wiped from memory when the config is freed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ufs/hf_int.h"

/* ---- URIs -----------------------------------------------------------------
 */

static bool repo_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* "datasets/" or "spaces/": the type, and how much to skip. */
static size_t repo_type_prefix(const char *s, pm_hf_repo_type *type) {
  *type = PM_HF_MODEL;
  if (!strncmp(s, "datasets/", 9)) {
    *type = PM_HF_DATASET;
    return 9;
  }
  if (!strncmp(s, "spaces/", 7)) {
    *type = PM_HF_SPACE;
    return 7;
  }
  return 0;
}

/* Bytes of the special revisions written with plain slashes at s
 * ("refs/pr/12", "refs/convert/parquet"), or 0. */
static size_t special_ref(const char *s) {
  size_t n;
  if (!strncmp(s, "refs/pr/", 8)) {
    n = strspn(s + 8, "0123456789");
    return n ? 8 + n : 0;
  }
  if (!strncmp(s, "refs/convert/", 13)) {
    n = strspn(s + 13, "abcdefghijklmnopqrstuvwxyz"
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    return n ? 13 + n : 0;
  }
  return 0;
}

static int parse_revision(const char *uri, const char *rev, size_t n,
                          pm_hf_path *out) {
  pm_sbuf decoded;
  pm__sbuf_init(&decoded, PM_HF_REVISION_MAX - 1);
  int rc = pm__uri_decode(&decoded, rev, n);
  if (rc || decoded.len == 0)
    rc = pm__errf(PM_EBADURI, "%s: bad revision after '@'", uri);
  for (size_t i = 0; !rc && i < decoded.len; i++)
    if ((unsigned char)decoded.data[i] < 0x20)
      rc = pm__errf(PM_EBADURI, "%s: control character in the revision", uri);
  if (!rc)
    memcpy(out->revision, decoded.data, decoded.len + 1);
  pm__sbuf_free(&decoded);
  return rc;
}

/* "ORG/NAME" at s: its length, or 0 if malformed. */
static size_t repo_id_length(const char *s) {
  size_t org = 0, name = 0;
  while (repo_char(s[org]))
    org++;
  if (org == 0 || s[org] != '/')
    return 0;
  while (repo_char(s[org + 1 + name]))
    name++;
  return name ? org + 1 + name : 0;
}

int pm__hf_uri_parse(const char *uri, pm_hf_path *out) {
  memset(out, 0, sizeof *out);
  if (strncmp(uri, "hf://", 5) != 0)
    return pm__errf(PM_EBADURI, "%s: not an hf:// URI", uri);
  const char *repo = uri + 5 + repo_type_prefix(uri + 5, &out->type);
  size_t repo_len = repo_id_length(repo);
  const char *after = repo + repo_len;
  if (!repo_len || repo_len >= sizeof out->repo ||
      (*after && *after != '/' && *after != '@'))
    return pm__errf(PM_EBADURI,
                    "%s: want hf://[datasets/|spaces/]ORG/NAME[@REVISION]"
                    "[/PATH]",
                    uri);
  memcpy(out->repo, repo, repo_len);
  out->repo[repo_len] = '\0';
  snprintf(out->revision, sizeof out->revision, "%s", PM_HF_DEFAULT_REVISION);
  if (*after == '@') {
    const char *rev = after + 1;
    size_t n = special_ref(rev);
    if (!n || (rev[n] && rev[n] != '/'))
      n = strcspn(rev, "/");
    int rc = parse_revision(uri, rev, n, out);
    if (rc)
      return rc;
    after = rev + n;
  }
  out->root_len = (size_t)(after - uri);
  out->file = *after == '/' ? after + 1 : after;
  return 0;
}

/* ---- URLs -----------------------------------------------------------------
 */

static const char *url_prefix(pm_hf_repo_type type) {
  return type == PM_HF_DATASET ? "datasets/"
         : type == PM_HF_SPACE ? "spaces/"
                               : "";
}

int pm__hf_resolve_url(const char *endpoint, const pm_hf_path *path,
                       pm_sbuf *out) {
  pm__sbuf_printf(out, "%s/%s%s/resolve/", endpoint, url_prefix(path->type),
                  path->repo);
  pm__uri_encode(out, path->revision, strlen(path->revision), false);
  pm__sbuf_puts(out, "/");
  return pm__uri_encode(out, path->file, strlen(path->file), true);
}

int pm__hf_tree_url(const char *endpoint, const pm_hf_path *path,
                    const char *dir, bool recursive, pm_sbuf *out) {
  static const char *const kinds[] = {"models", "datasets", "spaces"};
  pm__sbuf_printf(out, "%s/api/%s/%s/tree/", endpoint, kinds[path->type],
                  path->repo);
  pm__uri_encode(out, path->revision, strlen(path->revision), false);
  size_t n = strlen(dir);
  while (n > 0 && dir[n - 1] == '/')
    n--;
  if (n) {
    pm__sbuf_puts(out, "/");
    pm__uri_encode(out, dir, n, false);
  }
  if (recursive)
    pm__sbuf_puts(out, "?recursive=true");
  return out->err;
}

size_t pm__hf_origin_len(const char *url) {
  const char *sep = strstr(url, "://");
  if (!sep || sep == url || strcspn(url, "/?#") < (size_t)(sep - url))
    return 0;
  return (size_t)(sep + 3 - url) + strcspn(sep + 3, "/?#");
}

/* ---- settings -------------------------------------------------------------
 */

void pm__hf_config_free(pm_hf_config *cfg) {
  if (!cfg)
    return;
  if (cfg->token)
    explicit_bzero(cfg->token, strlen(cfg->token));
  free(cfg->token);
  free(cfg->endpoint);
  free(cfg->token_source);
  memset(cfg, 0, sizeof *cfg);
}

/* The first line of a small token file, trimmed; NULL if none. */
static char *read_token_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  char buf[PM_HF_TOKEN_MAX + 1];
  ssize_t n = pm__pread_full(fd, buf, sizeof buf - 1, 0);
  close(fd);
  if (n <= 0) {
    explicit_bzero(buf, sizeof buf);
    return NULL;
  }
  buf[n] = '\0';
  size_t len = strcspn(buf, "\r\n");
  while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    len--;
  char *token = len ? strndup(buf, len) : NULL;
  explicit_bzero(buf, sizeof buf);
  return token;
}

static int load_token(pm_hf_config *cfg) {
  static const char *const vars[] = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"};
  char path[4096];
  for (size_t i = 0; i < PM_ARRAY_SIZE(vars) && !cfg->token; i++)
    if (pm__ufs_env(vars[i]) && (cfg->token = strdup(pm__ufs_env(vars[i]))))
      cfg->token_source = strdup(vars[i]);
  /* As huggingface_hub finds it: HF_TOKEN_PATH, else HF_HOME/token, else
   * ${XDG_CACHE_HOME:-~/.cache}/huggingface/token; "~/" is $HOME. */
  const char *given = pm__ufs_env("HF_TOKEN_PATH");
  const char *hf_home = pm__ufs_env("HF_HOME");
  const char *xdg = pm__ufs_env("XDG_CACHE_HOME");
  const char *base = given ? given : hf_home ? hf_home : xdg ? xdg : "~/.cache";
  const char *leaf = given ? "" : hf_home ? "/token" : "/huggingface/token";
  const char *named_by = given     ? "HF_TOKEN_PATH"
                         : hf_home ? "HF_HOME"
                         : xdg     ? "XDG_CACHE_HOME"
                                   : NULL;
  if (!cfg->token &&
      pm__ufs_home_path(path, sizeof path, named_by, base, leaf) &&
      (cfg->token = read_token_file(path)))
    cfg->token_source = strdup(path);
  if (!cfg->token)
    cfg->token_source = strdup("none (anonymous)");
  if (!cfg->token_source)
    return pm__errf(PM_ENOMEM, "hf config: out of memory");
  if (cfg->token && strlen(cfg->token) > PM_HF_TOKEN_MAX)
    return pm__errf(PM_ECONFIG, "%s: token over %d bytes", cfg->token_source,
                    PM_HF_TOKEN_MAX);
  return 0;
}

int pm__hf_config_load(pm_hf_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  const char *endpoint = pm__ufs_env("HF_ENDPOINT");
  if (!endpoint)
    endpoint = PM_HF_DEFAULT_ENDPOINT;
  size_t n = strlen(endpoint);
  while (n > 0 && endpoint[n - 1] == '/')
    n--;
  int rc = 0;
  if (strncasecmp(endpoint, "http://", 7) &&
      strncasecmp(endpoint, "https://", 8))
    rc = pm__errf(PM_ECONFIG, "HF_ENDPOINT=%s: not an http(s) URL", endpoint);
  else if (!(cfg->endpoint = strndup(endpoint, n)))
    rc = pm__errf(PM_ENOMEM, "hf config: out of memory");
  if (!rc)
    rc = load_token(cfg);
  if (rc)
    pm__hf_config_free(cfg);
  return rc;
}
