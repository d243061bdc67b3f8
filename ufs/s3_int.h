/*
 * ufs/s3_int.h - the pieces of the S3 backend that are worth testing on
 * their own: where requests go and who signs them (ufs/s3_config.c: the
 * AWS environment variables, the shared credentials and config files, URL
 * building for path-style and virtual-host addressing), and the decoding
 * of S3's XML answers (ufs/s3_xml.c). ufs/s3.c puts them together.
 */
#ifndef PM_UFS_S3_INT_H
#define PM_UFS_S3_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "ufs/curl_int.h"

/* ---- configuration (ufs/s3_config.c) ---------------------------------------
 */

/* Largest credentials or config file read (bigger ones are refused). */
#define PM_S3_INI_MAX (1024 * 1024)
/* Longest value taken from them (session tokens run to a few KiB). */
#define PM_S3_VALUE_MAX 8192

/* Where the keys come from. */
typedef enum pm_s3_cred_kind {
  PM_S3_CREDS_FIXED = 0, /* environment, files, or none (anonymous) */
  PM_S3_CREDS_PROCESS,   /* credential_process of the profile */
  PM_S3_CREDS_IMDS,      /* the EC2 instance's role (IMDSv2) */
  PM_S3_CREDS_GCE,       /* a GCE service account's token (GCS) */
  PM_S3_CREDS_WEB_IDENTITY, /* STS AssumeRoleWithWebIdentity (EKS IRSA) */
  PM_S3_CREDS_GOOGLE_ADC,   /* Google application default credentials */
  PM_S3_CREDS_ASSUME_ROLE,  /* STS AssumeRole with a source's keys */
  PM_S3_CREDS_CONTAINER,    /* ECS task role, EKS Pod Identity */
  PM_S3_CREDS_SSO,          /* IAM Identity Center (aws sso login) */
} pm_s3_cred_kind;

typedef struct pm_s3_fetched pm_s3_fetched;

typedef struct pm_s3_config {
  char *scheme;         /* "https" or "http" */
  char *host;           /* "host[:port]" of the endpoint */
  char *base_path;      /* "" or "/prefix" the endpoint URL carried */
  bool custom_endpoint; /* AWS_ENDPOINT_URL[_S3] was given */
  bool path_style;      /* bucket in the path, not in the host name */
  char *region;
  char *access_key; /* NULL: anonymous requests */
  char *secret_key;
  char *session_token; /* NULL if none */
  char *bearer_token;  /* OAuth token sent instead of signing (GCS), or
                          NULL */
  char *cred_source;   /* "environment", "profile NAME in FILE", ... */
  uint32_t max_keys;   /* per ListObjectsV2 page (1..1000) */
  /* Keys fetched by requests (ufs/s3_creds.c): access_key and the rest
   * are then set and replaced under fetched->lock. */
  pm_s3_cred_kind cred_kind;
  char *cred_process;  /* PM_S3_CREDS_PROCESS: the command */
  char *imds_endpoint; /* IMDS: "http://169.254.169.254"; GCE:
                          "http://metadata.google.internal" */
  pm_s3_fetched *fetched; /* NULL for keys that never change */
  /* PM_S3_CREDS_WEB_IDENTITY: the role, its token file, the session name
   * and STS's endpoint ("https://sts.REGION.amazonaws.com"). */
  char *role_arn, *web_token_file, *role_session, *sts_endpoint;
  char *adc_file; /* PM_S3_CREDS_GOOGLE_ADC: the credentials file */
  /* PM_S3_CREDS_ASSUME_ROLE: role_arn, role_session and sts_endpoint as
   * above, the profile's external_id (or NULL), and the configuration
   * whose keys ask STS (a source profile, the environment, the instance
   * role; itself perhaps a role: a chain). */
  char *external_id;
  struct pm_s3_config *source;
  /* PM_S3_CREDS_CONTAINER: the credentials URL, and what authorizes the
   * call: a token file read for each fetch, or a token (a secret), or
   * neither (ufs/s3_container.c). */
  char *container_url, *container_token_file, *container_token;
  /* PM_S3_CREDS_SSO: the portal's base URL, the cached login's file, the
   * account and role, and the profile (ufs/s3_sso.c). */
  char *sso_portal, *sso_cache_file, *sso_account, *sso_role, *sso_profile;
} pm_s3_config;

