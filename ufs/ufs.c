/*
 * ufs/ufs.c - the one list of origin backends and the only way the core
 * reaches them. A set holds one object per registered backend (created per
 * peer); the wrappers normalise the URI, pick the backend by scheme, check
 * arguments and the contract of each method (a NULL optional method is
 * PM_ENOTSUP, a read returns exactly what was asked or fails), and add
 * what every backend would otherwise repeat: listing a single object when
 * the "directory" turns out to be one.
 *
 * Requests are counted where they are sent (each attempt, each page of a
 * listing) through pm__ufs_count(), not here: only the backend knows how
 * many requests a call cost. The wrappers time each stat and read call
 * and count the calls that fail (pm__ufs_set_latency/_errors).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ufs/ufs_priv.h"

/* Every backend, in dispatch order. Adding a backend = one line here. */
static const pm_ufs_methods *const registry[] = {
    &pm_s3_methods,    /* s3:// */
    &pm_http_methods,  /* http://, https:// */
    &pm_posix_methods, /* file://, paths */
    &pm_gcs_methods,   /* gs://, gcs:// */
    &pm_azure_methods, /* az://, abfs://, abfss:// */
    &pm_hf_methods,    /* hf:// */
};

#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_RETRY_BASE_MS 100u

typedef struct ufs_slot {
  const pm_ufs_methods *methods;
  pm_ufs *ufs;  /* NULL if init failed */
  int init_err; /* why, then */
  char init_msg[PM_ERRMSG_MAX];
} ufs_slot;

struct pm_ufs_set {
  pm_ufs_config config;
  ufs_slot slots[PM_ARRAY_SIZE(registry)];
  pm_histogram latency;    /* stat and read calls */
  _Atomic uint64_t errors; /* failed calls, missing objects aside */
};

const char *pm__ufs_env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

bool pm__ufs_home_path(char *out, size_t size, const char *named_by,
                       const char *path, const char *suffix) {
  const char *home = pm__ufs_env("HOME");
  bool tilde = !strncmp(path, "~/", 2);
  if (tilde && !home) {
    if (named_by)
      PM_LOG(PM_LOG_WARN, "ufs",
             "%s=%s: HOME is not set, so \"~/\" names no file; it is not "
             "read", named_by, path);
    return false;
  }
  int n = tilde ? snprintf(out, size, "%s/%s%s", home, path + 2, suffix)
                : snprintf(out, size, "%s%s", path, suffix);
  return n > 0 && (size_t)n < size;
}

int pm__ufs_read_small(const char *path, size_t max, char **text,
                       size_t *length) {
  *text = NULL;
  *length = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      PM_LOG(PM_LOG_WARN, "ufs", "%s: cannot read: %s", path, strerror(errno));
    return 0;
  }
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (uint64_t)st.st_size > max) {
    rc = pm__errf(PM_ECONFIG, "%s: not a regular file of at most %zu bytes",
                  path, max);
    goto out;
  }
  *text = malloc((size_t)st.st_size + 1);
  if (!*text) {
    rc = pm__errf(PM_ENOMEM, "%s: out of memory", path);
    goto out;
  }
  ssize_t n = pm__pread_full(fd, *text, (size_t)st.st_size, 0);
  if (n < 0) {
    rc = pm__errf(PM_ECONFIG, "%s: read failed", path);
    explicit_bzero(*text, (size_t)st.st_size); /* a part of a key, perhaps */
    free(*text);
    *text = NULL;
    goto out;
  }
  (*text)[n] = '\0';
  *length = (size_t)n;
out:
  close(fd);
  return rc;
}

int pm__ufs_read_token_file(const char *path, pm_sbuf *out) {
  FILE *f = fopen(path, "re");
  if (!f)
    return pm__errf(PM_EACCES, "%s: %s", path, strerror(errno));
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 &&
         !pm__sbuf_append(out, chunk, n))
    ;
  explicit_bzero(chunk, sizeof chunk);
  bool failed = ferror(f);
  fclose(f);
  while (out->len && (out->data[out->len - 1] == '\n' ||
                      out->data[out->len - 1] == '\r' ||
                      out->data[out->len - 1] == ' '))
    out->data[--out->len] = '\0';
  if (failed || out->err || !out->len)
    return pm__errf(PM_EACCES, "%s: %s", path,
                    out->err ? "too long" : failed ? "read error" : "empty");
  return 0;
}

