/*
 * ufs/azure_config.c - where Azure Blob requests go and what authorises
 * them: the connection string and the AZURE_STORAGE_* variables that the
 * Azure SDKs and CLI read, az:// and abfs[s]:// URIs as adlfs users write
 * them, and the URL of a container or blob, path-style under a custom
 * endpoint (Azurite: http://127.0.0.1:10000/devstoreaccount1) or on
 * ACCOUNT.blob.SUFFIX. The account key is kept decoded in sodium_malloc
 * memory and wiped when the config is freed.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ufs/azure_int.h"

#define DEFAULT_SUFFIX "core.windows.net"
#define DEFAULT_MAX_RESULTS 5000u
/* Azurite's well-known development account (published by Microsoft). */
#define DEV_ACCOUNT "devstoreaccount1"
#define DEV_KEY                                                                \
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"            \
  "K1SZFPTOtr/KBHBeksoGMGw=="
#define DEV_ENDPOINT "http://127.0.0.1:10000/" DEV_ACCOUNT

static void free_key(pm_azure_config *cfg) {
  if (cfg->key)
    sodium_free(cfg->key); /* wipes it */
  cfg->key = NULL;
  cfg->key_len = 0;
}

void pm__azure_config_free(pm_azure_config *cfg) {
  if (!cfg)
    return;
  free_key(cfg);
  pm__ufs_free_secret(&cfg->sas);
  free(cfg->account);
  free(cfg->endpoint);
  free(cfg->protocol);
  free(cfg->suffix);
  free(cfg->cred_source);
  pm__azure_identity_free(cfg->identity);
  memset(cfg, 0, sizeof *cfg);
}

static int set_span(char **dst, const char *src, size_t n) {
  char *copy = strndup(src, n);
  if (!copy)
    return pm__errf(PM_ENOMEM, "azure config: out of memory");
  pm__ufs_free_secret(dst);
  *dst = copy;
  return 0;
}

static int set_str(char **dst, const char *src) {
  return set_span(dst, src, strlen(src));
}

/* ---- values
 * ------------------------------------------------------------------
 */

