/*
 * ufs/azure_int.h - the pieces of the Azure Blob Storage backend worth
 * testing on their own: configuration from the environment and connection
 * strings, az:// and abfs:// URIs and request URLs (ufs/azure_config.c),
 * Shared Key signing (ufs/azure_auth.c) and the List Blobs decoder
 * (ufs/azure_xml.c). ufs/azure.c puts them together.
 */
#ifndef PM_UFS_AZURE_INT_H
#define PM_UFS_AZURE_INT_H

#include <stdbool.h>
#include <time.h>

#include "ufs/ufs_priv.h"

/* The REST API version we speak (x-ms-version). */
#define PM_AZURE_API_VERSION "2021-08-06"
/* Longest connection string or SAS token accepted. */
#define PM_AZURE_CONFIG_MAX 16384
/* Longest container name (3-63 lowercase letters, digits, '-'). */
#define PM_AZURE_CONTAINER_MAX 64
/* Longest account name (3-24) or host suffix taken from a URI. */
#define PM_AZURE_ACCOUNT_MAX 64
#define PM_AZURE_SUFFIX_MAX 128

/* ---- managed identity (ufs/azure_identity.c) --------------------------------
 */

typedef struct pm_azure_identity pm_azure_identity;

/* A managed identity whose tokens come from the metadata service at base
 * ("http://169.254.169.254"); client_id names a user-assigned one (NULL:
 * the machine's own). Errors: PM_ENOMEM. */
int pm__azure_identity_new(const char *base, const char *client_id,
                           pm_azure_identity **out);
/* How an Entra application proves itself. */
typedef enum pm_azure_app_proof {
  PM_AZURE_APP_SECRET,      /* a client secret */
  PM_AZURE_APP_CERTIFICATE, /* an assertion signed with the certificate in
                               a PEM file (ufs/azure_cert.c) */
  PM_AZURE_APP_FEDERATED,   /* the federated token in a file (AKS workload
                               identity) */
} pm_azure_app_proof;

/* An application registered in Microsoft Entra ID whose tokens come from
 * token_url ("https://login.microsoftonline.com/TENANT/oauth2/v2.0/
 * token"), proving itself with `proof`: the secret itself, or the path of
 * the certificate or federated token file (read anew for each token).
 * Errors: PM_ENOMEM. */
int pm__azure_app_new(const char *token_url, const char *client_id,
                      pm_azure_app_proof kind, const char *proof,
                      pm_azure_identity **out);

/* ---- certificates (ufs/azure_cert.c) ---------------------------------- */

/* Whether path is a PEM file with a certificate and its unencrypted RSA
 * private key. Errors: PM_ECONFIG (detail: the path and what is wrong),
 * PM_ENOMEM. */
int pm__azure_cert_check(const char *path);
/* Append to out the client assertion for token_url of application
 * client_id, signed with the certificate at path (read anew). Errors: as
 * pm__azure_cert_check, PM_ETOOBIG. */
int pm__azure_cert_assertion(const char *path, const char *client_id,
                             const char *token_url, pm_sbuf *out);
void pm__azure_identity_free(pm_azure_identity *id);
/* A token for Azure Storage now, as a new string (the caller frees it):
 * the one held, or a new one when there is none or it expires within five
 * minutes. Errors: PM_EACCES (the metadata service or the token endpoint
 * failed, or the federated token file cannot be read, and no unexpired
 * token is left; detail says why), PM_ENOMEM. */
int pm__azure_identity_token(pm_azure_identity *id, char **out);

/* ---- configuration (ufs/azure_config.c) ------------------------------------
 */

typedef struct pm_azure_config {
  char *account;      /* storage account, or NULL */
  unsigned char *key; /* decoded account key (sodium_malloc), or NULL */
  size_t key_len;
  char *sas;            /* SAS token without a leading '?', or NULL */
  char *endpoint;       /* blob endpoint ("http://127.0.0.1:10000/acct"), no
                           trailing '/'; NULL: PROTOCOL://ACCOUNT.blob.SUFFIX */
  char *protocol;       /* "https" unless DefaultEndpointsProtocol says */
  char *suffix;         /* "core.windows.net" unless EndpointSuffix says */
  char *cred_source;    /* where the credentials came from, for the log */
  pm_azure_identity *identity; /* managed identity (bearer tokens), or NULL */
  uint32_t max_results; /* per List Blobs page (1..5000) */
} pm_azure_config;

/*
 * Fill cfg from the environment: AZURE_STORAGE_CONNECTION_STRING first
 * (BlobEndpoint, AccountName, AccountKey, SharedAccessSignature,
 * DefaultEndpointsProtocol, EndpointSuffix, UseDevelopmentStorage=true),
 * then what it left out from AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY,
 * AZURE_STORAGE_SAS_TOKEN and AZURE_STORAGE_BLOB_ENDPOINT.
 * PAGEMESH_AZURE_MAX_RESULTS sets the listing page size. With an account
 * but neither key nor SAS token: an application of Microsoft Entra ID
 * (AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET or
 * AZURE_FEDERATED_TOKEN_FILE; AZURE_AUTHORITY_HOST), else the managed
 * identity, if there is a metadata service to ask
 * (AZURE_POD_IDENTITY_AUTHORITY_HOST, or on an Azure VM; AZURE_CLIENT_ID
 * picks a user-assigned identity; PAGEMESH_AZURE_MANAGED_IDENTITY=off
 * turns it off). No credentials at all means anonymous requests (public
 * containers). Errors (detail names the variable): PM_ECONFIG (malformed
 * connection string, a key that is not base64, a bad endpoint, tenant or
 * authority), PM_ENOMEM. On failure cfg is freed.
 */
