/*
 * ufs/ufs_priv.h - helpers shared by the files of ufs/ and nothing else: a
 * growable string with a size cap (ufs/sbuf.c), URI pieces and RFC 3986
 * encoding (ufs/uri.c), and request counting (ufs/ufs.c). The core reaches
 * ufs/ only through ufs/ufs_int.h.
 */
#ifndef PM_UFS_PRIV_H
#define PM_UFS_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ufs/ufs_int.h"

/* ---- growable strings (ufs/sbuf.c) ------------------------------------- */

/* A NUL-terminated byte string that grows up to `cap` bytes (0: 1 GiB).
 * Once an append fails (allocation or cap), the buffer is marked failed and
 * every later append is a no-op, so a builder can check once at the end. */
typedef struct pm_sbuf {
  char *data;   /* NUL-terminated once anything was appended; may be NULL */
  size_t len;   /* bytes, without the NUL */
  size_t alloc; /* bytes allocated */
  size_t cap;   /* most bytes it may hold, without the NUL */
  int err;      /* 0, PM_ENOMEM or PM_ETOOBIG */
} pm_sbuf;

void pm__sbuf_init(pm_sbuf *sb, size_t cap);
void pm__sbuf_free(pm_sbuf *sb);
/* Empty the buffer and clear its error, keeping the memory. */
/* pm__sbuf_free of a buffer that held a secret: wiped first. */
void pm__sbuf_free_secret(pm_sbuf *sb);
void pm__sbuf_reset(pm_sbuf *sb);
int pm__sbuf_append(pm_sbuf *sb, const void *bytes, size_t length);
int pm__sbuf_puts(pm_sbuf *sb, const char *s);
int pm__sbuf_printf(pm_sbuf *sb, const char *fmt, ...) PM_PRINTF(2, 3);
/* The string ("" if empty); never NULL. */
const char *pm__sbuf_str(const pm_sbuf *sb);
/* Hand the string over to the caller (malloc'd, "" if empty) and reset the
 * buffer; NULL if the buffer failed. */
char *pm__sbuf_take(pm_sbuf *sb);

/* ---- URIs (ufs/uri.c) --------------------------------------------------- */

/* Longest normalised URI the wrappers handle (S3 keys are at most 1024
 * bytes, Linux paths 4096). */
#define PM_UFS_URI_MAX 8192

/* Copy the lowercased scheme of uri ("s3", "https"; "" for a plain path)
 * into out. Returns the length of the "scheme://" prefix (0 for a plain
 * path) or PM_EBADURI if the scheme is longer than out_size - 1. */
int pm__uri_scheme(const char *uri, char *out, size_t out_size);

/* The longest bucket name: S3 allows 63 characters, GCS 222 when the name
 * has dots (each dot-separated part at most 63). */
#define PM_BUCKET_MAX 222

/* Split a normalised "s3://bucket/key" (or "gs://", "gcs://": the GCS XML
 * API has S3's shape) into its bucket (copied into bucket[bucket_size])
 * and a pointer to the key inside uri ("" for the bucket itself).
 * Errors: PM_EBADURI (with detail). */
int pm__s3_uri_split(const char *uri, char *bucket, size_t bucket_size,
                     const char **key);

/* Append the RFC 3986 percent-encoding of `length` bytes to sb: unreserved
 * characters (A-Z a-z 0-9 - . _ ~) stay, '/' stays when keep_slash is set,
 * every other byte becomes %XX with uppercase hex (as SigV4 wants). */
int pm__uri_encode(pm_sbuf *sb, const char *bytes, size_t length,
                   bool keep_slash);

/* Append the percent-decoding of `length` bytes to sb ('+' stays '+').
 * Returns 0, PM_EPROTO for a '%' not followed by two hex digits or a
 * decoded NUL, or sb's error. */
int pm__uri_decode(pm_sbuf *sb, const char *bytes, size_t length);

/* Parse `length` bytes of decimal digits (a number below 2^63, nothing
 * else) into *out: 0 or PM_EPROTO (ufs/http_parse.c). */
int pm__parse_u63(const char *text, size_t length, int64_t *out);

/* ---- settings (ufs/ufs.c) ---------------------------------------------- */

/* The value of an environment variable, or NULL if unset or empty (an
 * empty variable counts as unset, as the cloud SDKs treat it). */
const char *pm__ufs_env(const char *name);
/* PATH followed by SUFFIX into out, a leading "~/" read as $HOME (as shells
 * and the AWS and Hugging Face tools do). False if it cannot be formed (no
 * HOME for a "~/" path, or longer than size). named_by: the variable the
 * path came from, or NULL for a default; a "~/" path a variable names
 * with HOME unset is logged as a warning (the file is then not read). */
bool pm__ufs_home_path(char *out, size_t size, const char *named_by,
                       const char *path,
                       const char *suffix);
/* Read the whole file at path (a regular file of at most max bytes) into a
 * new NUL-terminated *text (the caller frees it) and *length. A missing
 * file is not an error: 0 with *text NULL (another unreadable one is
 * logged as a warning and treated the same). Errors: PM_ECONFIG (not a
 * regular file, over max, a read error), PM_ENOMEM. */
int pm__ufs_read_small(const char *path, size_t max, char **text,
                       size_t *length);
/* A token file (a Kubernetes service account's projected token, read anew
 * each time since the kubelet rotates it) into out, trailing newlines and
 * spaces cut; its cap is out's. Errors: PM_EACCES (detail: the path and
 * why: cannot open, read error, empty, over the cap). */
int pm__ufs_read_token_file(const char *path, pm_sbuf *out);
/* Whether a secret may be sent to url: https://, or http:// to this host
 * only (127.x, localhost, [::1]: a stand-in, a proxy on the node). */
bool pm__ufs_url_for_secrets(const char *url);
/* Wipe and free a secret string, and set *s to NULL. Accepts NULL. */
void pm__ufs_free_secret(char **s);
/* Does the hypervisor say this machine is of a cloud: a DMI field
 * (vendor, board vendor, product name, chassis asset tag) or the Xen UUID
 * that starts with prefix ("Amazon EC2", "ec2", "Google", Azure's asset
 * tag)? Decides whether a metadata
 * service is worth asking for credentials. */
bool pm__ufs_cloud_is(const char *prefix);
/* A service's base URL from configuration (`what` names where it came
 * from): http:// (or https:// with https_too), a host, at most 1024 bytes;
 * copied into out without trailing '/'. Errors: PM_ECONFIG naming what. */
int pm__ufs_base_url(const char *what, const char *url, bool https_too,
                     char *out, size_t size);

/* ---- counting (ufs/ufs.c) ----------------------------------------------- */

/* Report `requests` requests sent to the origin and `bytes` payload bytes
 * received to the peer through config.count. Backends call it where they
 * send requests (each attempt, each page of a listing). */
void pm__ufs_count(const pm_ufs *ufs, uint64_t requests, uint64_t bytes);

#endif /* PM_UFS_PRIV_H */
