/*
 * ufs/curl_ca.c - which certificate authorities the HTTPS origins trust:
 * the system's (libcurl's default), or those the environment names, as
 * the tools users already set up read it: a bundle in CURL_CA_BUNDLE
 * (curl), else REQUESTS_CA_BUNDLE (requests, huggingface_hub), else
 * SSL_CERT_FILE (OpenSSL); a backend may put its own first (AWS_CA_BUNDLE,
 * botocore's, for S3 and GCS). SSL_CERT_DIR names a directory of hashed
 * certificates (c_rehash) trusted as well. A private S3-compatible store
 * (MinIO, Ceph) or a TLS-inspecting proxy needs one of these.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ufs/curl_int.h"

static int pick(const char *var, char *out, size_t size, int mode) {
  const char *v = pm__ufs_env(var);
  if (!v)
    return 0;
  if (!pm__ufs_home_path(out, size, var, v, "") || access(out, mode) != 0)
    return pm__errf(PM_ECONFIG, "%s=%.200s: cannot read it", var, v);
  return 1;
}

int pm__curl_ca_find(const char *first_var, pm_curl_ca *out) {
  out->file[0] = out->dir[0] = '\0';
  const char *const vars[] = {first_var, "CURL_CA_BUNDLE",
                              "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"};
  int rc = 0;
  for (size_t i = 0; i < PM_ARRAY_SIZE(vars) && rc == 0; i++)
    if (vars[i])
      rc = pick(vars[i], out->file, sizeof out->file, R_OK);
  if (rc < 0)
    return rc;
  rc = pick("SSL_CERT_DIR", out->dir, sizeof out->dir, R_OK | X_OK);
  return rc < 0 ? rc : 0;
}

int pm__curl_ca_apply(CURL *h, const pm_curl_ca *ca) {
  if ((ca->file[0] &&
       curl_easy_setopt(h, CURLOPT_CAINFO, ca->file) != CURLE_OK) ||
      (ca->dir[0] && curl_easy_setopt(h, CURLOPT_CAPATH, ca->dir) != CURLE_OK))
    return pm__errf(PM_ECONFIG, "libcurl refused the CA bundle %s%s",
                    ca->file, ca->dir);
  return 0;
}
