/*
 * ufs/s3_creds.c - S3 keys as each request gets them (pm__s3_keys_get),
 * including keys that come from elsewhere and expire: the
 * credential_process of an AWS profile (a command that prints JSON, run
 * as the AWS CLI runs it, through the shell), the role of an EC2
 * instance through IMDSv2, a container's role (ufs/s3_container.c), and
 * (GCS) the access token of a GCE
 * instance's service account from its metadata server. Those are fetched
 * by the first request that needs them and fetched again once they are
 * within REFRESH_NS of their expiry; one thread fetches while the others
 * wait for it. A failed fetch
 * while the old keys are still valid keeps them (and is logged); once they
 * have expired, requests fail with PM_EACCES and the fetch's reason.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ufs/curl_int.h"
#include "ufs/s3_int.h"

extern char **environ;

/* Fetch again this long before the keys expire (the AWS SDKs use 5 to 15
 * minutes: a request signed now may be retried for a while). */
#define REFRESH_NS (5ll * 60 * 1000000000ll)
/* An instance without a role is asked again this long after (less
 * REFRESH_NS: ten minutes after, five minutes before "expiry"). */
#define NO_ROLE_RETRY_NS (2 * REFRESH_NS)
/* What a credential source may print or answer. */
#define OUTPUT_MAX (64u * 1024u)
/* How long a credential_process may run. */
#define PROCESS_TIMEOUT_MS 60000
#define IMDS_TOKEN_TTL "21600"

struct pm_s3_fetched {
  pthread_mutex_t lock;
  bool have;          /* a fetch succeeded (keys may still be NULL: no role) */
  int64_t expires_ns; /* wall clock; 0: never */
};

int pm__s3_fetched_new(pm_s3_config *cfg) {
  cfg->fetched = calloc(1, sizeof *cfg->fetched);
  if (!cfg->fetched)
    return pm__errf(PM_ENOMEM, "s3 config: out of memory");
  pthread_mutex_init(&cfg->fetched->lock, NULL);
  return 0;
}

void pm__s3_fetched_free(pm_s3_config *cfg) {
  if (!cfg->fetched)
    return;
  pthread_mutex_destroy(&cfg->fetched->lock);
  free(cfg->fetched);
  cfg->fetched = NULL;
}

void pm__s3_keys_free(pm_s3_keys *keys) {
  pm__ufs_free_secret(&keys->access_key);
  pm__ufs_free_secret(&keys->secret_key);
  pm__ufs_free_secret(&keys->session_token);
  pm__ufs_free_secret(&keys->bearer);
}

/* ---- what a source says ------------------------------------------------- */

static const char *json_text(json_t *obj, const char *name) {
  const char *s = json_string_value(json_object_get(obj, name));
  return s && *s ? s : NULL;
}

int pm__s3_parse_creds(const char *text, size_t length, pm_s3_creds_form form,
                       pm_s3_keys *keys, int64_t *expires_ns) {
  json_error_t jerr;
  json_t *root = json_loadb(text, length, 0, &jerr);
  if (!json_is_object(root)) {
    json_decref(root);
    return pm__errf(PM_EPROTO, "not a JSON object (%s)", jerr.text);
  }
  int rc = 0;
  const char *code = json_text(root, "Code");
  json_t *version = json_object_get(root, "Version");
  const char *key = json_text(root, "AccessKeyId");
  const char *secret = json_text(root, "SecretAccessKey");
  bool process = form == PM_S3_FORM_PROCESS;
  const char *token = json_text(root, process ? "SessionToken" : "Token");
  const char *expiry = json_text(root, "Expiration");
  *expires_ns = 0;
  if (form == PM_S3_FORM_IMDS && (!code || strcmp(code, "Success") != 0))
    rc = pm__errf(PM_EPROTO, "Code is \"%s\", not \"Success\"",
                  code ? code : "");
  else if (process &&
           (!json_is_integer(version) || json_integer_value(version) != 1))
    rc = pm__errf(PM_EPROTO, "Version must be 1");
  else if (!key || !secret)
    rc = pm__errf(PM_EPROTO, "AccessKeyId or SecretAccessKey missing");
  else if (strlen(key) >= 256 || strlen(secret) >= 256 ||
           (token && strlen(token) >= PM_S3_VALUE_MAX))
    rc = pm__errf(PM_EPROTO, "a key or token is too long");
  else if (expiry && pm__s3_parse_time(expiry, expires_ns) != 0)
    rc = pm__errf(PM_EPROTO, "Expiration \"%.40s\" is not an ISO 8601 time",
                  expiry);
  else if (!process && !expiry)
    rc = pm__errf(PM_EPROTO, "Expiration missing");
  if (!rc && (pm__s3_config_set(&keys->access_key, key) ||
              pm__s3_config_set(&keys->secret_key, secret) ||
              (token && pm__s3_config_set(&keys->session_token, token))))
    rc = pm__errf(PM_ENOMEM, "out of memory");
  if (rc)
    pm__s3_keys_free(keys);
  json_decref(root);
  return rc;
}

