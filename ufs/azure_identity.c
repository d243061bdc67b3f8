/*
 * ufs/azure_identity.c - the managed identity of an Azure VM (or of an AKS
 * node or pod through the same endpoint): an OAuth token for Azure
 * Storage from the Instance Metadata Service, sent as a bearer token to
 * the configured account when it has no key and no SAS token. The token
 * is fetched by the first request that needs it and again within
 * REFRESH_NS of its expiry (one thread fetches; the others wait); a
 * failed refetch keeps a token that has not expired yet.
 *
 * The call: GET {base}/metadata/identity/oauth2/token?api-version=
 * 2018-02-01&resource=https://storage.azure.com/ (&client_id= for a
 * user-assigned identity) with "Metadata: true".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/azure_int.h"
#include "ufs/curl_int.h"

#define REFRESH_NS (5ll * 60 * 1000000000ll)
#define ANSWER_MAX (64u * 1024u)
#define TOKEN_PATH                                                             \
  "/metadata/identity/oauth2/token?api-version=2018-02-01"                     \
  "&resource=https%3A%2F%2Fstorage.azure.com%2F"

struct pm_azure_identity {
  pthread_mutex_t lock;
  char *base;      /* "http://169.254.169.254" */
  char *client_id; /* a user-assigned identity's, or NULL */
  char *token;     /* NULL until fetched */
  int64_t expires_ns;
};

int pm__azure_identity_new(const char *base, const char *client_id,
                           pm_azure_identity **out) {
  pm_azure_identity *id = calloc(1, sizeof *id);
  if (id)
    id->base = strdup(base);
  if (id && client_id)
    id->client_id = strdup(client_id);
  if (!id || !id->base || (client_id && !id->client_id)) {
    pm__azure_identity_free(id);
    return pm__errf(PM_ENOMEM, "azure config: out of memory");
  }
  pthread_mutex_init(&id->lock, NULL);
  *out = id;
  return 0;
}

void pm__azure_identity_free(pm_azure_identity *id) {
  if (!id)
    return;
  if (id->base) /* initialised once base was set */
    pthread_mutex_destroy(&id->lock);
  pm__ufs_free_secret(&id->token);
  free(id->base);
  free(id->client_id);
  free(id);
}

/* A token from the metadata service into *token, and its expiry. */
static int fetch(const pm_azure_identity *id, char **token,
                 int64_t *expires_ns) {
  pm_sbuf path, body;
  pm__sbuf_init(&path, 4096);
  pm__sbuf_init(&body, ANSWER_MAX);
  pm__sbuf_puts(&path, TOKEN_PATH);
  if (id->client_id) {
    pm__sbuf_puts(&path, "&client_id=");
    pm__uri_encode(&path, id->client_id, strlen(id->client_id), false);
  }
  long status = 0;
  int64_t expires_in = 0;
  int rc = path.err ? pm__errf(PM_ETOOBIG, "AZURE_CLIENT_ID too long")
                    : pm__metadata_call(id->base, pm__sbuf_str(&path), false,
                                        "Metadata", "true", &body, &status);
  if (!rc && status != 200)
    rc = pm__errf(PM_EACCES, "token: HTTP %ld%s", status,
                  status == 400 ? " (no managed identity on this machine, "
                                  "or not the one AZURE_CLIENT_ID names?)"
                                : "");
  if (!rc)
    rc = pm__oauth_token_parse(body.data ? body.data : "", body.len, token,
                               &expires_in);
  if (!rc)
    *expires_ns = pm__wall_ns() + expires_in * 1000000000ll;
  if (body.data)
    explicit_bzero(body.data, body.len);
  pm__sbuf_free(&body);
  pm__sbuf_free(&path);
  return rc;
}

int pm__azure_identity_token(pm_azure_identity *id, char **out) {
  *out = NULL;
  pthread_mutex_lock(&id->lock);
  int64_t now = pm__wall_ns();
  int rc = 0;
  if (!id->token || now + REFRESH_NS >= id->expires_ns) {
    char *fresh = NULL;
    int64_t expires = 0;
    rc = fetch(id, &fresh, &expires);
    if (!rc) {
      pm__ufs_free_secret(&id->token);
      id->token = fresh;
      id->expires_ns = expires;
    } else if (id->token && now < id->expires_ns) {
      PM_LOG_RATELIMITED(PM_LOG_WARN, "azure", 10000,
                         "managed identity: %s; using the token fetched "
                         "before until it expires", pm__errmsg());
      rc = 0;
    } else {
      char why[PM_ERRMSG_MAX];
      snprintf(why, sizeof why, "%s", pm__errmsg());
      rc = pm__errf(PM_EACCES, "managed identity (%s): %s", id->base, why);
    }
  }
  if (!rc && !(*out = strdup(id->token)))
    rc = pm__errf(PM_ENOMEM, "out of memory for the token");
  pthread_mutex_unlock(&id->lock);
  return rc;
}
