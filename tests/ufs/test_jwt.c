/*
 * tests/ufs/test_jwt.c - the RS256 JSON Web Token of ufs/jwt.c: what it
 * signs verifies with the key's public half (OpenSSL checks it here), its
 * parts decode back to the header and claims given, and a key that is no
 * PEM RSA private key is refused.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "ufs/curl_int.h"

TestSuite(jwt, .timeout = 30);

static char *pem_of(EVP_PKEY *key) {
  BIO *bio = BIO_new(BIO_s_mem());
  cr_assert(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL));
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  char *pem = strndup(data, (size_t)n);
  BIO_free(bio);
  return pem;
}

static size_t unb64(const char *text, size_t n, unsigned char *out,
                    size_t room) {
  size_t len = 0;
  cr_assert_eq(sodium_base642bin(out, room, text, n, NULL, &len, NULL,
                                 sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               0, "not base64url: %.*s", (int)n, text);
  return len;
}

Test(jwt, rs256_verifies_with_the_public_key) {
  EVP_PKEY *key = EVP_RSA_gen(2048);
  cr_assert_not_null(key);
  char *pem = pem_of(key);
  const char *header = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
  const char *claims = "{\"iss\":\"sa@p.iam\",\"aud\":\"https://t/token\"}";
  pm_sbuf out;
  pm__sbuf_init(&out, 8192);
  cr_assert_eq(pm__jwt_rs256(pem, header, claims, &out), 0, "%s",
               pm__errmsg());
  const char *jwt = pm__sbuf_str(&out);
  const char *dot1 = strchr(jwt, '.'), *dot2 = strrchr(jwt, '.');
  cr_assert(dot1 && dot2 && dot1 < dot2, "%s", jwt);
  cr_assert_null(strpbrk(jwt, "=+/"), "base64url without padding: %s", jwt);
  unsigned char buf[1024];
  size_t n = unb64(jwt, (size_t)(dot1 - jwt), buf, sizeof buf);
  cr_assert(n == strlen(header) && !memcmp(buf, header, n));
  n = unb64(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf, sizeof buf);
  cr_assert(n == strlen(claims) && !memcmp(buf, claims, n));
  size_t sig_len = unb64(dot2 + 1, strlen(dot2 + 1), buf, sizeof buf);
  cr_assert_eq(sig_len, 256);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  cr_assert_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
  cr_assert_eq(EVP_DigestVerify(md, buf, sig_len, (const unsigned char *)jwt,
                                (size_t)(dot2 - jwt)),
               1, "the signature must verify");
  /* and not over other bytes */
  cr_assert_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
  cr_assert_neq(EVP_DigestVerify(md, buf, sig_len, (const unsigned char *)jwt,
                                 (size_t)(dot2 - jwt) - 1),
                1);
  EVP_MD_CTX_free(md);
  pm__sbuf_free(&out);
  free(pem);
  EVP_PKEY_free(key);
}

Test(jwt, keys_that_cannot_sign_rs256_are_refused) {
  pm_sbuf out;
  pm__sbuf_init(&out, 8192);
  cr_assert_eq(pm__jwt_rs256("not a key", "{}", "{}", &out), PM_ECONFIG);
  cr_assert(strstr(pm__errmsg(), "PEM RSA"), "%s", pm__errmsg());
  cr_assert_eq(pm__jwt_rs256("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END "
                             "PRIVATE KEY-----\n", "{}", "{}", &out),
               PM_ECONFIG);
  EVP_PKEY *ec = EVP_EC_gen("P-256");
  char *pem = pem_of(ec);
  cr_assert_eq(pm__jwt_rs256(pem, "{}", "{}", &out), PM_ECONFIG, "EC: not RS256");
  free(pem);
  EVP_PKEY_free(ec);
  /* a token over the buffer's cap */
  EVP_PKEY *key = EVP_RSA_gen(2048);
  pem = pem_of(key);
  pm_sbuf small;
  pm__sbuf_init(&small, 64);
  cr_assert_eq(pm__jwt_rs256(pem, "{}", "{\"long\":\"claims, longer than 64 "
                                        "bytes once encoded\"}", &small),
               PM_ETOOBIG);
  pm__sbuf_free(&small);
  pm__sbuf_free(&out);
  free(pem);
  EVP_PKEY_free(key);
}

/* x5t: base64url of the SHA-1 of the certificate's DER, as Entra ID
 * expects in a client assertion's header; found after the key in a PEM
 * that holds both. */
Test(jwt, x5t_is_the_certificate_thumbprint) {
  EVP_PKEY *key = EVP_RSA_gen(2048);
  X509 *cert = X509_new();
  cr_assert(key && cert);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"app-1", -1, -1, 0);
  X509_set_issuer_name(cert, name);
  cr_assert(X509_sign(cert, key, EVP_sha256()) > 0);
  char *pem_key = pem_of(key);
  BIO *bio = BIO_new(BIO_s_mem());
  BIO_puts(bio, pem_key);
  cr_assert(PEM_write_bio_X509(bio, cert));
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  char *both = strndup(data, (size_t)n);
  BIO_free(bio);
  unsigned char want[20];
  unsigned int want_len = 0;
  cr_assert(X509_digest(cert, EVP_sha1(), want, &want_len));
  char x5t[64];
  cr_assert_eq(pm__jwt_x5t(both, x5t, sizeof x5t), 0, "%s", pm__errmsg());
  cr_assert_eq(strlen(x5t), 27, "%s", x5t);
  unsigned char got[32];
  cr_assert_eq(unb64(x5t, strlen(x5t), got, sizeof got), 20);
  cr_assert(!memcmp(got, want, 20), "the SHA-1 of the DER");
  cr_assert(pm__jwt_key_ok(both), "the certificate is found past the key");
  cr_assert_eq(pm__jwt_x5t(pem_key, x5t, sizeof x5t), PM_ECONFIG,
               "a key alone has no thumbprint");
  cr_assert_eq(pm__jwt_x5t("garbage", x5t, sizeof x5t), PM_ECONFIG);
  cr_assert(pm__jwt_cert_matches_key(both));
  /* the certificate of another key: said at load, not by Entra later */
  EVP_PKEY *other = EVP_RSA_gen(2048);
  char *other_pem = pem_of(other);
  size_t cert_at = strstr(both, "-----BEGIN CERTIFICATE") - both;
  char *mixed = malloc(strlen(other_pem) + strlen(both + cert_at) + 1);
  strcpy(mixed, other_pem);
  strcat(mixed, both + cert_at);
  cr_assert(pm__jwt_key_ok(mixed));
  cr_assert_not(pm__jwt_cert_matches_key(mixed));
  cr_assert_not(pm__jwt_cert_matches_key(pem_key), "no certificate");
  free(mixed);
  free(other_pem);
  EVP_PKEY_free(other);
  free(both);
  free(pem_key);
  X509_free(cert);
  EVP_PKEY_free(key);
}