/* "127.a.b.c" with four numbers of 0..255. */
static bool loopback_v4(const char *host, size_t n) {
  unsigned parts = 0, value = 0, digits = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || host[i] == '.') {
      if (!digits || value > 255 || (parts == 0 && value != 127))
        return false;
      parts++;
      value = digits = 0;
    } else if (host[i] >= '0' && host[i] <= '9' && digits < 3) {
      value = value * 10 + (unsigned)(host[i] - '0');
      digits++;
    } else {
      return false;
    }
  }
  return parts == 4;
}

bool pm__ufs_url_for_secrets(const char *url) {
  if (!strncmp(url, "https://", 8))
    return url[8] != '\0';
  if (strncmp(url, "http://", 7) != 0)
    return false;
  const char *host = url + 7;
  size_t n = strcspn(host, "/?#");
  if (memchr(host, '@', n)) /* user info: the host is what follows */
    return false;
  if (n >= 5 && !strncmp(host, "[::1]", 5))
    return n == 5 || host[5] == ':';
  const char *colon = memchr(host, ':', n);
  size_t h = colon ? (size_t)(colon - host) : n;
  return (h == 9 && !strncmp(host, "localhost", 9)) || loopback_v4(host, h);
}

bool pm__ufs_cloud_is(const char *prefix) {
  static const char *const files[] = {
      "/sys/class/dmi/id/sys_vendor", "/sys/class/dmi/id/board_vendor",
      "/sys/class/dmi/id/product_name", "/sys/class/dmi/id/chassis_asset_tag",
      "/sys/hypervisor/uuid"};
  for (size_t i = 0; i < PM_ARRAY_SIZE(files); i++) {
    char text[64] = "";
    FILE *f = fopen(files[i], "re");
    if (!f)
      continue;
    bool match = fgets(text, sizeof text, f) &&
                 !strncmp(text, prefix, strlen(prefix));
    fclose(f);
    if (match)
      return true;
  }
  return false;
}

int pm__ufs_base_url(const char *what, const char *url, bool https_too,
                     char *out, size_t size) {
  size_t n = strlen(url), scheme = !strncmp(url, "http://", 7) ? 7
                                   : https_too && !strncmp(url, "https://", 8)
                                       ? 8
                                       : 0;
  while (n && url[n - 1] == '/')
    n--;
  if (!scheme || n <= scheme || n > 1024 || n >= size)
    return pm__errf(PM_ECONFIG, "%s: \"%.64s\" is not an %s URL", what, url,
                    https_too ? "http(s)://" : "http://");
  snprintf(out, size, "%.*s", (int)n, url);
  return 0;
}

void pm__ufs_free_secret(char **s) {
  if (*s) {
    explicit_bzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
  }
}

pm_histogram *pm__ufs_set_latency(pm_ufs_set *set) {
  return &set->latency;
}

uint64_t pm__ufs_set_errors(pm_ufs_set *set) {
  return atomic_load(&set->errors);
}

/* Account for one call to a backend that started at start_ns (0: not
 * timed) and returned rc; returns rc. */
static int64_t accounted(pm_ufs_set *set, uint64_t start_ns, int64_t rc) {
  if (start_ns)
    pm__histogram_record(&set->latency, pm__now_ns() - start_ns);
  if (rc < 0 && rc != PM_ENOENT)
    atomic_fetch_add(&set->errors, 1);
  return rc;
}

void pm__ufs_count(const pm_ufs *ufs, uint64_t requests, uint64_t bytes) {
  if (ufs && ufs->config.count)
    ufs->config.count(ufs->config.count_arg, requests, bytes);
}

/* Copy what the caller's (possibly older, smaller) config holds and fill
 * in defaults for what it leaves at zero. */
static void config_fill(pm_ufs_config *dst, const pm_ufs_config *src) {
  memset(dst, 0, sizeof *dst);
  if (src)
    memcpy(dst, src, PM_MIN(src->size ? src->size : sizeof *dst, sizeof *dst));
  dst->size = sizeof *dst;
  if (!dst->timeout_ms)
    dst->timeout_ms = DEFAULT_TIMEOUT_MS;
  if (!dst->retry_base_ms)
    dst->retry_base_ms = DEFAULT_RETRY_BASE_MS;
}

