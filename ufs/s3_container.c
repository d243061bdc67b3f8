/*
 * ufs/s3_container.c - S3 keys from the container credentials endpoint,
 * as the AWS SDKs' container provider gets them: an ECS task's role
 * (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, served by the ECS agent at
 * 169.254.170.2) or an EKS pod's (EKS Pod Identity: the agent at
 * AWS_CONTAINER_CREDENTIALS_FULL_URI, the call authorized by the
 * projected token in AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE). The keys
 * expire; ufs/s3_creds.c fetches them again before they do.
 */
#include <stdio.h>
#include <string.h>

#include "ufs/curl_int.h"
#include "ufs/s3_int.h"

#define ECS_HOST "http://169.254.170.2"
#define URL_MAX 2048
/* What the endpoint may answer, and the longest authorization token. */
#define OUTPUT_MAX (64u * 1024u)
#define TOKEN_MAX (16u * 1024u)

/* A full URI's rule, as the AWS SDKs for Java and JavaScript have it:
 * https to anywhere; http only to this host or to the link-local
 * addresses of ECS and EKS Pod Identity (botocore's list). No user info
 * in either: "http://169.254.170.2:80@elsewhere/" names elsewhere. */
static bool full_uri_allowed(const char *url) {
  static const char *const agents[] = {"169.254.170.2", "169.254.170.23",
                                       "[fd00:ec2::23]"};
  bool https = !strncmp(url, "https://", 8);
  const char *host = url + (https ? 8 : 7);
  size_t n = strcspn(host, "/?#");
  if ((!https && strncmp(url, "http://", 7) != 0) || n == 0 ||
      memchr(host, '@', n))
    return false;
  if (https || pm__ufs_url_for_secrets(url))
    return true;
  for (size_t i = 0; i < PM_ARRAY_SIZE(agents); i++) {
    size_t h = strlen(agents[i]);
    if (n < h || strncmp(host, agents[i], h) != 0)
      continue;
    if (n == h)
      return true;
    if (host[h] != ':') /* "169.254.170.234": another host */
      continue;
    size_t digits = strspn(host + h + 1, "0123456789");
    return digits > 0 && h + 1 + digits == n;
  }
  return false;
}

static bool printable(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == 0x7f)
      return false;
  return true;
}

int pm__s3_creds_from_container(pm_s3_config *cfg, bool *used) {
  *used = false;
  const char *rel = pm__ufs_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  const char *full = pm__ufs_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (!rel && !full)
    return 0;
  char url[URL_MAX + sizeof ECS_HOST];
  if (rel && (rel[0] != '/' || strlen(rel) > URL_MAX || !printable(rel)))
    return pm__errf(PM_ECONFIG, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: not "
                                "a path that starts with '/', of printable "
                                "characters, at most %d bytes", URL_MAX);
  if (!rel && (strlen(full) > URL_MAX || !printable(full) ||
               !full_uri_allowed(full)))
    return pm__errf(PM_ECONFIG, "AWS_CONTAINER_CREDENTIALS_FULL_URI "
                                "\"%.100s\": credentials are fetched over "
                                "https, or over http from this host, "
                                "169.254.170.2, 169.254.170.23 or "
                                "[fd00:ec2::23] only", full);
  snprintf(url, sizeof url, "%s%s", rel ? ECS_HOST : "", rel ? rel : full);
  const char *file = pm__ufs_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  const char *token =
      file ? NULL : pm__ufs_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  char source[sizeof url + 32];
  snprintf(source, sizeof source, "the container role (%s)", url);
  cfg->cred_kind = PM_S3_CREDS_CONTAINER;
  if (pm__s3_config_set(&cfg->container_url, url) ||
      (file && pm__s3_config_set(&cfg->container_token_file, file)) ||
      (token && pm__s3_config_set(&cfg->container_token, token)) ||
      pm__s3_config_set(&cfg->cred_source, source) ||
      pm__s3_fetched_new(cfg))
    return pm__errf(PM_ENOMEM, "s3 config: out of memory");
  *used = true;
  return 0;
}

int pm__s3_container_fetch(const pm_s3_config *cfg, pm_s3_keys *keys,
                           int64_t *expires_ns) {
  pm_sbuf token, body;
  pm__sbuf_init(&token, TOKEN_MAX);
  pm__sbuf_init(&body, OUTPUT_MAX);
  int rc = 0;
  const char *auth = cfg->container_token;
  if (cfg->container_token_file) { /* read anew: the kubelet rotates it */
    rc = pm__ufs_read_token_file(cfg->container_token_file, &token);
    auth = pm__sbuf_str(&token);
  }
  if (!rc && auth && strpbrk(auth, "\r\n"))
    rc = pm__errf(PM_EACCES, "the authorization token holds a line break");
  long status = 0;
  /* An agent that is starting (a pod's first seconds) is asked again, as
   * the SDKs do. */
  if (!rc)
    rc = pm__short_get_retrying(cfg->container_url,
                                !strncmp(cfg->container_url, "https://", 8),
                                auth ? "Authorization" : NULL, auth, &body,
                                &status);
  if (!rc && status != 200) {
    char text[121] = ""; /* the agent's reason, on one line */
    for (size_t i = 0; i < body.len && i + 1 < sizeof text; i++)
      text[i] = (unsigned char)body.data[i] < 0x20 ? ' ' : body.data[i];
    rc = pm__errf(PM_EACCES, "HTTP %ld%s%s", status, text[0] ? ": " : "",
                  text);
  }
  if (!rc)
    rc = pm__s3_parse_creds(body.data ? body.data : "", body.len,
                            PM_S3_FORM_CONTAINER, keys, expires_ns);
  pm__sbuf_free_secret(&token);
  pm__sbuf_free_secret(&body);
  return rc;
}
