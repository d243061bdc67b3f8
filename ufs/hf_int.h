/*
 * ufs/hf_int.h - the pieces of the Hugging Face Hub backend worth testing
 * on their own: hf:// URIs, the Hub's URLs and the token
 * (ufs/hf_path.c), and the decoding of what the Hub sends back: tree API
 * pages and their Link headers (ufs/hf_tree.c). ufs/hf.c puts them
 * together.
 */
#ifndef PM_UFS_HF_INT_H
#define PM_UFS_HF_INT_H

#include <stdbool.h>

#include "ufs/ufs_priv.h"

#define PM_HF_DEFAULT_ENDPOINT "https://huggingface.co"
#define PM_HF_DEFAULT_REVISION "main"
/* "org/name": each part at most 96 characters on the Hub. */
#define PM_HF_REPO_MAX 256
/* Branch and tag names (decoded). */
#define PM_HF_REVISION_MAX 256
/* Longest token accepted (from the environment or the token file). */
#define PM_HF_TOKEN_MAX 4096
/* Largest tree page accepted. */
#define PM_HF_TREE_BODY_MAX (16 * 1024 * 1024)

/* ---- URIs, URLs, settings (ufs/hf_path.c) ----------------------------------
 */

typedef enum pm_hf_repo_type {
  PM_HF_MODEL = 0,
  PM_HF_DATASET = 1,
  PM_HF_SPACE = 2,
} pm_hf_repo_type;

/*
 * A parsed hf:// URI, spelled as huggingface_hub's HfFileSystem spells
 * paths: "hf://[datasets/|spaces/]ORG/NAME[@REVISION][/PATH]". The
 * revision may be percent-encoded ("@refs%2Fpr%2F1"); "refs/pr/N" and
 * "refs/convert/NAME" may also be written with plain slashes. Model
 * repositories need their namespace (ORG/NAME).
 */
typedef struct pm_hf_path {
  pm_hf_repo_type type;
  char repo[PM_HF_REPO_MAX];         /* "ORG/NAME" */
  char revision[PM_HF_REVISION_MAX]; /* decoded; "main" if none given */
  const char *file;                  /* inside the URI; "" for the root */
  size_t root_len; /* bytes of the URI before the path's '/' */
} pm_hf_path;

/* Parse a normalised hf:// URI. Errors: PM_EBADURI (with detail). */
int pm__hf_uri_parse(const char *uri, pm_hf_path *out);

/* Append "ENDPOINT/[datasets/|spaces/]REPO/resolve/REV/PATH" (the
 * revision encoded whole, '/' as %2F; the path encoded with '/' kept), as
 * huggingface_hub's hf_hub_url builds it. Returns 0 or the buffer's
 * error. */
int pm__hf_resolve_url(const char *endpoint, const pm_hf_path *path,
                       pm_sbuf *out);
/* Append "ENDPOINT/api/{models,datasets,spaces}/REPO/tree/REV[/DIR]"
 * with "?recursive=true" when asked (the directory encoded whole, as
 * list_repo_tree does). */
int pm__hf_tree_url(const char *endpoint, const pm_hf_path *path,
                    const char *dir, bool recursive, pm_sbuf *out);

/* The Hub's settings, read as huggingface_hub reads them. */
typedef struct pm_hf_config {
  char *endpoint; /* HF_ENDPOINT without trailing '/', or the Hub */
  char *token;    /* HF_TOKEN, HUGGING_FACE_HUB_TOKEN, or the token file
                     (HF_TOKEN_PATH, else $HF_HOME/token, else
                     ~/.cache/huggingface/token); NULL if none */
  char *token_source;
} pm_hf_config;

/* Errors: PM_ECONFIG (an endpoint that is not http(s), a token too
 * long), PM_ENOMEM. On failure cfg is freed. */
int pm__hf_config_load(pm_hf_config *cfg);
/* Free and wipe the token. Accepts a zeroed config. */
void pm__hf_config_free(pm_hf_config *cfg);

/* The length of "scheme://authority" at the start of url (0 if url is not
 * absolute): two URLs with equal origins may share the token. */
size_t pm__hf_origin_len(const char *url);

/* ---- what the Hub sends (ufs/hf_tree.c) ------------------------------------
 */

/* One entry of a tree page. Strings valid during the callback only. */
typedef struct pm_hf_entry {
  const char *path; /* from the repository root, no trailing '/' */
  bool is_dir;
  uint64_t size;       /* of the file (the LFS object for LFS files) */
  const char *version; /* lfs.oid (sha256) for LFS files, else oid (the
                          git blob id): what resolve sends as X-Linked-Etag
                          or ETag; "" if absent */
} pm_hf_entry;

typedef int (*pm_hf_entry_cb)(void *arg, const pm_hf_entry *entry);

/*
 * Decode one page of the tree API: a JSON array of objects with "type"
 * ("file" or "directory"; others are skipped), "path", "size", "oid" and
 * for LFS files "lfs": {"oid", "size"}. Calls cb for each entry and adds
 * to *items. Returns 0, cb's non-zero value, or PM_EPROTO (not JSON, not
 * an array, an entry without a path, a file without a size, NUL bytes,
 * duplicate keys) with detail.
 */
int pm__hf_tree_parse(const char *json, size_t length, pm_hf_entry_cb cb,
                      void *arg, size_t *items);

/* Find the URL of rel="next" in a Link header value ("<URL>; rel=\"next\",
 * <URL2>; rel=\"last\""), appending it to out. Returns 1 if found, 0 if
 * not, or PM_EPROTO for a malformed value. */
int pm__hf_link_next(const char *value, size_t length, pm_sbuf *out);

#endif /* PM_UFS_HF_INT_H */