static int slot_open(ufs_slot *slot, const pm_ufs_methods *m,
                     const pm_ufs_config *config) {
  slot->methods = m;
  size_t size = PM_MAX(m->object_size, sizeof(pm_ufs));
  pm_ufs *ufs = calloc(1, size);
  if (!ufs)
    return pm__errf(PM_ENOMEM, "ufs %s: out of memory", m->name);
  ufs->methods = m;
  ufs->config = *config;
  int rc = m->init ? m->init(ufs, &ufs->config) : 0;
  if (rc == 0) {
    slot->ufs = ufs;
    return 0;
  }
  /* Keep the backend out; its URIs will fail with this detail. */
  slot->init_err = rc;
  snprintf(slot->init_msg, sizeof slot->init_msg, "%s", pm__errmsg());
  PM_LOG(PM_LOG_WARN, "ufs", "%s backend disabled: %s", m->name,
         slot->init_msg);
  if (m->fini)
    m->fini(ufs);
  free(ufs);
  return rc == PM_ENOMEM ? rc : 0;
}

int pm__ufs_set_open(const pm_ufs_config *config, pm_ufs_set **out) {
  if (!out)
    return pm__errf(PM_EINVAL, "ufs: NULL argument");
  *out = NULL;
  pm_ufs_set *set = calloc(1, sizeof *set);
  if (!set)
    return pm__errf(PM_ENOMEM, "ufs: out of memory");
  config_fill(&set->config, config);
  for (size_t i = 0; i < PM_ARRAY_SIZE(registry); i++) {
    int rc = slot_open(&set->slots[i], registry[i], &set->config);
    if (rc) {
      pm__ufs_set_close(set);
      return rc;
    }
  }
  *out = set;
  return 0;
}

void pm__ufs_set_close(pm_ufs_set *set) {
  if (!set)
    return;
  for (size_t i = 0; i < PM_ARRAY_SIZE(registry); i++) {
    pm_ufs *ufs = set->slots[i].ufs;
    if (!ufs)
      continue;
    if (ufs->methods->fini)
      ufs->methods->fini(ufs);
    free(ufs);
  }
  free(set);
}

static int serves(const pm_ufs_methods *m, const char *scheme) {
  for (const char *const *s = m->schemes; s && *s; s++)
    if (!strcmp(*s, scheme))
      return 1;
  return 0;
}

/* "s3://, http://, ..., paths": what the registry serves. */
static void supported_schemes(char *out, size_t size) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < PM_ARRAY_SIZE(registry); i++) {
    for (const char *const *s = registry[i]->schemes; s && *s; s++) {
      int n = snprintf(out + used, size - used, "%s%s%s", used ? ", " : "",
                       **s ? *s : "paths", **s ? "://" : "");
      if (n < 0 || (size_t)n >= size - used)
        return;
      used += (size_t)n;
    }
  }
}

pm_ufs *pm__ufs_for(pm_ufs_set *set, const char *uri, int *err) {
  int dummy;
  if (!err)
    err = &dummy;
  if (!set || !uri) {
    *err = pm__errf(PM_EINVAL, "ufs: NULL argument");
    return NULL;
  }
  char scheme[32];
  int rc = pm__uri_scheme(uri, scheme, sizeof scheme);
  if (rc < 0) {
    *err = rc;
    return NULL;
  }
  for (size_t i = 0; i < PM_ARRAY_SIZE(registry); i++) {
    ufs_slot *slot = &set->slots[i];
    if (!serves(slot->methods, scheme))
      continue;
    if (!slot->ufs) {
      *err = pm__errf(slot->init_err, "%s: %s backend unavailable: %s", uri,
                      slot->methods->name, slot->init_msg);
      return NULL;
    }
    *err = 0;
    return slot->ufs;
  }
  char known[256];
  supported_schemes(known, sizeof known);
  *err =
      pm__errf(PM_EBADURI, "%s: unsupported scheme \"%s://\" (supported: %s)",
               uri, scheme, known);
  return NULL;
}

/* Normalise uri into norm and find its backend. */
static pm_ufs *resolve(pm_ufs_set *set, const char *uri, char *norm,
                       size_t norm_size, int *err) {
  if (!set || !uri) {
    *err = pm__errf(PM_EINVAL, "ufs: NULL argument");
    return NULL;
  }
  *err = pm__uri_normalize(uri, norm, norm_size);
  if (*err)
    return NULL;
  return pm__ufs_for(set, norm, err);
}