/*
 * Fill cfg from the environment and the AWS files. Endpoint:
 * AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else AWS
 * (https://s3.REGION.amazonaws.com). Region: AWS_REGION, else
 * AWS_DEFAULT_REGION, else the profile's region in AWS_CONFIG_FILE
 * (~/.aws/config), else us-east-1. Addressing: AWS_S3_ADDRESSING_STYLE
 * ("path", "virtual", "auto"); auto is path-style with a custom endpoint,
 * virtual-host on AWS. Credentials: AWS_ACCESS_KEY_ID +
 * AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else the profile
 * (AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default") in
 * AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) or in the config file;
 * none: anonymous. PAGEMESH_S3_MAX_KEYS sets the listing page size.
 * Errors (detail names the variable or file): PM_ECONFIG (bad value, only
 * half of a key pair, a named profile that does not exist), PM_ENOMEM.
 * On failure cfg is freed.
 */
int pm__s3_config_load(pm_s3_config *cfg);
/* Free and wipe the secrets. Accepts a zeroed config. */
void pm__s3_config_free(pm_s3_config *cfg);
/* Replace the string *dst by a copy of src. Errors: PM_ENOMEM. */
int pm__s3_config_set(char **dst, const char *src);
/* Set cfg->max_keys from the variable `var` (1..1000; unset: 1000).
 * Errors: PM_ECONFIG. */
int pm__s3_config_max_keys(pm_s3_config *cfg, const char *var);
/* Parse an endpoint URL ("http://127.0.0.1:9000", optionally with a path)
 * into cfg. Errors: PM_ECONFIG, PM_ENOMEM. */
int pm__s3_config_endpoint(pm_s3_config *cfg, const char *url);

/*
 * Find `key` in `[section]` of INI text (the AWS shared file format:
 * '#'/';' comments, "key = value", keys compared without case, indented
 * lines belong to a nested block and are skipped, CRLF and a UTF-8 BOM
 * accepted). Returns 1 and the trimmed value in out, 0 if absent, or
 * PM_ETOOBIG if the value does not fit. *section_seen (may be NULL) is set
 * if the section exists at all.
 */
int pm__ini_get(const char *text, size_t length, const char *section,
                const char *key, char *out, size_t out_size,
                bool *section_seen);

/* Append the URL of bucket/key (key "" for the bucket itself) to out, the
 * key percent-encoded with '/' kept, then "?query" if query is not empty.
 * region: the bucket's, when S3 named another than cfg->region (on AWS's
 * endpoints the host is then that region's), or NULL.
 * Virtual-host addressing falls back to path-style for a bucket name that
 * is not a valid DNS label set (uppercase, '_') or that holds a '.' under
 * https (the wildcard certificate would not match). */
int pm__s3_url(const pm_s3_config *cfg, const char *bucket, const char *key,
               const char *query, const char *region, pm_sbuf *out);

/* ---- keys (ufs/s3_creds.c) ------------------------------------------------
 */

/* The keys that sign one request: copies, wiped by pm__s3_keys_free. All
 * NULL: send it unsigned. */
typedef struct pm_s3_keys {
  char *access_key, *secret_key, *session_token;
  char *bearer; /* an OAuth token sent instead of signing (GCS), or NULL */
} pm_s3_keys;

/* The keys for a request now: fixed ones, or fetched ones (fetched first,
 * or again when they expire within five minutes). Errors: PM_EACCES (the
 * credential source failed and no unexpired keys are left; detail says
 * why), PM_ENOMEM. */
int pm__s3_keys_get(pm_s3_config *cfg, pm_s3_keys *out);
void pm__s3_keys_free(pm_s3_keys *keys);
/* Set up / free cfg->fetched. Errors: PM_ENOMEM. */
int pm__s3_fetched_new(pm_s3_config *cfg);
void pm__s3_fetched_free(pm_s3_config *cfg);
/* Who answered with keys, in what form. */
typedef enum pm_s3_creds_form {
  PM_S3_FORM_PROCESS = 0, /* a credential_process: Version 1, AccessKeyId,
                             SecretAccessKey, optional SessionToken and
                             Expiration */
  PM_S3_FORM_IMDS,        /* IMDS for a role: Code "Success", AccessKeyId,
                             SecretAccessKey, Token, Expiration */
  PM_S3_FORM_CONTAINER,   /* the container endpoint: AccessKeyId,
                             SecretAccessKey, Token, Expiration */
} pm_s3_creds_form;

/* Decode keys in `form` into keys (allocated; free them) and *expires_ns
 * (wall clock ns, 0: never). Network input: PM_EPROTO with detail for
 * anything else, PM_ENOMEM. */
int pm__s3_parse_creds(const char *text, size_t length, pm_s3_creds_form form,
                       pm_s3_keys *keys, int64_t *expires_ns);

/* ---- IAM Identity Center (ufs/s3_sso.c) ------------------------------- */