static int set_key(pm_azure_config *cfg, const char *b64, size_t n,
                   const char *from) {
  if (n == 0 || n > PM_AZURE_CONFIG_MAX)
    return pm__errf(PM_ECONFIG, "%s: empty or oversized account key", from);
  unsigned char *bin = sodium_malloc(n);
  size_t len = 0;
  if (!bin)
    return pm__errf(PM_ENOMEM, "azure config: out of memory");
  if (sodium_base642bin(bin, n, b64, n, NULL, &len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len == 0) {
    sodium_free(bin);
    return pm__errf(PM_ECONFIG, "%s: the account key is not base64", from);
  }
  free_key(cfg);
  cfg->key = bin;
  cfg->key_len = len;
  return 0;
}

static int set_sas(pm_azure_config *cfg, const char *sas, size_t n) {
  if (n && sas[0] == '?') {
    sas++;
    n--;
  }
  return set_span(&cfg->sas, sas, n);
}

/* "://" within the n bytes at url, or NULL. */
static const char *find_sep(const char *url, size_t n) {
  for (size_t i = 0; i + 3 <= n; i++)
    if (!memcmp(url + i, "://", 3))
      return url + i;
  return NULL;
}

static int set_endpoint(pm_azure_config *cfg, const char *url, size_t n,
                        const char *from) {
  const char *sep = find_sep(url, n);
  bool ok = sep && ((sep - url == 4 && !strncasecmp(url, "http", 4)) ||
                    (sep - url == 5 && !strncasecmp(url, "https", 5)));
  if (!ok || (size_t)(sep + 3 - url) == n || memchr(url, '?', n))
    return pm__errf(PM_ECONFIG,
                    "%s: blob endpoint \"%.*s\" is not an http(s) URL "
                    "without a query",
                    from, (int)PM_MIN(n, 256), url);
  while (n > 0 && url[n - 1] == '/')
    n--;
  return set_span(&cfg->endpoint, url, n);
}

static int set_protocol(pm_azure_config *cfg, const char *v, size_t n) {
  if (!((n == 4 && !strncasecmp(v, "http", 4)) ||
        (n == 5 && !strncasecmp(v, "https", 5))))
    return pm__errf(PM_ECONFIG, "connection string: DefaultEndpointsProtocol "
                                "must be http or https");
  return set_str(&cfg->protocol, n == 4 ? "http" : "https");
}

static int use_dev_storage(pm_azure_config *cfg) {
  int rc = set_str(&cfg->account, DEV_ACCOUNT);
  if (!rc)
    rc = set_endpoint(cfg, DEV_ENDPOINT, strlen(DEV_ENDPOINT), "emulator");
  if (!rc)
    rc = set_key(cfg, DEV_KEY, strlen(DEV_KEY), "emulator");
  return rc;
}

/* ---- connection strings ----------------------------------------------------
 */

static bool name_is(const char *name, size_t n, const char *want) {
  return strlen(want) == n && !strncasecmp(name, want, n);
}

static int conn_field(pm_azure_config *cfg, const char *name, size_t name_len,
                      const char *v, size_t n) {
  static const char from[] = "AZURE_STORAGE_CONNECTION_STRING";
  if (name_is(name, name_len, "AccountName"))
    return set_span(&cfg->account, v, n);
  if (name_is(name, name_len, "AccountKey"))
    return set_key(cfg, v, n, from);
  if (name_is(name, name_len, "SharedAccessSignature"))
    return set_sas(cfg, v, n);
  if (name_is(name, name_len, "BlobEndpoint"))
    return set_endpoint(cfg, v, n, from);
  if (name_is(name, name_len, "DefaultEndpointsProtocol"))
    return set_protocol(cfg, v, n);
  if (name_is(name, name_len, "EndpointSuffix"))
    return set_span(&cfg->suffix, v, n);
  if (name_is(name, name_len, "UseDevelopmentStorage") && name_is(v, n, "true"))
    return use_dev_storage(cfg);
  return 0; /* QueueEndpoint and the like: not ours */
}

static void trim(const char **p, const char **end) {
  while (*p < *end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r'))
    (*p)++;
  while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t' ||
                       (*end)[-1] == '\n' || (*end)[-1] == '\r'))
    (*end)--;
}

int pm__azure_config_parse(pm_azure_config *cfg, const char *conn) {
  if (sodium_init() < 0) /* sodium_malloc needs it; cheap after the first */
    return pm__errf(PM_EIO, "libsodium failed to initialise");
  size_t length = strlen(conn);
  if (length > PM_AZURE_CONFIG_MAX)
    return pm__errf(PM_ECONFIG, "connection string over %d bytes",
                    PM_AZURE_CONFIG_MAX);
  const char *p = conn, *end = conn + length;
  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *f = p, *f_end = semi ? semi : end;
    p = semi ? semi + 1 : end;
    trim(&f, &f_end);
    if (f == f_end)
      continue;
    const char *eq = memchr(f, '=', (size_t)(f_end - f));
    if (!eq || eq == f)
      return pm__errf(PM_ECONFIG,
                      "connection string: \"%.*s\" is not Name=Value",
                      (int)PM_MIN((size_t)(f_end - f), (size_t)64), f);
    const char *name = f, *name_end = eq, *v = eq + 1, *v_end = f_end;
    trim(&name, &name_end);
    trim(&v, &v_end);
    int rc = conn_field(cfg, name, (size_t)(name_end - name), v,
                        (size_t)(v_end - v));
    if (rc)
      return rc;
  }
  return 0;
}

/* ---- loading
 * -----------------------------------------------------------------
 */

/* With an endpoint but no account name (a SAS-only connection string),
 * the SDKs take it from the endpoint: the first path segment of an
 * emulator URL (an IP address or localhost), else the first host label. */
static int account_from_endpoint(pm_azure_config *cfg) {
  const char *host = strstr(cfg->endpoint, "://") + 3;
  size_t host_len = strcspn(host, ":/");
  bool emulator = host[0] == '[' || strspn(host, "0123456789.") == host_len ||
                  name_is(host, host_len, "localhost");
  const char *path = host + strcspn(host, "/");
  const char *name = emulator ? path + (*path == '/') : host;
  size_t n = emulator ? strcspn(name, "/") : strcspn(name, ".:/");
  return n ? set_span(&cfg->account, name, n) : 0;
}

