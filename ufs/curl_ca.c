/*
 * ufs/curl_ca.c - which certificate authorities the HTTPS origins trust:
 * the system's (libcurl's default), or those the environment names, as
 * the tools users already set up read it: a bundle in REQUESTS_CA_BUNDLE
 * (requests, huggingface_hub; a directory there is taken as one), else
 * CURL_CA_BUNDLE (curl), else SSL_CERT_FILE (OpenSSL); a backend may put
 * its own first (AWS_CA_BUNDLE, botocore's, for S3). SSL_CERT_DIR names
 * directories of hashed certificates (c_rehash) trusted as well. A private S3-compatible store
 * (MinIO, Ceph) or a TLS-inspecting proxy needs one of these.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ufs/curl_int.h"

/* The path var names into out: 1 if it is a regular file (a bundle), 2
 * if a directory (hashed certificates, as requests takes one in
 * REQUESTS_CA_BUNDLE), 0 if var is unset. */
static int pick(const char *var, char *out, size_t size) {
  const char *v = pm__ufs_env(var);
  if (!v)
    return 0;
  struct stat st;
  if (!pm__ufs_home_path(out, size, var, v, "") || stat(out, &st) != 0 ||
      access(out, R_OK) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
    return pm__errf(PM_ECONFIG, "%s=%.200s: cannot read it", var, v);
  return S_ISDIR(st.st_mode) ? 2 : 1;
}

int pm__curl_ca_find(const char *first_var, pm_curl_ca *out) {
  out->file[0] = out->dir[0] = '\0';
  const char *const vars[] = {first_var, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                              "SSL_CERT_FILE"};
  char path[sizeof out->file];
  for (size_t i = 0; i < PM_ARRAY_SIZE(vars); i++) {
    int rc = vars[i] ? pick(vars[i], path, sizeof path) : 0;
    if (rc < 0)
      return rc;
    if (rc) {
      snprintf(rc == 1 ? out->file : out->dir, sizeof out->file, "%s", path);
      break;
    }
  }
  /* SSL_CERT_DIR may be a list (dir:dir), as OpenSSL reads it */
  const char *dirs = pm__ufs_env("SSL_CERT_DIR");
  if (dirs && !out->dir[0] && strchr(dirs, ':')) {
    snprintf(out->dir, sizeof out->dir, "%s", dirs);
  } else if (dirs && !out->dir[0]) {
    int rc = pick("SSL_CERT_DIR", path, sizeof path);
    if (rc == 1)
      return pm__errf(PM_ECONFIG, "SSL_CERT_DIR=%.200s: not a directory",
                      dirs);
    if (rc < 0)
      return rc;
    snprintf(out->dir, sizeof out->dir, "%s", path);
  }
  return 0;
}

int pm__curl_ca_apply(CURL *h, const pm_curl_ca *ca) {
  if ((ca->file[0] &&
       curl_easy_setopt(h, CURLOPT_CAINFO, ca->file) != CURLE_OK) ||
      (ca->dir[0] && curl_easy_setopt(h, CURLOPT_CAPATH, ca->dir) != CURLE_OK))
    return pm__errf(PM_ECONFIG, "libcurl refused the CA bundle %s%s",
                    ca->file, ca->dir);
  return 0;
}