/* The SSO settings of `profile` (its `section` in the config file's
 * text, at path): sso_account_id and sso_role_name, with sso_session
 * (whose [sso-session NAME] has sso_start_url and sso_region) or, the
 * legacy form, sso_start_url and sso_region in the profile itself. Sets
 * cfg up to fetch the role's keys with the login `aws sso login` cached
 * and *used, or leaves it alone without SSO settings. Errors: PM_ECONFIG
 * (settings missing or too long; detail names them), PM_ENOMEM. */
int pm__s3_creds_from_sso(pm_s3_config *cfg, const char *profile,
                          const char *text, size_t length, const char *path,
                          const char *section, bool *used);
/* The role's keys from the portal's GetRoleCredentials, asked with the
 * cached login. Errors: PM_EACCES (no login cached, or expired, or
 * refused: detail says to run `aws sso login`), PM_EUNREACHABLE,
 * PM_EPROTO, PM_ENOMEM. */
int pm__s3_sso_fetch(const pm_s3_config *cfg, pm_s3_keys *keys,
                     int64_t *expires_ns);
/* GetRoleCredentials' answer ({"roleCredentials": {"accessKeyId",
 * "secretAccessKey", "sessionToken", "expiration": ms since the epoch}})
 * into keys and *expires_ns. Network input: PM_EPROTO, PM_ENOMEM. */
int pm__s3_sso_parse(const char *text, size_t length, pm_s3_keys *keys,
                     int64_t *expires_ns);

/* ---- the container credentials endpoint (ufs/s3_container.c) ----------- */

/* The container provider, as botocore's: AWS_CONTAINER_CREDENTIALS_-
 * RELATIVE_URI (an ECS task role: http://169.254.170.2 followed by it),
 * else AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity, a sidecar:
 * https, or http to a loopback address or to ECS's or EKS's link-local
 * one), its call authorized by AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 * (read for each fetch) or AWS_CONTAINER_AUTHORIZATION_TOKEN. Sets cfg up
 * to fetch from it and *used, or leaves it alone when neither variable is
 * set. Errors: PM_ECONFIG (a relative URI without its leading '/', a full
 * URI of another host or scheme), PM_ENOMEM. */
int pm__s3_creds_from_container(pm_s3_config *cfg, bool *used);
/* Fetch the keys from cfg's container endpoint. Errors: PM_EACCES (the
 * token file, the call, the HTTP status), PM_EPROTO (the answer),
 * PM_EUNREACHABLE, PM_ENOMEM. */
int pm__s3_container_fetch(const pm_s3_config *cfg, pm_s3_keys *keys,
                           int64_t *expires_ns);

/* ---- XML answers (ufs/s3_xml.c) --------------------------------------------
 */

/* Caps on what is accepted from the network. */
#define PM_S3_LIST_BODY_MAX (16 * 1024 * 1024)
#define PM_S3_XML_TEXT_MAX (64 * 1024) /* PM_XML_TEXT_MAX */
#define PM_S3_XML_DEPTH_MAX 16         /* PM_XML_DEPTH_MAX */
#define PM_S3_TOKEN_MAX 4096

/* One <Contents> object or <CommonPrefixes> prefix of a listing page. The
 * strings are decoded, NUL-terminated and valid during the callback. */
typedef struct pm_s3_item {
  const char *key; /* the object key or the prefix */
  bool is_prefix;
  uint64_t size;
  int64_t mtime_ns; /* 0 if absent or unparsable */
  const char *etag; /* raw, quotes included; "" for a prefix */
} pm_s3_item;

/* Non-zero stops the parse; the value is returned by pm__s3_list_parse. */
typedef int (*pm_s3_item_cb)(void *arg, const pm_s3_item *item);

typedef struct pm_s3_list_page {
  bool truncated;                   /* <IsTruncated>true */
  char next_token[PM_S3_TOKEN_MAX]; /* <NextContinuationToken>, or "" */
  size_t items;                     /* objects and prefixes seen */
} pm_s3_list_page;

/*
 * Decode one ListObjectsV2 answer, calling cb for each object and prefix
 * in document order. Returns 0, cb's non-zero value, or PM_EPROTO for
 * anything malformed (truncated, mismatched tags, unknown entities, a
 * DOCTYPE, NUL bytes, a root that is not ListBucketResult, an object
 * without a key or with a bad size, text over PM_S3_XML_TEXT_MAX, nesting
 * over PM_S3_XML_DEPTH_MAX), with detail.
 */
int pm__s3_list_parse(const char *xml, size_t length, pm_s3_item_cb cb,
                      void *arg, pm_s3_list_page *page);

