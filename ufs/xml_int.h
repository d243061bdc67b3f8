/*
 * ufs/xml_int.h - the strict XML tokenizer that the S3, GCS and Azure
 * backends decode their answers with (ufs/xml.c). Elements are reported
 * through two callbacks; the caller keeps what it needs of each.
 */
#ifndef PM_UFS_XML_INT_H
#define PM_UFS_XML_INT_H

#include <stdbool.h>

#include "ufs/ufs_priv.h"

/* Caps on what is accepted from the network. */
#define PM_XML_TEXT_MAX (64 * 1024)
#define PM_XML_DEPTH_MAX 16

typedef struct pm_xml_sax {
  /* An element opens at depth (1 is the root). attrs is the raw text
   * between its name and the '>' (a closing '/' excluded), undecoded. */
  int (*open)(void *ctx, int depth, const char *name, size_t length,
              const char *attrs, size_t attrs_length);
  /* It closes, with its decoded text (character data and CDATA). */
  int (*close)(void *ctx, int depth, const char *name, size_t length,
               const pm_sbuf *text);
  void *ctx;
} pm_xml_sax;

/* Tokenize length bytes of xml, calling sax in document order. Returns 0,
 * the first non-zero value a callback returned, or PM_EPROTO with detail
 * (truncated, mismatched tags, unknown entities, a DOCTYPE, NUL bytes,
 * text over PM_XML_TEXT_MAX, nesting over PM_XML_DEPTH_MAX, a second
 * root). A leading UTF-8 byte order mark is skipped. */
int pm__xml_run(const char *xml, size_t length, const pm_xml_sax *sax);

/* Whether the n bytes at name are exactly the string want. */
bool pm__xml_name_eq(const char *name, size_t n, const char *want);

/* Copy text into out[size]; false if it does not fit. */
bool pm__xml_copy_text(const pm_sbuf *text, char *out, size_t size);

/* Whether raw attribute text holds name="value" (or 'value') exactly;
 * values are compared undecoded. */
bool pm__xml_attr_is(const char *attrs, size_t length, const char *name,
                     const char *value);

#endif /* PM_UFS_XML_INT_H */
