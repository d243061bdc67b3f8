/*
 * ufs/s3_config.c - where S3 requests go and whose keys sign them: the
 * standard AWS environment variables, the shared credentials and config
 * files (a careful reader of their INI dialect), and the URL of an object
 * under path-style or virtual-host addressing. Environment variables win
 * over files; without any credentials requests are sent unsigned
 * (anonymous). Secrets are wiped from memory when the config is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ufs/s3_int.h"

#define DEFAULT_REGION "us-east-1"
#define DEFAULT_MAX_KEYS 1000u

void pm__s3_config_free(pm_s3_config *cfg) {
  if (!cfg)
    return;
  free(cfg->scheme);
  free(cfg->host);
  free(cfg->base_path);
  free(cfg->region);
  free(cfg->cred_source);
  pm__ufs_free_secret(&cfg->access_key);
  pm__ufs_free_secret(&cfg->secret_key);
  pm__ufs_free_secret(&cfg->session_token);
  pm__ufs_free_secret(&cfg->bearer_token);
  free(cfg->cred_process);
  free(cfg->imds_endpoint);
  free(cfg->role_arn);
  free(cfg->web_token_file);
  free(cfg->role_session);
  free(cfg->sts_endpoint);
  free(cfg->adc_file);
  free(cfg->external_id);
  free(cfg->container_url);
  free(cfg->container_token_file);
  pm__ufs_free_secret(&cfg->container_token);
  free(cfg->sso_portal);
  free(cfg->sso_cache_file);
  free(cfg->sso_account);
  free(cfg->sso_role);
  free(cfg->sso_profile);
  if (cfg->source) {
    pm__s3_config_free(cfg->source);
    free(cfg->source);
  }
  pm__s3_fetched_free(cfg);
  memset(cfg, 0, sizeof *cfg);
}

/* ---- the INI dialect of ~/.aws/credentials and ~/.aws/config
 * ----------------- */

static void trim(const char **p, const char **end) {
  while (*p < *end && (**p == ' ' || **p == '\t'))
    (*p)++;
  while (*end > *p &&
         ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
    (*end)--;
}

static bool span_eq(const char *p, const char *end, const char *want,
                    bool nocase) {
  size_t n = (size_t)(end - p);
  return strlen(want) == n &&
         (nocase ? !strncasecmp(p, want, n) : !memcmp(p, want, n));
}

int pm__ini_get(const char *text, size_t length, const char *section,
                const char *key, char *out, size_t out_size,
                bool *section_seen) {
  const char *p = text, *end = text + length;
  bool in_section = false;
  if (length >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3))
    p += 3;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *l = p, *le = nl ? nl : end;
    p = nl ? nl + 1 : end;
    if (l < le && (*l == ' ' || *l == '\t'))
      continue; /* a nested block ("s3 =\n  addressing_style = path") */
    trim(&l, &le);
    if (l == le || *l == '#' || *l == ';')
      continue;
    if (*l == '[') {
      const char *close = memchr(l, ']', (size_t)(le - l));
      const char *name = l + 1, *name_end = close ? close : l + 1;
      trim(&name, &name_end);
      in_section = close && span_eq(name, name_end, section, false);
      if (in_section && section_seen)
        *section_seen = true;
      continue;
    }
    const char *eq = memchr(l, '=', (size_t)(le - l));
    if (!in_section || !eq)
      continue;
    const char *k = l, *k_end = eq, *v = eq + 1, *v_end = le;
    trim(&k, &k_end);
    trim(&v, &v_end);
    if (!span_eq(k, k_end, key, true))
      continue;
    if ((size_t)(v_end - v) >= out_size)
      return PM_ETOOBIG;
    memcpy(out, v, (size_t)(v_end - v));
    out[v_end - v] = '\0';
    return 1;
  }
  return 0;
}


/* $NAME (a leading "~/" is $HOME, as the AWS tools read it), else
 * ~/.aws/LEAF, into out. False if neither can be formed. */