/* Pull <Code> and <Message> out of an S3 <Error> document, or out of the
 * <ErrorResponse><Error> of the query APIs (STS). Returns 0 if it is one
 * (either may be "" if absent), PM_EPROTO otherwise. */
int pm__s3_error_parse(const char *xml, size_t length, char *code,
                       size_t code_size, char *message, size_t message_size);
/* The <Region> of an S3 <Error> document (what a 400
 * AuthorizationHeaderMalformed names), "" if absent. Returns 0 if it is
 * an error document, PM_EPROTO otherwise. */
int pm__s3_error_region(const char *xml, size_t length, char *region,
                        size_t region_size);

/* Decode STS's answer to AssumeRoleWithWebIdentity or AssumeRole: the
 * AccessKeyId,
 * SecretAccessKey, SessionToken (into keys, allocated: free them) and
 * Expiration (*expires_ns, wall clock) of its <Credentials>, all four
 * required. Network input: PM_EPROTO with detail (nothing handed out),
 * PM_ENOMEM. */
int pm__sts_parse_credentials(const char *xml, size_t length,
                              pm_s3_keys *keys, int64_t *expires_ns);

/* "2009-10-12T17:50:30.000Z" (or with an offset, "...:30+01:00") to ns
 * since the epoch; 0 or PM_EPROTO. */
int pm__s3_parse_time(const char *text, int64_t *out_ns);

/* ---- the request engine (ufs/s3.c), shared with GCS ----------------------
 */

/* The object of the S3 backend and of the GCS backend (ufs/gcs.c): the
 * same requests against another endpoint with other credentials. */
/* ---- bucket regions (ufs/s3_region.c) -------------------------------------
 */

#define PM_S3_REGION_MAX 32
#define PM_S3_REGIONS_MAX 64

/* The regions S3 named for buckets, under lock. */
typedef struct pm_s3_regions {
  pthread_mutex_t lock;
  size_t count, next; /* next: the slot a new bucket takes */
  char bucket[PM_S3_REGIONS_MAX][PM_BUCKET_MAX + 1];
  char region[PM_S3_REGIONS_MAX][PM_S3_REGION_MAX];
} pm_s3_regions;

void pm__s3_regions_init(pm_s3_regions *r);
void pm__s3_regions_fini(pm_s3_regions *r);
/* Is this a region name ([a-z0-9-], under PM_S3_REGION_MAX)? */
bool pm__s3_region_valid(const char *region, size_t length);
/* The region learnt for bucket, else fallback, into out. */
void pm__s3_region_of(pm_s3_regions *r, const char *bucket,
                      const char *fallback, char out[PM_S3_REGION_MAX]);
/* Remember bucket's region (an invalid name is ignored). */
void pm__s3_region_learn(pm_s3_regions *r, const char *bucket,
                         const char *region);

typedef struct pm_s3_ufs {
  pm_ufs base;
  pm_s3_config cfg;
  pm_curl_pool pool;
  pm_s3_regions regions;
  /* GCS: ask for the stored bytes (Accept-Encoding: gzip). An object
   * stored gzip-compressed is otherwise served decompressed, whole, with
   * Range ignored: other bytes than its stat's size and ETag say. */
  bool stored_bytes;
} pm_s3_ufs;

/* Once cfg is loaded: set up the handle pool and the signer, and log
 * where requests go (as subsystem `name`: "s3" also trusts AWS_CA_BUNDLE).
 * Errors: as pm__curl_pool_init. */
int pm__s3_engine_start(pm_s3_ufs *s3, const char *name);
/* The methods, for a backend whose object is a pm_s3_ufs. */
void pm__s3_fini(pm_ufs *self);
int pm__s3_stat(pm_ufs *self, const char *uri, pm_object_stat *out);
ssize_t pm__s3_read(pm_ufs *self, const char *uri, const pm_object_stat *expect,
                    uint64_t offset, void *buf, size_t length);
int pm__s3_list(pm_ufs *self, const char *uri, unsigned flags,
                pm_ufs_list_cb cb, void *arg);

/* ---- GCS (ufs/gcs.c)
 * ---------------------------------------------------------
 */

/*
 * Fill cfg for GCS's XML API from the environment. Endpoint:
 * GCS_ENDPOINT_URL, else STORAGE_EMULATOR_HOST (as the Google SDKs read
 * it; "host:port" means http://), else https://storage.googleapis.com;
 * always path-style, region "auto". Credentials: GCS_HMAC_ACCESS_ID +
 * GCS_HMAC_SECRET (HMAC keys, requests signed AWS4-HMAC-SHA256 as GCS's
 * interoperability mode accepts), else an OAuth access token from
 * GOOGLE_OAUTH_ACCESS_TOKEN or CLOUDSDK_AUTH_ACCESS_TOKEN (sent as
 * "Authorization: Bearer"), else anonymous (public buckets).
 * PAGEMESH_GCS_MAX_KEYS sets the listing page size. Errors: PM_ECONFIG
 * (half an HMAC pair, a bad endpoint or page size), PM_ENOMEM.
 */