static int load_env_fields(pm_azure_config *cfg) {
  const char *v;
  int rc = 0;
  if (!cfg->account && (v = pm__ufs_env("AZURE_STORAGE_ACCOUNT")))
    rc = set_str(&cfg->account, v);
  if (!rc && !cfg->key && !cfg->sas && (v = pm__ufs_env("AZURE_STORAGE_KEY")))
    rc = set_key(cfg, v, strlen(v), "AZURE_STORAGE_KEY");
  if (!rc && !cfg->key && !cfg->sas &&
      (v = pm__ufs_env("AZURE_STORAGE_SAS_TOKEN")))
    rc = set_sas(cfg, v, strlen(v));
  if (!rc && !cfg->endpoint && (v = pm__ufs_env("AZURE_STORAGE_BLOB_ENDPOINT")))
    rc = set_endpoint(cfg, v, strlen(v), "AZURE_STORAGE_BLOB_ENDPOINT");
  if (!rc && !cfg->account && cfg->endpoint)
    rc = account_from_endpoint(cfg);
  if (!rc && !cfg->protocol)
    rc = set_str(&cfg->protocol, "https");
  if (!rc && !cfg->suffix)
    rc = set_str(&cfg->suffix, DEFAULT_SUFFIX);
  return rc;
}

static int load_max_results(pm_azure_config *cfg) {
  const char *v = pm__ufs_env("PAGEMESH_AZURE_MAX_RESULTS");
  int64_t n = DEFAULT_MAX_RESULTS;
  if (v && (pm__parse_u63(v, strlen(v), &n) || n < 1 || n > 5000))
    return pm__errf(PM_ECONFIG, "PAGEMESH_AZURE_MAX_RESULTS=%s: want 1..5000",
                    v);
  cfg->max_results = (uint32_t)n;
  return 0;
}

