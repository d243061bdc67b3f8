/*
 * ufs/azure_cert.c - the client assertion of a Microsoft Entra application
 * that authenticates with a certificate (AZURE_CLIENT_CERTIFICATE_PATH,
 * as the Azure SDKs' environment credential reads it): a JWT signed RS256
 * with the certificate's private key, its header naming the certificate
 * by thumbprint (x5t), its claims the token endpoint (aud), the
 * application (iss, sub), a random jti and ten minutes of validity. The
 * file is a PEM with the certificate and its unencrypted private key,
 * read anew for each assertion (certificates are rotated in place).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/azure_int.h"
#include "ufs/curl_int.h"

#define PEM_MAX (256u * 1024u)
#define ASSERTION_LIFETIME_S 600

/* The file's text and length (wipe and free it: free_pem), or
 * PM_ECONFIG naming the path. */
static int read_pem(const char *path, char **text, size_t *length) {
  *length = 0;
  *text = NULL;
  int rc = pm__ufs_read_small(path, PEM_MAX, text, length);
  if (!rc && !*text)
    rc = pm__errf(PM_ECONFIG, "%s: no such file (or not readable)", path);
  return rc;
}

/* All of it: a .pfx given by mistake holds NULs. */
static void free_pem(char *text, size_t length) {
  if (text) {
    explicit_bzero(text, length);
    free(text);
  }
}

static int check_text(const char *path, const char *text, char *x5t,
                      size_t size) {
  if (!pm__jwt_key_ok(text))
    return pm__errf(PM_ECONFIG, "%s: no unencrypted RSA private key in PEM "
                                "(a PKCS#12 .pfx, or a key with a password, "
                                "is not supported: `openssl pkcs12 -in F "
                                "-nodes` writes the PEM)", path);
  if (pm__jwt_x5t(text, x5t, size) != 0)
    return pm__errf(PM_ECONFIG, "%s: no PEM certificate beside the key",
                    path);
  if (!pm__jwt_cert_matches_key(text))
    return pm__errf(PM_ECONFIG, "%s: the first certificate is not the "
                                "key's (put the application's certificate "
                                "first, before any chain)", path);
  return 0;
}

int pm__azure_cert_check(const char *path) {
  char *text;
  size_t length;
  char x5t[64];
  int rc = read_pem(path, &text, &length);
  if (!rc)
    rc = check_text(path, text, x5t, sizeof x5t);
  free_pem(text, length);
  return rc;
}

int pm__azure_cert_assertion(const char *path, const char *client_id,
                             const char *token_url, pm_sbuf *out) {
  char *text;
  size_t length;
  char x5t[64], jti[33];
  unsigned char random[16];
  int rc = read_pem(path, &text, &length);
  if (!rc)
    rc = check_text(path, text, x5t, sizeof x5t);
  if (rc) {
    free_pem(text, length);
    return rc;
  }
  pm__random(random, sizeof random);
  for (size_t i = 0; i < sizeof random; i++)
    snprintf(jti + 2 * i, 3, "%02x", random[i]);
  json_int_t now = (json_int_t)(pm__wall_ns() / 1000000000ll);
  json_t *header = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT",
                             "x5t", x5t);
  json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "aud",
                             token_url, "iss", client_id, "sub", client_id,
                             "jti", jti, "nbf", now, "iat", now, "exp",
                             now + ASSERTION_LIFETIME_S);
  char *h = header ? json_dumps(header, JSON_COMPACT) : NULL;
  char *c = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
  json_decref(header);
  json_decref(claims);
  rc = !h || !c ? pm__errf(PM_ENOMEM, "out of memory")
                : pm__jwt_rs256(text, h, c, out);
  free(h);
  free(c);
  free_pem(text, length);
  return rc;
}