int pm__gcs_config_load(pm_s3_config *cfg);

/* ---- Google application default credentials (ufs/gcs_adc.c) ------------ */

typedef struct pm_gcs_adc {
  bool service_account; /* else an authorized user, or: */
  bool external;        /* an external account (ufs/gcs_external.c) */
  char *client_id, *client_secret, *refresh_token; /* authorized_user */
  char *client_email, *private_key, *private_key_id; /* service_account */
  char *token_uri; /* https://, or http:// to this host (external: STS) */
  /* external_account: the pool provider, the subject token's type and
   * where it is (a file, or a URL with at most one header), the member of
   * its JSON that holds it (NULL: the text itself), and the service
   * account to impersonate (generateAccessToken URL), or NULL. */
  char *audience, *subject_token_type, *source_file, *source_url;
  char *source_header, *source_header_value, *source_field;
  char *impersonation_url;
} pm_gcs_adc;

/* Decode a credentials file (JSON of type authorized_user or
 * service_account) into out (free it with pm__gcs_adc_free). Errors:
 * PM_ECONFIG (detail: what is wrong or missing, or the unsupported type),
 * PM_ENOMEM; out is then empty. */
int pm__gcs_adc_parse(const char *text, size_t length, pm_gcs_adc *out);
/* A string member of a credentials file's JSON object obj, copied into
 * *out; missing or empty is PM_ECONFIG when required, as is one over
 * 64 KiB. Errors: PM_ECONFIG, PM_ENOMEM. */
int pm__gcs_member(void *obj, const char *name, bool required, char **out);
/* The external_account members of a credentials file (root: its JSON
 * object) into out. Errors: PM_ECONFIG (what is missing or unsupported:
 * AWS-sourced, executable-sourced, workforce pools), PM_ENOMEM. */
int pm__gcs_external_parse(void *root, pm_gcs_adc *out);
/* Trade an external account's subject token at STS for an access token,
 * then, if it names one, for its service account's (keys->bearer,
 * *expires_ns). Errors: PM_EACCES (the subject token cannot be read, or
 * an endpoint refused: detail says which and why), PM_EUNREACHABLE,
 * PM_EPROTO, PM_ENOMEM. */
int pm__gcs_external_trade(const pm_gcs_adc *adc, pm_s3_keys *keys,
                           int64_t *expires_ns);
/* The subject token in raw (what a credential_source file or URL gave):
 * the text itself (field NULL), or the string member `field` of its JSON,
 * appended to out (whose cap bounds it). Network input: PM_EACCES (no
 * such member, over out's cap), PM_ENOMEM. */
int pm__gcs_subject_pick(const char *field, const pm_sbuf *raw,
                         pm_sbuf *out);
/* The IAM Credentials API's answer to generateAccessToken (status, body:
 * {"accessToken", "expireTime"}, or {"error": {"message", ...}}) into a
 * new *token and its expiry. Network input: PM_EACCES naming url, the
 * status and the message (control characters blanked), PM_EPROTO,
 * PM_ENOMEM. */
int pm__gcs_iam_answer(const char *url, long status, const pm_sbuf *body,
                       char **token, int64_t *expires_ns);
void pm__gcs_adc_free(pm_gcs_adc *a);
/* Find the credentials file (GOOGLE_APPLICATION_CREDENTIALS, else
 * $CLOUDSDK_CONFIG or ~/.config/gcloud/application_default_credentials
 * .json) and, if there is one, check it and set cfg up to fetch tokens
 * with it (*found true). Errors: PM_ECONFIG (the file named cannot be
 * read, or is not one pm__gcs_adc_parse takes; detail names it),
 * PM_ENOMEM. */
int pm__gcs_adc_load(pm_s3_config *cfg, bool *found);
/* Read the file at path again and trade it at its token endpoint for an
 * access token (keys->bearer) and its expiry. Errors: PM_ECONFIG (the
 * file), PM_EACCES (the endpoint refused: detail has its HTTP status and
 * OAuth error), PM_EUNREACHABLE, PM_EPROTO (an answer that is not a
 * token), PM_ENOMEM. */
int pm__gcs_adc_fetch(const char *path, pm_s3_keys *keys,
                      int64_t *expires_ns);

#endif /* PM_UFS_S3_INT_H */
