/*
 * ufs/hf_tree.c - decoding what the Hub's tree API sends: one JSON array
 * per page (jansson, duplicate keys and NUL bytes refused; the caller caps
 * the body at PM_HF_TREE_BODY_MAX), and the Link header that points to the
 * next page (RFC 8288: "<URL>; rel=\"next\"", several links separated by
 * commas). Entries that are neither files nor directories are skipped;
 * anything malformed is PM_EPROTO with detail.
 */
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "ufs/hf_int.h"

/* ---- tree pages ------------------------------------------------------------
 */

static const char *string_of(json_t *object, const char *key) {
  json_t *v = json_object_get(object, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool size_of(json_t *object, uint64_t *out) {
  json_t *v = json_object_get(object, "size");
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return false;
  *out = (uint64_t)json_integer_value(v);
  return true;
}

/* One element of the array: 0, cb's value, PM_EPROTO, or 1 if skipped. */
static int tree_entry(json_t *item, size_t index, pm_hf_entry_cb cb,
                      void *arg) {
  if (!json_is_object(item))
    return pm__errf(PM_EPROTO, "tree entry %zu is not an object", index);
  const char *type = string_of(item, "type");
  const char *path = string_of(item, "path");
  if (!type || !path || !*path)
    return pm__errf(PM_EPROTO, "tree entry %zu without a type or path", index);
  bool is_dir = !strcmp(type, "directory");
  if (!is_dir && strcmp(type, "file"))
    return 1;
  pm_hf_entry entry = {.path = path, .is_dir = is_dir, .version = ""};
  json_t *lfs = json_object_get(item, "lfs");
  const char *oid = string_of(item, "oid");
  const char *lfs_oid = json_is_object(lfs) ? string_of(lfs, "oid") : NULL;
  if (!is_dir && !size_of(json_is_object(lfs) ? lfs : item, &entry.size) &&
      !size_of(item, &entry.size))
    return pm__errf(PM_EPROTO, "tree entry \"%.256s\" without a size", path);
  entry.version = lfs_oid ? lfs_oid : oid ? oid : "";
  return cb(arg, &entry);
}

int pm__hf_tree_parse(const char *json, size_t length, pm_hf_entry_cb cb,
                      void *arg, size_t *items) {
  json_error_t error;
  json_t *root = json_loadb(json, length, JSON_REJECT_DUPLICATES, &error);
  if (!root)
    return pm__errf(PM_EPROTO, "bad tree JSON at byte %d: %s", error.position,
                    error.text);
  int rc = 0;
  if (!json_is_array(root))
    rc = pm__errf(PM_EPROTO, "tree answer is not a JSON array");
  for (size_t i = 0; !rc && i < json_array_size(root); i++) {
    rc = tree_entry(json_array_get(root, i), i, cb, arg);
    if (rc <= 0 && items)
      (*items)++;
    rc = rc == 1 ? 0 : rc;
  }
  json_decref(root);
  return rc;
}

/* ---- Link headers ----------------------------------------------------------
 */

static const char *skip_space(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  return p;
}

/* Whether the parameters [p, end) of one link hold rel="next" (or rel=next,
 * or a rel list naming next). */
static bool rel_is_next(const char *p, const char *end) {
  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *stop = semi ? semi : end;
    const char *q = skip_space(p, stop);
    if ((size_t)(stop - q) > 4 && !strncasecmp(q, "rel=", 4)) {
      q += 4;
      bool quoted = *q == '"';
      const char *v = q + quoted, *v_end = stop;
      while (v_end > v && (v_end[-1] == ' ' || v_end[-1] == '"'))
        v_end--;
      for (const char *w = v; w < v_end;) {
        const char *t = w;
        while (t < v_end && *t != ' ' && *t != '"')
          t++;
        if (t - w == 4 && !strncasecmp(w, "next", 4))
          return true;
        w = t + 1;
      }
    }
    p = semi ? semi + 1 : end;
  }
  return false;
}

int pm__hf_link_next(const char *value, size_t length, pm_sbuf *out) {
  const char *p = value, *end = value + length;
  while (p < end) {
    p = skip_space(p, end);
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p >= end)
      break;
    const char *gt = *p == '<' ? memchr(p, '>', (size_t)(end - p)) : NULL;
    if (!gt)
      return PM_EPROTO;
    const char *params = gt + 1;
    const char *comma = memchr(params, ',', (size_t)(end - params));
    const char *link_end = comma ? comma : end;
    if (rel_is_next(params, link_end)) {
      if (gt == p + 1 || memchr(p + 1, '\0', (size_t)(gt - p - 1)))
        return PM_EPROTO;
      return pm__sbuf_append(out, p + 1, (size_t)(gt - p - 1)) ? PM_EPROTO : 1;
    }
    p = link_end;
  }
  return 0;
}