/* A tenant is a GUID or a domain name: it goes into the token URL. */
static bool tenant_ok(const char *t) {
  size_t n = strlen(t);
  return n && n <= 128 && strspn(t, "abcdefghijklmnopqrstuvwxyz"
                                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789.-") == n;
}

/* An application of Microsoft Entra ID, as the Azure SDKs' environment
 * and workload identity credentials read it: AZURE_TENANT_ID and
 * AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, else with
 * AZURE_CLIENT_CERTIFICATE_PATH, else with AZURE_FEDERATED_TOKEN_FILE;
 * AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com).
 * *found: one was configured. */
static int load_app(pm_azure_config *cfg, bool *found) {
  const char *tenant = pm__ufs_env("AZURE_TENANT_ID");
  const char *client = pm__ufs_env("AZURE_CLIENT_ID");
  const char *secret = pm__ufs_env("AZURE_CLIENT_SECRET");
  const char *cert = pm__ufs_env("AZURE_CLIENT_CERTIFICATE_PATH");
  const char *file = pm__ufs_env("AZURE_FEDERATED_TOKEN_FILE");
  const char *authority = pm__ufs_env("AZURE_AUTHORITY_HOST");
  *found = tenant && client && (secret || cert || file);
  if (!*found)
    return 0;
  pm_azure_app_proof kind = secret ? PM_AZURE_APP_SECRET
                            : cert ? PM_AZURE_APP_CERTIFICATE
                                   : PM_AZURE_APP_FEDERATED;
  const char *proof = secret ? secret : cert ? cert : file;
  if (kind == PM_AZURE_APP_CERTIFICATE &&
      pm__ufs_env("AZURE_CLIENT_CERTIFICATE_PASSWORD"))
    return pm__errf(PM_ECONFIG, "AZURE_CLIENT_CERTIFICATE_PASSWORD: a "
                                "certificate with a password is not "
                                "supported (give the PEM with an "
                                "unencrypted key)");
  int rc = kind == PM_AZURE_APP_CERTIFICATE ? pm__azure_cert_check(cert) : 0;
  if (rc) {
    char why[PM_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", pm__errmsg());
    return pm__errf(rc, "AZURE_CLIENT_CERTIFICATE_PATH: %s", why);
  }
  if (!tenant_ok(tenant))
    return pm__errf(PM_ECONFIG, "AZURE_TENANT_ID=%.64s: not a tenant ID or "
                                "domain", tenant);
  char given[1100], base[1100], url[1400], source[1600];
  /* the SDKs take a bare host ("login.microsoftonline.us") as https */
  snprintf(given, sizeof given, "%s%s",
           authority && !strstr(authority, "://") ? "https://" : "",
           authority ? authority : "https://login.microsoftonline.com");
  rc = pm__ufs_base_url("AZURE_AUTHORITY_HOST", given, true, base,
                        sizeof base);
  if (rc)
    return rc;
  if (!pm__ufs_url_for_secrets(base))
    return pm__errf(PM_ECONFIG, "AZURE_AUTHORITY_HOST=%.64s: not https:// "
                                "(http:// only to this host)", base);
  snprintf(url, sizeof url, "%s/%s/oauth2/v2.0/token", base, tenant);
  snprintf(source, sizeof source, "Entra application %.64s with %s", client,
           kind == PM_AZURE_APP_SECRET        ? "a client secret"
           : kind == PM_AZURE_APP_CERTIFICATE ? "a certificate"
                                              : "a federated token "
                                                "(workload identity)");
  rc = pm__azure_app_new(url, client, kind, proof, &cfg->identity);
  return rc ? rc : set_str(&cfg->cred_source, source);
}

/* No key and no SAS token for the account: an Entra application's, else
 * its managed identity, where a metadata service can be asked for one
 * (see azure_int.h). */
static int load_identity(pm_azure_config *cfg) {
  const char *off = pm__ufs_env("PAGEMESH_AZURE_MANAGED_IDENTITY");
  const char *base = pm__ufs_env("AZURE_POD_IDENTITY_AUTHORITY_HOST");
  if (cfg->key || cfg->sas || !cfg->account)
    return 0;
  bool app;
  int rc = load_app(cfg, &app);
  if (rc || app || (off && !strcasecmp(off, "off")))
    return rc;
  /* Azure's VMs carry this chassis asset tag (Hyper-V elsewhere not). */
  if (!base && !pm__ufs_cloud_is("7783-7084-3265-9085"))
    return 0;
  if (!base)
    base = "http://169.254.169.254";
  char trimmed[1100], source[1200];
  rc = pm__ufs_base_url("AZURE_POD_IDENTITY_AUTHORITY_HOST", base, false,
                        trimmed, sizeof trimmed);
  if (rc)
    return rc;
  const char *client = pm__ufs_env("AZURE_CLIENT_ID");
  snprintf(source, sizeof source, "managed identity%s%s (%s)",
           client ? " " : "", client ? client : "", trimmed);
  rc = pm__azure_identity_new(trimmed, client, &cfg->identity);
  return rc ? rc : set_str(&cfg->cred_source, source);
}

int pm__azure_config_load(pm_azure_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  if (sodium_init() < 0)
    return pm__errf(PM_EIO, "libsodium failed to initialise");
  const char *conn = pm__ufs_env("AZURE_STORAGE_CONNECTION_STRING");
  int rc = conn ? pm__azure_config_parse(cfg, conn) : 0;
  if (!rc)
    rc = load_env_fields(cfg);
  if (!rc)
    rc = load_max_results(cfg);
  if (!rc)
    rc = set_str(&cfg->cred_source, cfg->key   ? "shared key"
                                    : cfg->sas ? "SAS token"
                                               : "anonymous");
  if (!rc)
    rc = load_identity(cfg);
  if (rc)
    pm__azure_config_free(cfg);
  return rc;
}

/* ---- URIs
 * --------------------------------------------------------------------
 */

static bool container_valid(const char *c, size_t n) {
  if (n < 3 || n >= PM_AZURE_CONTAINER_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= '0' && c[i] <= '9') ||
          c[i] == '-' || (c[i] == '$' && i == 0)))
      return false;
  return true;
}