static bool aws_file_path(const char *var, const char *leaf, char *out,
                          size_t size) {
  const char *path = pm__ufs_env(var);
  return path ? pm__ufs_home_path(out, size, var, path, "")
              : pm__ufs_home_path(out, size, NULL, "~/.aws/", leaf);
}

/* One AWS file, read: its path and text. */
typedef struct aws_file {
  char path[4096];
  char *text;
  size_t length;
} aws_file;

static int aws_file_load(aws_file *f, const char *var, const char *leaf) {
  f->text = NULL;
  f->length = 0;
  if (!aws_file_path(var, leaf, f->path, sizeof f->path)) {
    snprintf(f->path, sizeof f->path, "~/.aws/%s", leaf);
    return 0;
  }
  return pm__ufs_read_small(f->path, PM_S3_INI_MAX, &f->text, &f->length);
}

/* The config file's section of the default profile: [default], or
 * [profile default] when only that one is there (the AWS CLI takes both). */
static const char *default_section(const aws_file *config) {
  bool seen = false;
  char ignored[8];
  if (!config->text)
    return "default";
  pm__ini_get(config->text, config->length, "default", "region", ignored,
              sizeof ignored, &seen);
  if (seen)
    return "default";
  pm__ini_get(config->text, config->length, "profile default", "region",
              ignored, sizeof ignored, &seen);
  return seen ? "profile default" : "default";
}

/* ---- loading ---------------------------------------------------------------
 */

int pm__s3_config_set(char **dst, const char *src) {
  free(*dst);
  *dst = strdup(src);
  return *dst ? 0 : pm__errf(PM_ENOMEM, "s3 config: out of memory");
}

int pm__s3_config_endpoint(pm_s3_config *cfg, const char *url) {
  const char *sep = strstr(url, "://");
  size_t scheme_len = sep ? (size_t)(sep - url) : 0;
  if (!sep || !((scheme_len == 4 && !strncasecmp(url, "http", 4)) ||
                (scheme_len == 5 && !strncasecmp(url, "https", 5))))
    return pm__errf(PM_ECONFIG,
                    "S3 endpoint \"%s\": not an http:// or "
                    "https:// URL",
                    url);
  const char *host = sep + 3;
  size_t host_len = strcspn(host, "/?#@");
  const char *path = host + host_len;
  size_t path_len = strcspn(path, "?#@");
  if (host_len == 0 || path[path_len] != '\0')
    return pm__errf(PM_ECONFIG,
                    "S3 endpoint \"%s\": want scheme://host"
                    "[:port][/path], without user or query",
                    url);
  while (path_len > 0 && path[path_len - 1] == '/')
    path_len--;
  const char *scheme = scheme_len == 5 ? "https" : "http";
  free(cfg->host);
  free(cfg->base_path);
  cfg->host = strndup(host, host_len);
  cfg->base_path = strndup(path, path_len);
  if (!cfg->host || !cfg->base_path || pm__s3_config_set(&cfg->scheme, scheme))
    return pm__errf(PM_ENOMEM, "s3 config: out of memory");
  cfg->custom_endpoint = true;
  return 0;
}

static int load_endpoint(pm_s3_config *cfg) {
  const char *url = pm__ufs_env("AWS_ENDPOINT_URL_S3");
  if (!url)
    url = pm__ufs_env("AWS_ENDPOINT_URL");
  if (url)
    return pm__s3_config_endpoint(cfg, url);
  char host[128];
  snprintf(host, sizeof host, "s3.%s.amazonaws.com", cfg->region);
  cfg->custom_endpoint = false;
  if (pm__s3_config_set(&cfg->scheme, "https") ||
      pm__s3_config_set(&cfg->host, host) ||
      pm__s3_config_set(&cfg->base_path, ""))
    return PM_ENOMEM;
  return 0;
}

static bool region_valid(const char *r) {
  size_t n = strlen(r);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') ||
          r[i] == '-'))
      return false;
  return true;
}