/* ---- credential_process ------------------------------------------------ */

/* Read the child's output until EOF, the cap or the deadline. */
static int read_output(int fd, pid_t pid, pm_sbuf *out) {
  uint64_t deadline = pm__now_ns() + PROCESS_TIMEOUT_MS * 1000000ull;
  char chunk[4096];
  for (;;) {
    uint64_t now = pm__now_ns();
    if (now >= deadline) {
      kill(pid, SIGKILL);
      return pm__errf(PM_ETIMEDOUT, "still running after %d s",
                      PROCESS_TIMEOUT_MS / 1000);
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return pm__errf(PM_EIO, "poll: %s", strerror(errno));
    if (n == 0)
      continue;
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      return pm__errf(PM_EIO, "read: %s", strerror(errno));
    if (got == 0)
      return 0;
    if (pm__sbuf_append(out, chunk, (size_t)got)) {
      kill(pid, SIGKILL);
      return pm__errf(PM_ETOOBIG, "printed more than %u bytes", OUTPUT_MAX);
    }
  }
}

static int run_process(const char *command, pm_sbuf *out) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return pm__errf(PM_EIO, "pipe: %s", strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  char *argv[] = {"sh", "-c", (char *)command, NULL};
  pid_t pid;
  int err = posix_spawn(&pid, "/bin/sh", &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (err) {
    close(fds[0]);
    return pm__errf(PM_EIO, "cannot start /bin/sh: %s", strerror(err));
  }
  int rc = read_output(fds[0], pid, out);
  close(fds[0]);
  int status = 0;
  pid_t waited;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
    ;
  if (rc)
    return rc;
  if (waited < 0) /* SIGCHLD ignored by the application: no status */
    return 0;
  if (WIFSIGNALED(status))
    return pm__errf(PM_EIO, "killed by signal %d", WTERMSIG(status));
  if (WEXITSTATUS(status) != 0)
    return pm__errf(PM_EIO, "exit status %d", WEXITSTATUS(status));
  return 0;
}

static int fetch_process(const char *command, pm_s3_keys *keys,
                         int64_t *expires_ns) {
  pm_sbuf out;
  pm__sbuf_init(&out, OUTPUT_MAX);
  int rc = run_process(command, &out);
  if (!rc)
    rc = pm__s3_parse_creds(out.data ? out.data : "", out.len,
                            PM_S3_FORM_PROCESS, keys, expires_ns);
  pm__sbuf_free_secret(&out);
  return rc;
}

/* ---- IMDSv2 (calls through ufs/metadata.c) --------------------------------- */

/* IMDSv2: a session token first, then calls that carry it. */
static int imds_call(const char *base, const char *path, const char *token,
                     pm_sbuf *body, long *status) {
  if (token)
    return pm__metadata_call(base, path, false, "X-aws-ec2-metadata-token",
                             token, body, status);
  return pm__metadata_call(base, path, true,
                           "X-aws-ec2-metadata-token-ttl-seconds",
                           IMDS_TOKEN_TTL, body, status);
}

/* Keys of the instance's role; none (and 0) if it has no role. */
static int fetch_imds(const char *base, pm_s3_keys *keys,
                      int64_t *expires_ns) {
  static const char creds_path[] =
      "/latest/meta-data/iam/security-credentials/";
  pm_sbuf token, role, body;
  pm__sbuf_init(&token, OUTPUT_MAX);
  pm__sbuf_init(&role, OUTPUT_MAX);
  pm__sbuf_init(&body, OUTPUT_MAX);
  long status = 0;
  int rc = imds_call(base, "/latest/api/token", NULL, &token, &status);
  if (!rc && status != 200)
    rc = pm__errf(PM_EACCES, "token request: HTTP %ld", status);
  if (!rc)
    rc = imds_call(base, creds_path, pm__sbuf_str(&token), &role, &status);
  if (!rc && status == 404) {
    *expires_ns = pm__wall_ns() + NO_ROLE_RETRY_NS;
    goto out; /* no role: anonymous for a while */
  }
  if (!rc && status != 200)
    rc = pm__errf(PM_EACCES, "role name: HTTP %ld", status);
  char name[256] = "";
  if (!rc) {
    const char *r = pm__sbuf_str(&role);
    size_t n = strcspn(r, "\r\n");
    if (n == 0 || n >= sizeof name || strcspn(r, "/?#% ") < n)
      rc = pm__errf(PM_EPROTO, "no usable role name in the answer");
    else
      memcpy(name, r, n), name[n] = 0;
  }
  if (!rc) {
    char path[sizeof creds_path + sizeof name];
    snprintf(path, sizeof path, "%s%s", creds_path, name);
    rc = imds_call(base, path, pm__sbuf_str(&token), &body, &status);
    if (!rc && status != 200)
      rc = pm__errf(PM_EACCES, "credentials of role %s: HTTP %ld", name,
                    status);
  }
  if (!rc)
    rc = pm__s3_parse_creds(body.data ? body.data : "", body.len,
                            PM_S3_FORM_IMDS, keys, expires_ns);
out:
  pm__sbuf_free_secret(&token);
  pm__sbuf_free(&role);
  pm__sbuf_free_secret(&body);
  return rc;
}

/* The access token of the instance's default service account (GCE, GKE
 * metadata server); none (and 0) without a service account. */
static int fetch_gce(const char *base, pm_s3_keys *keys,
                     int64_t *expires_ns) {
  pm_sbuf body;
  pm__sbuf_init(&body, OUTPUT_MAX);
  long status = 0;
  int rc = pm__metadata_call(base,
                         "/computeMetadata/v1/instance/service-accounts/"
                         "default/token",
                         false, "Metadata-Flavor", "Google", &body, &status);
  int64_t expires_in = 0;
  if (!rc && status == 404)
    *expires_ns = pm__wall_ns() + NO_ROLE_RETRY_NS;
  else if (!rc && status != 200)
    rc = pm__errf(PM_EACCES, "token: HTTP %ld", status);
  else if (!rc)
    rc = pm__oauth_token_parse(body.data ? body.data : "", body.len,
                               &keys->bearer, &expires_in);
  if (!rc && status == 200)
    *expires_ns = pm__wall_ns() + expires_in * 1000000000ll;
  pm__sbuf_free_secret(&body);
  return rc;
}

/* ---- STS AssumeRoleWithWebIdentity -------------------------------------- */

#define WEB_TOKEN_MAX (16u * 1024u)

static int fetch_web_identity(const pm_s3_config *cfg, pm_s3_keys *keys,
                              int64_t *expires_ns) {
  pm_sbuf token, query, body;
  pm__sbuf_init(&token, WEB_TOKEN_MAX);
  pm__sbuf_init(&query, 3 * WEB_TOKEN_MAX + 4096);
  pm__sbuf_init(&body, OUTPUT_MAX);
  /* read anew each time: the kubelet rotates it */
  int rc = pm__ufs_read_token_file(cfg->web_token_file, &token);
  if (!rc) {
    pm__sbuf_puts(&query, "/?Action=AssumeRoleWithWebIdentity"
                          "&Version=2011-06-15&DurationSeconds=3600"
                          "&RoleArn=");
    pm__uri_encode(&query, cfg->role_arn, strlen(cfg->role_arn), false);
    pm__sbuf_puts(&query, "&RoleSessionName=");
    pm__uri_encode(&query, cfg->role_session, strlen(cfg->role_session),
                   false);
    pm__sbuf_puts(&query, "&WebIdentityToken=");
    pm__uri_encode(&query, token.data, token.len, false);
    if (query.err)
      rc = pm__errf(PM_ETOOBIG, "request too long");
  }
  long status = 0;
  if (!rc)
    rc = pm__short_call(cfg->sts_endpoint, pm__sbuf_str(&query), false, true,
                        "Accept", "application/xml", &body, &status);
  if (!rc && status != 200) {
    char code[128] = "", message[256] = "";
    pm__s3_error_parse(body.data, body.len, code, sizeof code, message,
                       sizeof message);
    rc = pm__errf(PM_EACCES, "STS AssumeRoleWithWebIdentity: HTTP %ld%s%s",
                  status, code[0] ? " " : "", code);
  }
  if (!rc)
    rc = pm__sts_parse_credentials(body.data, body.len, keys, expires_ns);
  pm__sbuf_free_secret(&token);
  pm__sbuf_free_secret(&query);
  pm__sbuf_free_secret(&body);
  return rc;
}

/* ---- STS AssumeRole ------------------------------------------------------ */

/* The role's keys, asked for with the source's (fetched or renewed first,
 * when they are fetched keys themselves). */
static int fetch_assume_role(pm_s3_config *cfg, pm_s3_keys *keys,
                             int64_t *expires_ns) {
  pm_s3_keys src = {0};
  int rc = pm__s3_keys_get(cfg->source, &src);
  if (!rc && !src.access_key)
    rc = pm__errf(PM_EACCES, "no keys to ask STS with (%s)",
                  cfg->source->cred_source);
  pm_sbuf form, body;
  pm__sbuf_init(&form, 16384);
  pm__sbuf_init(&body, OUTPUT_MAX);
  pm__sbuf_puts(&form, "Action=AssumeRole&Version=2011-06-15"
                       "&DurationSeconds=3600");
  pm__form_field(&form, "RoleArn", cfg->role_arn);
  pm__form_field(&form, "RoleSessionName", cfg->role_session);
  if (cfg->external_id)
    pm__form_field(&form, "ExternalId", cfg->external_id);
  if (!rc && form.err)
    rc = pm__errf(PM_ETOOBIG, "request too long");
  long status = 0;
  if (!rc)
    rc = pm__sts_post(cfg->sts_endpoint, cfg->region, pm__sbuf_str(&form),
                      src.access_key, src.secret_key, src.session_token,
                      &body, &status);
  if (!rc && status != 200) {
    char code[128] = "", message[256] = "";
    pm__s3_error_parse(body.data, body.len, code, sizeof code, message,
                       sizeof message);
    rc = pm__errf(PM_EACCES, "STS AssumeRole %s: HTTP %ld%s%s%s%s",
                  cfg->role_arn, status, code[0] ? " " : "", code,
                  message[0] ? ": " : "", message);
  }
  if (!rc)
    rc = pm__sts_parse_credentials(body.data, body.len, keys, expires_ns);
  pm__s3_keys_free(&src);
  pm__sbuf_free(&form);
  pm__sbuf_free_secret(&body);
  return rc;
}

/* ---- keys for a request ---------------------------------------------- */

static int fetch(pm_s3_config *cfg, pm_s3_keys *keys, int64_t *expires_ns) {
  int rc = cfg->cred_kind == PM_S3_CREDS_PROCESS
               ? fetch_process(cfg->cred_process, keys, expires_ns)
           : cfg->cred_kind == PM_S3_CREDS_IMDS
               ? fetch_imds(cfg->imds_endpoint, keys, expires_ns)
           : cfg->cred_kind == PM_S3_CREDS_WEB_IDENTITY
               ? fetch_web_identity(cfg, keys, expires_ns)
           : cfg->cred_kind == PM_S3_CREDS_GOOGLE_ADC
               ? pm__gcs_adc_fetch(cfg->adc_file, keys, expires_ns)
           : cfg->cred_kind == PM_S3_CREDS_ASSUME_ROLE
               ? fetch_assume_role(cfg, keys, expires_ns)
           : cfg->cred_kind == PM_S3_CREDS_CONTAINER
               ? pm__s3_container_fetch(cfg, keys, expires_ns)
           : cfg->cred_kind == PM_S3_CREDS_SSO
               ? pm__s3_sso_fetch(cfg, keys, expires_ns)
               : fetch_gce(cfg->imds_endpoint, keys, expires_ns);
  if (!rc)
    return 0;
  char why[PM_ERRMSG_MAX];
  snprintf(why, sizeof why, "%s", pm__errmsg());
  return pm__errf(PM_EACCES, "credentials from %s: %s", cfg->cred_source,
                  why);
}

/* Fetch if there is nothing yet or the keys expire soon (lock held). */
static int refresh_locked(pm_s3_config *cfg) {
  pm_s3_fetched *f = cfg->fetched;
  int64_t now = pm__wall_ns();
  if (f->have && (f->expires_ns == 0 || now + REFRESH_NS < f->expires_ns))
    return 0;
  pm_s3_keys fresh = {0};
  int64_t expires = 0;
  int rc = fetch(cfg, &fresh, &expires);
  if (rc) {
    pm__s3_keys_free(&fresh);
    if (f->have && now < f->expires_ns) {
      PM_LOG_RATELIMITED(PM_LOG_WARN, "s3", 10000,
                         "%s; using the keys fetched before until they "
                         "expire", pm__errmsg());
      return 0;
    }
    return rc;
  }
  pm__ufs_free_secret(&cfg->access_key);
  pm__ufs_free_secret(&cfg->secret_key);
  pm__ufs_free_secret(&cfg->session_token);
  pm__ufs_free_secret(&cfg->bearer_token);
  cfg->access_key = fresh.access_key;
  cfg->secret_key = fresh.secret_key;
  cfg->session_token = fresh.session_token;
  cfg->bearer_token = fresh.bearer;
  f->have = true;
  f->expires_ns = expires;
  PM_LOG(PM_LOG_INFO, "s3", "credentials from %s: %s", cfg->cred_source,
         cfg->access_key || cfg->bearer_token
             ? "fetched"
             : "none (the instance has no role or service account): "
               "requests are anonymous");
  return 0;
}

int pm__s3_keys_get(pm_s3_config *cfg, pm_s3_keys *out) {
  *out = (pm_s3_keys){0};
  int rc = 0;
  if (cfg->fetched) {
    pthread_mutex_lock(&cfg->fetched->lock);
    rc = refresh_locked(cfg);
  }
  if (!rc && cfg->access_key &&
      (pm__s3_config_set(&out->access_key, cfg->access_key) ||
       pm__s3_config_set(&out->secret_key, cfg->secret_key) ||
       (cfg->session_token &&
        pm__s3_config_set(&out->session_token, cfg->session_token))))
    rc = pm__errf(PM_ENOMEM, "out of memory for the S3 keys");
  if (!rc && !cfg->access_key && cfg->bearer_token &&
      pm__s3_config_set(&out->bearer, cfg->bearer_token))
    rc = pm__errf(PM_ENOMEM, "out of memory for the token");
  if (cfg->fetched)
    pthread_mutex_unlock(&cfg->fetched->lock);
  if (rc)
    pm__s3_keys_free(out);
  return rc;
}
