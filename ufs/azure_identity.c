/*
 * ufs/azure_identity.c - OAuth tokens for Azure Storage, sent as bearer
 * tokens to the configured account when it has no key and no SAS token,
 * from one of two places:
 *
 *   - the managed identity of an Azure VM (or of an AKS node or pod
 *     through the same endpoint): GET {base}/metadata/identity/oauth2/
 *     token?api-version=2018-02-01&resource=https://storage.azure.com/
 *     (&client_id= for a user-assigned identity) with "Metadata: true";
 *   - an application registered in Microsoft Entra ID, with a client
 *     secret, a certificate (ufs/azure_cert.c), or a federated token (AKS
 *     workload identity: the projected service account token in a file,
 *     read anew each time):
 *     POST {authority}/{tenant}/oauth2/v2.0/token, grant_type=
 *     client_credentials, scope=https://storage.azure.com/.default.
 *
 * The token is fetched by the first request that needs it and again
 * within REFRESH_NS of its expiry (one thread fetches; the others wait);
 * a failed refetch keeps a token that has not expired yet.
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

#define APP_SCOPE "https://storage.azure.com/.default"
#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define ASSERTION_MAX (16u * 1024u)
#define FORM_MAX (64u * 1024u)

struct pm_azure_identity {
  pthread_mutex_t lock;
  char *base;      /* managed: "http://169.254.169.254"; an application:
                      its token URL */
  char *client_id; /* a user-assigned identity's (or NULL); an app's */
  bool app;        /* an Entra application, else a managed identity */
  pm_azure_app_proof proof;
  char *secret;    /* the app's client secret, or NULL */
  char *proof_file; /* else its certificate's or federated token's file */
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
  pm__ufs_free_secret(&id->secret);
  free(id->proof_file);
  free(id->base);
  free(id->client_id);
  free(id);
}

int pm__azure_app_new(const char *token_url, const char *client_id,
                      pm_azure_app_proof kind, const char *proof,
                      pm_azure_identity **out) {
  int rc = pm__azure_identity_new(token_url, client_id, out);
  if (rc)
    return rc;
  pm_azure_identity *id = *out;
  id->app = true;
  id->proof = kind;
  char **slot = kind == PM_AZURE_APP_SECRET ? &id->secret : &id->proof_file;
  if (!(*slot = strdup(proof))) {
    pm__azure_identity_free(id);
    *out = NULL;
    return pm__errf(PM_ENOMEM, "azure config: out of memory");
  }
  return 0;
}

/* A token of the application's from Entra ID's token endpoint. */
static int fetch_app(const pm_azure_identity *id, pm_sbuf *body,
                     long *status) {
  pm_sbuf form, assertion;
  pm__sbuf_init(&form, FORM_MAX);
  pm__sbuf_init(&assertion, ASSERTION_MAX);
  int rc = 0;
  pm__form_field(&form, "grant_type", "client_credentials");
  pm__form_field(&form, "client_id", id->client_id);
  pm__form_field(&form, "scope", APP_SCOPE);
  if (id->proof == PM_AZURE_APP_SECRET) {
    pm__form_field(&form, "client_secret", id->secret);
  } else {
    rc = id->proof == PM_AZURE_APP_CERTIFICATE
             ? pm__azure_cert_assertion(id->proof_file, id->client_id,
                                        id->base, &assertion)
             : pm__ufs_read_token_file(id->proof_file, &assertion);
    pm__form_field(&form, "client_assertion_type", ASSERTION_TYPE);
    if (!rc)
      pm__form_field(&form, "client_assertion", pm__sbuf_str(&assertion));
  }
  if (!rc && form.err)
    rc = pm__errf(PM_ETOOBIG, "token request too long");
  if (!rc)
    rc = pm__form_post(id->base, pm__sbuf_str(&form), body, status);
  pm__sbuf_free_secret(&form);
  pm__sbuf_free_secret(&assertion);
  return rc;
}

/* A token from the metadata service. */
static int fetch_managed(const pm_azure_identity *id, pm_sbuf *body,
                         long *status) {
  pm_sbuf path;
  pm__sbuf_init(&path, 4096);
  pm__sbuf_puts(&path, TOKEN_PATH);
  if (id->client_id) {
    pm__sbuf_puts(&path, "&client_id=");
    pm__uri_encode(&path, id->client_id, strlen(id->client_id), false);
  }
  int rc = path.err ? pm__errf(PM_ETOOBIG, "AZURE_CLIENT_ID too long")
                    : pm__metadata_call(id->base, pm__sbuf_str(&path), false,
                                        "Metadata", "true", body, status);
  if (!rc && *status != 200)
    rc = pm__errf(PM_EACCES, "token: HTTP %ld%s", *status,
                  *status == 400 ? " (no managed identity on this machine, "
                                   "or not the one AZURE_CLIENT_ID names?)"
                                 : "");
  pm__sbuf_free(&path);
  return rc;
}

/* A token into *token, and its expiry. */
static int fetch(const pm_azure_identity *id, char **token,
                 int64_t *expires_ns) {
  pm_sbuf body;
  pm__sbuf_init(&body, ANSWER_MAX);
  long status = 0;
  int rc = id->app ? fetch_app(id, &body, &status)
                   : fetch_managed(id, &body, &status);
  if (!rc) /* (a managed identity's refusal was said by fetch_managed) */
    rc = pm__oauth_answer(id->base, status, &body, token, expires_ns);
  pm__sbuf_free_secret(&body);
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
                         "%s: %s; using the token fetched before until it "
                         "expires", id->app ? "application" : "managed identity",
                         pm__errmsg());
      rc = 0;
    } else {
      char why[PM_ERRMSG_MAX];
      snprintf(why, sizeof why, "%s", pm__errmsg());
      rc = pm__errf(PM_EACCES, "%s (%s): %s",
                    id->app ? "Entra application" : "managed identity",
                    id->app ? id->client_id : id->base, why);
    }
  }
  if (!rc && !(*out = strdup(id->token)))
    rc = pm__errf(PM_ENOMEM, "out of memory for the token");
  pthread_mutex_unlock(&id->lock);
  return rc;
}