static int load_region(pm_s3_config *cfg, const aws_file *config,
                       const char *config_section) {
  char from_file[128] = "";
  const char *region = pm__ufs_env("AWS_REGION");
  if (!region)
    region = pm__ufs_env("AWS_DEFAULT_REGION");
  if (!region && config->text &&
      pm__ini_get(config->text, config->length, config_section, "region",
                  from_file, sizeof from_file, NULL) == 1)
    region = from_file;
  if (!region)
    region = DEFAULT_REGION;
  if (!region_valid(region))
    return pm__errf(PM_ECONFIG, "AWS region \"%.64s\" is not valid", region);
  return pm__s3_config_set(&cfg->region, region);
}

static int load_style(pm_s3_config *cfg) {
  const char *style = pm__ufs_env("AWS_S3_ADDRESSING_STYLE");
  if (!style || !strcasecmp(style, "auto"))
    cfg->path_style = cfg->custom_endpoint;
  else if (!strcasecmp(style, "path"))
    cfg->path_style = true;
  else if (!strcasecmp(style, "virtual"))
    cfg->path_style = false;
  else
    return pm__errf(PM_ECONFIG,
                    "AWS_S3_ADDRESSING_STYLE=%s: want path, "
                    "virtual or auto",
                    style);
  return 0;
}

int pm__s3_config_max_keys(pm_s3_config *cfg, const char *var) {
  const char *v = pm__ufs_env(var);
  int64_t n = DEFAULT_MAX_KEYS;
  if (v && (pm__parse_u63(v, strlen(v), &n) || n < 1 || n > 1000))
    return pm__errf(PM_ECONFIG, "%s=%s: want 1..1000", var, v);
  cfg->max_keys = (uint32_t)n;
  return 0;
}

/* ---- credentials ------------------------------------------------------------
 */

typedef struct creds {
  char key[256];
  char secret[256];
  char token[PM_S3_VALUE_MAX];
  bool has_token;
} creds;

static int set_creds(pm_s3_config *cfg, const char *key, const char *secret,
                     const char *token, const char *source) {
  if (pm__s3_config_set(&cfg->access_key, key) ||
      pm__s3_config_set(&cfg->secret_key, secret) ||
      (token && pm__s3_config_set(&cfg->session_token, token)) ||
      pm__s3_config_set(&cfg->cred_source, source))
    return PM_ENOMEM;
  return 0;
}

/* Look the profile's keys up in one file; *found if it has a key pair. */
static int creds_from_ini(const aws_file *f, const char *section, creds *c,
                          bool *seen, bool *found) {
  int k = pm__ini_get(f->text, f->length, section, "aws_access_key_id", c->key,
                      sizeof c->key, seen);
  int s = pm__ini_get(f->text, f->length, section, "aws_secret_access_key",
                      c->secret, sizeof c->secret, NULL);
  int t = pm__ini_get(f->text, f->length, section, "aws_session_token",
                      c->token, sizeof c->token, NULL);
  if (k < 0 || s < 0 || t < 0)
    return pm__errf(PM_ECONFIG, "%s [%s]: value too long", f->path, section);
  if (k != s)
    return pm__errf(PM_ECONFIG,
                    "%s [%s]: aws_access_key_id and "
                    "aws_secret_access_key must come together",
                    f->path, section);
  *found = k == 1;
  c->has_token = t == 1;
  return 0;
}

static int creds_from_env(pm_s3_config *cfg) {
  const char *key = pm__ufs_env("AWS_ACCESS_KEY_ID");
  const char *secret = pm__ufs_env("AWS_SECRET_ACCESS_KEY");
  if (!key || !secret)
    return pm__errf(PM_ECONFIG, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                "must be set together");
  const char *token = pm__ufs_env("AWS_SESSION_TOKEN");
  if (!token)
    token = pm__ufs_env("AWS_SECURITY_TOKEN");
  return set_creds(cfg, key, secret, token, "environment");
}

