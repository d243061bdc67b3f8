/*
 * ufs/jwt.c - a JSON Web Token signed with RS256 (RSASSA-PKCS1-v1_5 over
 * SHA-256, RFC 7515/7518), as a Google service account signs the
 * assertion it trades for an access token: base64url(header) "."
 * base64url(claims) "." base64url(signature), without padding. The key is
 * the PEM private key of the account's JSON key file, or of a certificate
 * an Entra application signs its client assertions with (whose header
 * names the certificate by its x5t thumbprint); OpenSSL's libcrypto
 * (already linked for curl's TLS) signs.
 */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"

/* RSA keys up to 8192 bits: signatures up to 1 KiB. */
#define SIG_MAX 1024

static void put_b64url(pm_sbuf *out, const unsigned char *bytes, size_t n) {
  size_t room = sodium_base64_ENCODED_LEN(
      n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *text = malloc(room);
  if (!text) {
    out->err = PM_ENOMEM;
    return;
  }
  sodium_bin2base64(text, room, bytes, n,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  pm__sbuf_puts(out, text);
  explicit_bzero(text, room);
  free(text);
}

/* An encrypted key is refused, never prompted for on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf;
  (void)size;
  (void)rwflag;
  (void)u;
  return -1;
}

static EVP_PKEY *load_key(const char *pem) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *key =
      bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  ERR_clear_error(); /* leave nothing for curl's OpenSSL to trip on */
  if (key && EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    EVP_PKEY_free(key);
    key = NULL;
  }
  return key;
}

/* Sign input (start..end of out) into sig. */
static int sign(EVP_PKEY *key, const pm_sbuf *out, size_t start,
                unsigned char *sig, size_t *sig_len) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
           EVP_DigestSign(md, sig, sig_len,
                          (const unsigned char *)out->data + start,
                          out->len - start) == 1;
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  return ok ? 0
            : pm__errf(PM_ECONFIG, "cannot sign with the private key (an RSA "
                                   "key over 8192 bits?)");
}

/* The first certificate in pem, or NULL. Read from its own header on:
 * OpenSSL would decode a key before it while looking, and free its bytes
 * unwiped. */
static X509 *load_cert(const char *pem) {
  const char *begin = strstr(pem, "-----BEGIN CERTIFICATE-----");
  BIO *bio = begin ? BIO_new_mem_buf(begin, -1) : NULL;
  X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  return cert;
}

int pm__jwt_x5t(const char *pem, char *out, size_t size) {
  X509 *cert = load_cert(pem);
  unsigned char *der = NULL;
  int der_len = cert ? i2d_X509(cert, &der) : -1;
  X509_free(cert);
  ERR_clear_error();
  if (der_len <= 0)
    return pm__errf(PM_ECONFIG, "no PEM certificate");
  unsigned char sha1[SHA_DIGEST_LENGTH];
  SHA1(der, (size_t)der_len, sha1);
  OPENSSL_free(der);
  pm_sbuf text;
  pm__sbuf_init(&text, 64);
  put_b64url(&text, sha1, sizeof sha1);
  int rc = text.err    ? pm__errf(PM_ENOMEM, "out of memory for a thumbprint")
           : text.len >= size ? pm__errf(PM_ETOOBIG, "no room for a thumbprint")
                              : 0;
  if (!rc)
    memcpy(out, text.data, text.len + 1);
  pm__sbuf_free(&text);
  return rc;
}

bool pm__jwt_cert_matches_key(const char *pem) {
  X509 *cert = load_cert(pem);
  EVP_PKEY *key = cert ? load_key(pem) : NULL;
  bool match = key && X509_check_private_key(cert, key) == 1;
  EVP_PKEY_free(key);
  X509_free(cert);
  ERR_clear_error();
  return match;
}

bool pm__jwt_key_ok(const char *pem_key) {
  EVP_PKEY *key = load_key(pem_key);
  EVP_PKEY_free(key);
  return key != NULL;
}

int pm__jwt_rs256(const char *pem_key, const char *header_json,
                  const char *claims_json, pm_sbuf *out) {
  EVP_PKEY *key = load_key(pem_key);
  if (!key)
    return pm__errf(PM_ECONFIG, "the private key is not a PEM RSA key "
                                "(without a passphrase)");
  size_t start = out->len;
  put_b64url(out, (const unsigned char *)header_json, strlen(header_json));
  pm__sbuf_puts(out, ".");
  put_b64url(out, (const unsigned char *)claims_json, strlen(claims_json));
  unsigned char sig[SIG_MAX];
  size_t sig_len = sizeof sig;
  int rc = out->err ? 0 : sign(key, out, start, sig, &sig_len);
  if (!rc && !out->err) {
    pm__sbuf_puts(out, ".");
    put_b64url(out, sig, sig_len);
  }
  if (!rc && out->err)
    rc = out->err == PM_ENOMEM
             ? pm__errf(PM_ENOMEM, "out of memory for the token")
             : pm__errf(PM_ETOOBIG, "the token is too long");
  EVP_PKEY_free(key);
  return rc;
}