/* "account.dfs.core.windows.net" (or .blob.): the account and suffix. */
static int parse_host(const char *uri, const char *host, size_t n,
                      pm_azure_path *out) {
  size_t account_len = strcspn(host, ".");
  account_len = PM_MIN(account_len, n);
  const char *service = host + account_len + 1;
  const char *suffix = NULL;
  if (account_len < n &&
      (!strncmp(service, "dfs.", 4) || !strncmp(service, "blob.", 5)))
    suffix = service + (service[0] == 'd' ? 4 : 5);
  size_t suffix_len = suffix ? n - (size_t)(suffix - host) : 0;
  if (account_len == 0 || account_len >= sizeof out->account ||
      strspn(host, "abcdefghijklmnopqrstuvwxyz0123456789") < account_len ||
      suffix_len >= sizeof out->suffix || (account_len < n && !suffix))
    return pm__errf(PM_EBADURI,
                    "%s: want container@ACCOUNT.dfs.SUFFIX or "
                    "container@ACCOUNT.blob.SUFFIX",
                    uri);
  memcpy(out->account, host, account_len);
  out->account[account_len] = '\0';
  memcpy(out->suffix, suffix ? suffix : "", suffix_len);
  out->suffix[suffix_len] = '\0';
  return 0;
}

int pm__azure_uri_parse(const char *uri, pm_azure_path *out) {
  memset(out, 0, sizeof *out);
  char scheme[16];
  int prefix = pm__uri_scheme(uri, scheme, sizeof scheme);
  if (prefix <= 0 || (strcmp(scheme, "az") && strcmp(scheme, "abfs") &&
                      strcmp(scheme, "abfss")))
    return pm__errf(PM_EBADURI, "%s: not an az:// or abfs:// URI", uri);
  const char *auth = uri + prefix;
  size_t auth_len = strcspn(auth, "/");
  const char *at = memchr(auth, '@', auth_len);
  size_t container_len = at ? (size_t)(at - auth) : auth_len;
  if (!container_valid(auth, container_len))
    return pm__errf(PM_EBADURI,
                    "%s: bad container name \"%.*s\" (3-63 lowercase "
                    "letters, digits, '-')",
                    uri, (int)PM_MIN(container_len, (size_t)64), auth);
  memcpy(out->container, auth, container_len);
  out->container[container_len] = '\0';
  if (at) {
    int rc = parse_host(uri, at + 1, auth_len - container_len - 1, out);
    if (rc)
      return rc;
  }
  out->root_len = (size_t)prefix + auth_len;
  out->blob = auth[auth_len] == '/' ? auth + auth_len + 1 : "";
  return 0;
}

int pm__azure_url(const pm_azure_config *cfg, const pm_azure_path *path,
                  const char *query, pm_sbuf *url, pm_azure_target *target) {
  const char *account = path->account[0] ? path->account : cfg->account;
  if (!account)
    return pm__errf(PM_ECONFIG,
                    "no storage account: set AZURE_STORAGE_ACCOUNT or "
                    "AZURE_STORAGE_CONNECTION_STRING, or name it in the "
                    "URI (abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/)");
  target->account = account;
  target->own_account = cfg->account && !strcmp(account, cfg->account);
  if (target->own_account && cfg->endpoint)
    pm__sbuf_puts(url, cfg->endpoint);
  else
    pm__sbuf_printf(url, "%s://%s.blob.%s",
                    cfg->protocol ? cfg->protocol : "https", account,
                    path->suffix[0] ? path->suffix
                    : cfg->suffix   ? cfg->suffix
                                    : DEFAULT_SUFFIX);
  pm__sbuf_printf(url, "/%s", path->container);
  if (*path->blob) {
    pm__sbuf_puts(url, "/");
    pm__uri_encode(url, path->blob, strlen(path->blob), true);
  }
  if (query && *query)
    pm__sbuf_printf(url, "?%s", query);
  return url->err ? pm__errf(url->err, "request URL too long") : 0;
}