static int creds_from_files(pm_s3_config *cfg, const char *profile, bool named,
                            const aws_file *config,
                            const char *config_section) {
  aws_file cred;
  creds *c = calloc(1, sizeof *c);
  if (!c)
    return pm__errf(PM_ENOMEM, "s3 config: out of memory");
  bool seen = false, found = false;
  const aws_file *from = &cred;
  int rc = aws_file_load(&cred, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
  if (!rc && cred.text)
    rc = creds_from_ini(&cred, profile, c, &seen, &found);
  if (!rc && !found && config->text) {
    from = config;
    rc = creds_from_ini(config, config_section, c, &seen, &found);
  }
  if (!rc && named && !seen)
    rc = pm__errf(PM_ECONFIG, "AWS profile \"%s\" not found in %s or %s",
                  profile, cred.path, config->path);
  if (!rc && found) {
    char source[4400];
    snprintf(source, sizeof source, "profile %s in %s", profile, from->path);
    rc = set_creds(cfg, c->key, c->secret, c->has_token ? c->token : NULL,
                   source);
  }
  if (cred.text) {
    explicit_bzero(cred.text, cred.length);
    free(cred.text);
  }
  explicit_bzero(c, sizeof *c);
  free(c);
  return rc;
}

/* A key of the profile: its section in the credentials file, else in the
 * config file. Returns 1 (value in out, the file's path in *from), 0, or
 * PM_ECONFIG (too long). */
static int profile_value(const aws_file *cred, const aws_file *config,
                         const char *profile, const char *config_section,
                         const char *key, char *out, size_t size,
                         const char **from) {
  int rc = cred->text ? pm__ini_get(cred->text, cred->length, profile, key,
                                    out, size, NULL)
                      : 0;
  *from = cred->path;
  if (rc == 0 && config->text) {
    rc = pm__ini_get(config->text, config->length, config_section, key, out,
                     size, NULL);
    *from = config->path;
  }
  if (rc < 0)
    return pm__errf(PM_ECONFIG, "%s [%s]: %s too long", *from, profile, key);
  return rc;
}

/* A source of keys that the profile names instead of keys: its
 * credential_process, run by requests (ufs/s3_creds.c). */
static int creds_from_profile_source(pm_s3_config *cfg, const char *profile,
                                     const aws_file *config,
                                     const char *config_section) {
  aws_file cred;
  int rc = aws_file_load(&cred, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
  if (rc)
    return rc;
  char *value = calloc(1, PM_S3_VALUE_MAX);
  const char *from = NULL;
  if (!value) {
    rc = pm__errf(PM_ENOMEM, "s3 config: out of memory");
    goto out;
  }
  rc = profile_value(&cred, config, profile, config_section,
                     "credential_process", value, PM_S3_VALUE_MAX, &from);
  if (rc == 1) {
    char source[4400];
    snprintf(source, sizeof source, "credential_process of profile %s in %s",
             profile, from);
    cfg->cred_kind = PM_S3_CREDS_PROCESS;
    rc = pm__s3_config_set(&cfg->cred_process, value) ||
                 pm__s3_config_set(&cfg->cred_source, source) ||
                 pm__s3_fetched_new(cfg)
             ? pm__errf(PM_ENOMEM, "s3 config: out of memory")
             : 0;
    goto out;
  }
out:
  free(value);
  if (cred.text) {
    explicit_bzero(cred.text, cred.length);
    free(cred.text);
  }
  return rc;
}

/* Keys from STS for role: cfg's role_arn, role_session (session, else
 * "pagemesh-PID") and sts_endpoint (AWS_ENDPOINT_URL_STS, else
 * AWS_ENDPOINT_URL, else the region's), fetched by requests
 * (ufs/s3_creds.c) as kind says. */
static int set_role(pm_s3_config *cfg, pm_s3_cred_kind kind, const char *role,
                    const char *session, const char *source) {
  const char *sts = pm__ufs_env("AWS_ENDPOINT_URL_STS");
  if (!sts)
    sts = pm__ufs_env("AWS_ENDPOINT_URL");
  char session_buf[64], sts_buf[128];
  if (!session) {
    snprintf(session_buf, sizeof session_buf, "pagemesh-%ld", (long)getpid());
    session = session_buf;
  }
  if (!sts) {
    snprintf(sts_buf, sizeof sts_buf, "https://sts.%s.amazonaws.com",
             cfg->region);
    sts = sts_buf;
  }
  char base[1100];
  int rc = pm__ufs_base_url("STS endpoint", sts, true, base, sizeof base);
  if (rc)
    return rc;
  cfg->cred_kind = kind;
  if (pm__s3_config_set(&cfg->role_arn, role) ||
      pm__s3_config_set(&cfg->role_session, session) ||
      pm__s3_config_set(&cfg->sts_endpoint, base) ||
      pm__s3_config_set(&cfg->cred_source, source) || pm__s3_fetched_new(cfg))
    return pm__errf(PM_ENOMEM, "s3 config: out of memory");
  return 0;
}

static int web_identity(pm_s3_config *cfg, const char *file, const char *role,
                        const char *session) {
  char source[600];
  snprintf(source, sizeof source, "web identity of role %.500s", role);
  int rc = set_role(cfg, PM_S3_CREDS_WEB_IDENTITY, role, session, source);
  if (!rc && pm__s3_config_set(&cfg->web_token_file, file))
    rc = PM_ENOMEM;
  return rc;
}

/* AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (what EKS sets for a pod's
 * service account, IRSA): keys from STS AssumeRoleWithWebIdentity.
 * *used says whether they are set. */
static int creds_from_web_identity(pm_s3_config *cfg, bool *used) {
  const char *file = pm__ufs_env("AWS_WEB_IDENTITY_TOKEN_FILE");
  const char *role = pm__ufs_env("AWS_ROLE_ARN");
  *used = file && role;
  if (!file && !role)
    return 0;
  if (!*used)
    return pm__errf(PM_ECONFIG, "AWS_WEB_IDENTITY_TOKEN_FILE and "
                                "AWS_ROLE_ARN must be set together");
  return web_identity(cfg, file, role, pm__ufs_env("AWS_ROLE_SESSION_NAME"));
}

/* No keys configured: the instance's role if there is a metadata service
 * to ask (AWS_EC2_METADATA_SERVICE_ENDPOINT, or on EC2, unless
 * AWS_EC2_METADATA_DISABLED=true), else anonymous. */
static int creds_from_instance(pm_s3_config *cfg) {
  const char *disabled = pm__ufs_env("AWS_EC2_METADATA_DISABLED");
  const char *endpoint = pm__ufs_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if ((disabled && !strcasecmp(disabled, "true")) ||
      (!endpoint && !pm__ufs_cloud_is("Amazon EC2") &&
       !pm__ufs_cloud_is("ec2")))
    return pm__s3_config_set(&cfg->cred_source, "anonymous");
  if (!endpoint)
    endpoint = "http://169.254.169.254";
  char base[1100], source[1200];
  int rc = pm__ufs_base_url("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint,
                            false, base, sizeof base);
  if (rc)
    return rc;
  cfg->cred_kind = PM_S3_CREDS_IMDS;
  snprintf(source, sizeof source, "the instance role (%s)", base);
  if (pm__s3_config_set(&cfg->imds_endpoint, base) ||
      pm__s3_config_set(&cfg->cred_source, source) || pm__s3_fetched_new(cfg))
    return pm__errf(PM_ENOMEM, "s3 config: out of memory");
  return 0;
}

/* ---- profiles that assume a role ------------------------------------------ */

#define ROLE_CHAIN_MAX 4

static int creds_from_profile(pm_s3_config *cfg, const char *profile,
                              bool named, const aws_file *config,
                              const char *section, int depth);

/* What a role profile says, each "" when absent. */
typedef struct role_profile {
  char role_arn[2048], source_profile[256], credential_source[64];
  char web_token_file[4096], external_id[1300], session[128];
} role_profile;

static int read_role_profile(const aws_file *cred, const aws_file *config,
                             const char *profile, const char *section,
                             role_profile *r) {
  struct {
    const char *key;
    char *out;
    size_t size;
  } fields[] = {
      {"role_arn", r->role_arn, sizeof r->role_arn},
      {"source_profile", r->source_profile, sizeof r->source_profile},
      {"credential_source", r->credential_source,
       sizeof r->credential_source},
      {"web_identity_token_file", r->web_token_file,
       sizeof r->web_token_file},
      {"external_id", r->external_id, sizeof r->external_id},
      {"role_session_name", r->session, sizeof r->session},
  };
  const char *from;
  for (size_t i = 0; i < PM_ARRAY_SIZE(fields); i++) {
    fields[i].out[0] = '\0';
    int rc = profile_value(cred, config, profile, section, fields[i].key,
                           fields[i].out, fields[i].size, &from);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* The keys that ask STS for the role: source_profile's (its own keys when
 * it names itself; else whatever that profile resolves to, a role in
 * turn), or credential_source's (Environment, Ec2InstanceMetadata). */
static int load_role_source(pm_s3_config *src, const char *profile,
                            const role_profile *r, const aws_file *config,
                            int depth) {
  if (r->source_profile[0]) {
    char section[300];
    snprintf(section, sizeof section, "%s%s",
             strcmp(r->source_profile, "default") ? "profile " : "",
             r->source_profile);
    if (!strcmp(r->source_profile, "default"))
      snprintf(section, sizeof section, "%s", default_section(config));
    int rc = strcmp(r->source_profile, profile)
                 ? creds_from_profile(src, r->source_profile, true, config,
                                      section, depth + 1)
                 : creds_from_files(src, profile, true, config, section);
    if (!rc && !src->access_key && src->cred_kind == PM_S3_CREDS_FIXED)
      rc = pm__errf(PM_ECONFIG, "AWS profile \"%s\": its source_profile "
                                "\"%s\" has no credentials", profile,
                    r->source_profile);
    return rc;
  }
  if (!strcmp(r->credential_source, "Environment"))
    return creds_from_env(src);
  if (!strcmp(r->credential_source, "Ec2InstanceMetadata"))
    return creds_from_instance(src);
  if (!strcmp(r->credential_source, "EcsContainer")) {
    bool used = false;
    int rc = pm__s3_creds_from_container(src, &used);
    if (!rc && !used)
      rc = pm__errf(PM_ECONFIG, "AWS profile \"%s\": credential_source = "
                                "EcsContainer, but neither "
                                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
                                "AWS_CONTAINER_CREDENTIALS_FULL_URI is set",
                    profile);
    return rc;
  }
  if (r->credential_source[0])
    return pm__errf(PM_ECONFIG, "AWS profile \"%s\": credential_source = "
                                "%s is not supported (Environment, "
                                "Ec2InstanceMetadata and EcsContainer are)",
                    profile, r->credential_source);
  return pm__errf(PM_ECONFIG, "AWS profile \"%s\" has role_arn without "
                              "source_profile, credential_source or "
                              "web_identity_token_file", profile);
}

/* A profile with role_arn (*used): keys from STS AssumeRole, asked with
 * the source's keys (ufs/s3_creds.c), or AssumeRoleWithWebIdentity with
 * its web_identity_token_file, as botocore does. */
static int creds_from_role(pm_s3_config *cfg, const char *profile,
                           const aws_file *config, const char *section,
                           int depth, bool *used) {
  aws_file cred;
  role_profile *r = calloc(1, sizeof *r);
  int rc = r ? aws_file_load(&cred, "AWS_SHARED_CREDENTIALS_FILE",
                             "credentials")
             : pm__errf(PM_ENOMEM, "s3 config: out of memory");
  if (!r || rc) {
    free(r);
    return rc;
  }
  rc = read_role_profile(&cred, config, profile, section, r);
  if (cred.text) {
    explicit_bzero(cred.text, cred.length);
    free(cred.text);
  }
  *used = !rc && r->role_arn[0];
  const char *session = r->session[0] ? r->session : NULL;
  if (!*used) {
  } else if (depth >= ROLE_CHAIN_MAX) {
    rc = pm__errf(PM_ECONFIG, "AWS profile \"%s\": roles chained over %d "
                              "profiles deep (a loop of source_profile?)",
                  profile, ROLE_CHAIN_MAX);
  } else if (r->web_token_file[0]) {
    char path[4096];
    rc = pm__ufs_home_path(path, sizeof path, "web_identity_token_file",
                           r->web_token_file, "")
             ? web_identity(cfg, path, r->role_arn, session)
             : pm__errf(PM_ECONFIG, "AWS profile \"%s\": "
                                    "web_identity_token_file names no file",
                        profile);
  } else if (!(cfg->source = calloc(1, sizeof *cfg->source)) ||
             pm__s3_config_set(&cfg->source->region, cfg->region)) {
    rc = pm__errf(PM_ENOMEM, "s3 config: out of memory");
  } else if (!(rc = load_role_source(cfg->source, profile, r, config,
                                     depth))) {
    char source[2600];
    snprintf(source, sizeof source, "role %s of profile %s (asked with %s)",
             r->role_arn, profile, cfg->source->cred_source);
    rc = set_role(cfg, PM_S3_CREDS_ASSUME_ROLE, r->role_arn, session,
                  source);
    if (!rc && r->external_id[0] &&
        pm__s3_config_set(&cfg->external_id, r->external_id))
      rc = PM_ENOMEM;
  }
  explicit_bzero(r, sizeof *r);
  free(r);
  return rc;
}

/* A profile's keys, as botocore resolves them: a role it assumes, else its
 * keys (credentials file, then config file), else its credential_process.
 * depth counts the source profiles followed. */
static int creds_from_profile(pm_s3_config *cfg, const char *profile,
                              bool named, const aws_file *config,
                              const char *section, int depth) {
  bool role = false, sso = false;
  int rc = creds_from_role(cfg, profile, config, section, depth, &role);
  if (!rc && !role)
    rc = pm__s3_creds_from_sso(cfg, profile, config->text, config->length,
                               config->path, section, &sso);
  if (rc || role || sso)
    return rc;
  rc = creds_from_files(cfg, profile, named, config, section);
  if (rc == 0 && !cfg->access_key)
    rc = creds_from_profile_source(cfg, profile, config, section);
  return rc;
}

/* AWS_PROFILE names a profile that is in neither file: PM_ECONFIG, as
 * botocore's ProfileNotFound, whatever else would give keys. */
static int profile_exists(const char *profile, const aws_file *config,
                          const char *section) {
  aws_file cred;
  int rc = aws_file_load(&cred, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
  bool seen = false;
  char ignored[8];
  if (!rc && cred.text)
    pm__ini_get(cred.text, cred.length, profile, "region", ignored,
                sizeof ignored, &seen);
  if (!rc && !seen && config->text)
    pm__ini_get(config->text, config->length, section, "region", ignored,
                sizeof ignored, &seen);
  if (!rc && !seen)
    rc = pm__errf(PM_ECONFIG, "AWS profile \"%s\" not found in %s or %s",
                  profile, cred.path, config->path);
  if (cred.text) {
    explicit_bzero(cred.text, cred.length);
    free(cred.text);
  }
  return rc;
}

/* In botocore's order: keys in the environment, then a role the profile
 * assumes, then a web identity (IRSA), then the profile's SSO role, then
 * the profile's keys (the credentials file, the config file) or its
 * credential_process, then a container's role (ECS, EKS Pod Identity),
 * then the instance's role. */
static int load_credentials(pm_s3_config *cfg, const char *profile, bool named,
                            const aws_file *config,
                            const char *config_section) {
  if (pm__ufs_env("AWS_ACCESS_KEY_ID") || pm__ufs_env("AWS_SECRET_ACCESS_KEY"))
    return creds_from_env(cfg);
  int rc = named ? profile_exists(profile, config, config_section) : 0;
  bool role = false, web = false, sso = false;
  if (!rc)
    rc = creds_from_role(cfg, profile, config, config_section, 0, &role);
  if (!rc && !role)
    rc = creds_from_web_identity(cfg, &web);
  if (!rc && !role && !web)
    rc = pm__s3_creds_from_sso(cfg, profile, config->text, config->length,
                               config->path, config_section, &sso);
  if (rc || role || web || sso)
    return rc;
  rc = creds_from_files(cfg, profile, named, config, config_section);
  if (rc == 0 && !cfg->access_key)
    rc = creds_from_profile_source(cfg, profile, config, config_section);
  bool container; /* then cred_kind says so too */
  if (rc == 0 && !cfg->access_key && cfg->cred_kind == PM_S3_CREDS_FIXED)
    rc = pm__s3_creds_from_container(cfg, &container);
  if (rc == 0 && !cfg->access_key && cfg->cred_kind == PM_S3_CREDS_FIXED)
    rc = creds_from_instance(cfg);
  return rc;
}

/* ---- URLs
 * -------------------------------------------------------------------- */

/* Can the bucket be a host name label set (virtual-host addressing)? */
static bool bucket_dns_ok(const char *b) {
  size_t n = strlen(b);
  if (n < 3 || b[0] == '.' || b[0] == '-' || b[n - 1] == '.' ||
      b[n - 1] == '-' || strstr(b, ".."))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') ||
          b[i] == '-' || b[i] == '.'))
      return false;
  return true;
}

int pm__s3_url(const pm_s3_config *cfg, const char *bucket, const char *key,
               const char *query, const char *region, pm_sbuf *out) {
  bool https = !strcmp(cfg->scheme, "https");
  bool virtual_host = !cfg->path_style && bucket_dns_ok(bucket) &&
                      !(https && strchr(bucket, '.'));
  pm__sbuf_printf(out, "%s://", cfg->scheme);
  if (virtual_host)
    pm__sbuf_printf(out, "%s.", bucket);
  if (region && !cfg->custom_endpoint && strcmp(region, cfg->region) != 0)
    pm__sbuf_printf(out, "s3.%s.amazonaws.com", region);
  else
    pm__sbuf_printf(out, "%s%s", cfg->host, cfg->base_path);
  if (!virtual_host)
    pm__sbuf_printf(out, "/%s", bucket);
  if (virtual_host || *key)
    pm__sbuf_puts(out, "/");
  pm__uri_encode(out, key, strlen(key), true);
  if (query && *query)
    pm__sbuf_printf(out, "?%s", query);
  return out->err;
}

int pm__s3_config_load(pm_s3_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  const char *profile = pm__ufs_env("AWS_PROFILE");
  if (!profile)
    profile = pm__ufs_env("AWS_DEFAULT_PROFILE");
  bool named = profile != NULL;
  if (!profile)
    profile = "default";
  char config_section[256];
  snprintf(config_section, sizeof config_section, "%s%s",
           strcmp(profile, "default") ? "profile " : "", profile);
  aws_file config;
  int rc = aws_file_load(&config, "AWS_CONFIG_FILE", "config");
  if (!rc && !strcmp(profile, "default"))
    snprintf(config_section, sizeof config_section, "%s",
             default_section(&config));
  if (!rc)
    rc = load_region(cfg, &config, config_section);
  if (!rc)
    rc = load_endpoint(cfg);
  if (!rc)
    rc = load_style(cfg);
  if (!rc)
    rc = pm__s3_config_max_keys(cfg, "PAGEMESH_S3_MAX_KEYS");
  if (!rc)
    rc = load_credentials(cfg, profile, named, &config, config_section);
  if (config.text) {
    explicit_bzero(config.text, config.length);
    free(config.text);
  }
  if (rc)
    pm__s3_config_free(cfg);
  return rc;
}