int pm__ufs_stat(pm_ufs_set *set, const char *uri, pm_object_stat *out) {
  char norm[PM_UFS_URI_MAX];
  int rc;
  pm_ufs *ufs = resolve(set, uri, norm, sizeof norm, &rc);
  if (!ufs)
    return rc;
  if (!out)
    return pm__errf(PM_EINVAL, "%s: stat: NULL output", norm);
  if (!ufs->methods->stat)
    return pm__errf(PM_ENOTSUP, "%s: %s cannot stat", norm, ufs->methods->name);
  pm_object_stat st;
  memset(&st, 0, sizeof st);
  uint64_t start_ns = pm__now_ns();
  rc = (int)accounted(set, start_ns, ufs->methods->stat(ufs, norm, &st));
  if (rc == 0)
    *out = st; /* untouched on failure */
  return rc;
}

ssize_t pm__ufs_read(pm_ufs_set *set, const char *uri,
                     const pm_object_stat *expect, uint64_t offset, void *buf,
                     size_t length) {
  char norm[PM_UFS_URI_MAX];
  int rc;
  pm_ufs *ufs = resolve(set, uri, norm, sizeof norm, &rc);
  if (!ufs)
    return rc;
  if (!expect || (!buf && length))
    return pm__errf(PM_EINVAL, "%s: read: NULL argument", norm);
  if (!ufs->methods->read)
    return pm__errf(PM_ENOTSUP, "%s: %s cannot read", norm, ufs->methods->name);
  if (offset >= expect->size || length == 0)
    return 0;
  size_t want = (size_t)PM_MIN((uint64_t)length, expect->size - offset);
  uint64_t start_ns = pm__now_ns();
  ssize_t got = ufs->methods->read(ufs, norm, expect, offset, buf, want);
  if (got >= 0 && (size_t)got != want)
    got = pm__errf(PM_EIO, "%s: %s read returned %zd of %zu bytes", norm,
                   ufs->methods->name, got, want);
  return (ssize_t)accounted(set, start_ns, got);
}

/* Counts what a listing produced, for the single-object fallback. */
typedef struct list_shim {
  pm_ufs_list_cb cb;
  void *arg;
  size_t entries;
} list_shim;

static int list_shim_cb(void *arg, const pm_list_entry *entry) {
  list_shim *shim = arg;
  shim->entries++;
  return shim->cb(shim->arg, entry);
}

/* The "directory" does not exist: if an object of that exact name does,
 * list it alone (pm_list's contract). Otherwise keep the listing's error. */
static int list_single(pm_ufs *ufs, const char *norm, int list_err,
                       pm_ufs_list_cb cb, void *arg) {
  size_t n = strlen(norm);
  if (n == 0 || norm[n - 1] == '/' || !ufs->methods->stat)
    return list_err;
  char saved[PM_ERRMSG_MAX];
  snprintf(saved, sizeof saved, "%s", pm__errmsg());
  pm_object_stat st;
  memset(&st, 0, sizeof st);
  if (ufs->methods->stat(ufs, norm, &st) != 0) {
    pm__errmsg_set(saved);
    return list_err;
  }
  pm_list_entry entry = {.uri = (char *)norm,
                         .is_dir = 0,
                         .size = st.size,
                         .mtime_ns = st.mtime_ns,
                         .version = st.version};
  return cb(arg, &entry);
}

int pm__ufs_list(pm_ufs_set *set, const char *uri, unsigned flags,
                 pm_ufs_list_cb cb, void *arg) {
  char norm[PM_UFS_URI_MAX];
  int rc;
  pm_ufs *ufs = resolve(set, uri, norm, sizeof norm, &rc);
  if (!ufs)
    return rc;
  if (!cb)
    return pm__errf(PM_EINVAL, "%s: list: NULL callback", norm);
  if (!ufs->methods->list)
    return pm__errf(PM_ENOTSUP, "%s: %s origins cannot list", norm,
                    ufs->methods->name);
  list_shim shim = {cb, arg, 0};
  rc = ufs->methods->list(ufs, norm, flags, list_shim_cb, &shim);
  if (rc == PM_ENOENT && shim.entries == 0)
    return list_single(ufs, norm, rc, cb, arg);
  return rc > 0 ? rc : (int)accounted(set, 0, rc);
}