int pm__azure_config_load(pm_azure_config *cfg);
/* Apply one connection string to cfg (fields it names replace those set).
 * Errors: PM_ECONFIG, PM_ENOMEM. */
int pm__azure_config_parse(pm_azure_config *cfg, const char *conn);
/* Free and wipe the secrets. Accepts a zeroed config. */
void pm__azure_config_free(pm_azure_config *cfg);

/* ---- URIs and URLs (ufs/azure_config.c) ------------------------------------
 */

/* A parsed "az://container/blob", "az://container@host/blob",
 * "abfs://container@account.dfs.core.windows.net/blob" (or abfss://). */
typedef struct pm_azure_path {
  char container[PM_AZURE_CONTAINER_MAX];
  char account[PM_AZURE_ACCOUNT_MAX]; /* from the host, "" if none */
  char suffix[PM_AZURE_SUFFIX_MAX];   /* "core.windows.net", "" if none */
  const char *blob;                   /* inside the URI; "" for the root */
  size_t root_len; /* bytes of the URI before the blob's '/' */
} pm_azure_path;

/* Parse a normalised URI. Errors: PM_EBADURI (with detail). */
int pm__azure_uri_parse(const char *uri, pm_azure_path *out);

/* Where one request goes and how it is authorised. */
typedef struct pm_azure_target {
  const char *account; /* the account that owns the blob */
  bool own_account;    /* it is the configured one: its key or SAS apply */
} pm_azure_target;

/*
 * Append the request URL of path (blob "" for the container) to url: the
 * blob endpoint, the container, the blob percent-encoded with '/' kept,
 * and "?query" unless query is empty. The configured endpoint serves the
 * configured account; another account named in the URI goes to
 * PROTOCOL://ACCOUNT.blob.SUFFIX. Errors: PM_ECONFIG (no account known),
 * PM_ETOOBIG, PM_ENOMEM.
 */
int pm__azure_url(const pm_azure_config *cfg, const pm_azure_path *path,
                  const char *query, pm_sbuf *url, pm_azure_target *target);

/* ---- Shared Key (ufs/azure_auth.c) -----------------------------------------
 */

/* What of one request is signed. NULL fields are absent headers. */
typedef struct pm_azure_signed {
  const char *method;   /* "GET", "HEAD" */
  const char *url;      /* the full request URL */
  const char *account;  /* the account whose key signs */
  const char *if_match; /* If-Match value */
  const char *range;    /* Range value */
  const char *date;     /* x-ms-date value */
  const char *version;  /* x-ms-version value */
} pm_azure_signed;

/* Append the canonicalized resource of url to out: "/ACCOUNT/PATH" (the
 * path as sent) and, for each query parameter sorted by lowercased name,
 * "\nname:value" with the value decoded (repeated names: values sorted,
 * joined by ','). Errors: PM_EBADURI, PM_ENOMEM, PM_ETOOBIG. */
int pm__azure_canonical_resource(const char *account, const char *url,
                                 pm_sbuf *out);
/* Append the Shared Key string-to-sign of the request (version 2015-02-21
 * and later: an empty Content-Length for no body). Errors: as above. */
int pm__azure_string_to_sign(const pm_azure_signed *req, pm_sbuf *out);
/* The Authorization value "SharedKey ACCOUNT:BASE64(HMAC-SHA256)" of the
 * request into out. Errors: as above. */
int pm__azure_authorization(const pm_azure_signed *req,
                            const unsigned char *key, size_t key_len,
                            pm_sbuf *out);
/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 1123, no locale) into out[30]. */
void pm__azure_http_date(time_t when, char out[30]);

/* ---- List Blobs (ufs/azure_xml.c) ------------------------------------------
 */

#define PM_AZURE_LIST_BODY_MAX (16 * 1024 * 1024)
#define PM_AZURE_MARKER_MAX 4096

/* One <Blob> or <BlobPrefix> of a listing page; strings valid during the
 * callback only. */
typedef struct pm_azure_item {
  const char *name; /* decoded (Encoded="true" names are percent-decoded) */
  bool is_prefix;
  uint64_t size;    /* Content-Length */
  int64_t mtime_ns; /* Last-Modified, 0 if absent or unparsable */
  const char *etag; /* "" for a prefix */
} pm_azure_item;

typedef int (*pm_azure_item_cb)(void *arg, const pm_azure_item *item);

typedef struct pm_azure_list_page {
  char next_marker[PM_AZURE_MARKER_MAX]; /* <NextMarker>, "" on the last */
  size_t items;
} pm_azure_list_page;

/*
 * Decode one List Blobs answer (<EnumerationResults>), calling cb for each
 * blob and prefix in document order. Returns 0, cb's non-zero value, or
 * PM_EPROTO for anything malformed (see ufs/xml.c; also a blob without a
 * name or Content-Length, a bad number, a bad percent-encoding), with
 * detail.
 */
int pm__azure_list_parse(const char *xml, size_t length, pm_azure_item_cb cb,
                         void *arg, pm_azure_list_page *page);

#endif /* PM_UFS_AZURE_INT_H */
