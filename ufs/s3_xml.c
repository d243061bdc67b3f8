/*
 * ufs/s3_xml.c - decoding the XML that S3 sends: ListObjectsV2 pages and
 * <Error> documents. It is network input, so the decoder is a small strict
 * tokenizer rather than a general XML parser: the caller caps the body
 * (PM_S3_LIST_BODY_MAX), text per element is capped (PM_S3_XML_TEXT_MAX),
 * nesting is capped (PM_S3_XML_DEPTH_MAX), end tags must match, only the
 * five predefined entities and numeric references (to valid, non-NUL code
 * points) are decoded, DOCTYPEs are refused (no entity expansion of any
 * kind), and nothing past the end of the buffer is read. Anything else is
 * PM_EPROTO with the byte offset in the detail.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ufs/s3_int.h"

#define ETAG_MAX 1024

/* ---- a strict little tokenizer ---------------------------------------------
 */

typedef struct xml_sax {
  int (*open)(void *ctx, int depth, const char *name, size_t length);
  int (*close)(void *ctx, int depth, const char *name, size_t length,
               const pm_sbuf *text);
  void *ctx;
} xml_sax;

typedef struct xml_parser {
  const char *start, *p, *end;
  struct {
    const char *name;
    size_t length;
  } stack[PM_S3_XML_DEPTH_MAX];
  int depth;
  bool root_done;
  pm_sbuf text; /* decoded text of the innermost open element */
  const xml_sax *sax;
} xml_parser;

static int xml_fail(const xml_parser *x, const char *why) {
  return pm__errf(PM_EPROTO, "malformed XML at byte %zu: %s",
                  (size_t)(x->p - x->start), why);
}

static const char *find(const char *p, const char *end, const char *needle) {
  size_t n = strlen(needle);
  for (; (size_t)(end - p) >= n; p++)
    if (*p == needle[0] && !memcmp(p, needle, n))
      return p;
  return NULL;
}

static bool starts(const xml_parser *x, const char *prefix) {
  size_t n = strlen(prefix);
  return (size_t)(x->end - x->p) >= n && !memcmp(x->p, prefix, n);
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void utf8_put(pm_sbuf *sb, uint32_t cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | (cp >> 6));
    b[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xE0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  pm__sbuf_append(sb, b, n);
}

/* "&#65;" / "&#x41;": the code point, or -1. */
static int64_t char_ref(const char *name, size_t n) {
  int base = 10;
  size_t i = 1;
  if (n > 1 && (name[1] == 'x' || name[1] == 'X')) {
    base = 16;
    i = 2;
  }
  if (i >= n || n - i > 8)
    return -1;
  int64_t cp = 0;
  for (; i < n; i++) {
    char c = name[i];
    int d = c >= '0' && c <= '9'                 ? c - '0'
            : base == 16 && c >= 'a' && c <= 'f' ? c - 'a' + 10
            : base == 16 && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
    if (d < 0)
      return -1;
    cp = cp * base + d;
  }
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return -1;
  return cp;
}

/* x->p is at '&'; stop is the end of the text run. */
static int xml_entity(xml_parser *x, const char *stop) {
  size_t avail = (size_t)(stop - x->p);
  const char *semi = memchr(x->p, ';', PM_MIN(avail, (size_t)12));
  if (!semi)
    return xml_fail(x, "unterminated entity");
  const char *name = x->p + 1;
  size_t n = (size_t)(semi - name);
  static const struct {
    const char *name;
    char c;
  } named[] = {
      {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  for (size_t i = 0; i < PM_ARRAY_SIZE(named); i++) {
    if (strlen(named[i].name) == n && !memcmp(name, named[i].name, n)) {
      pm__sbuf_append(&x->text, &named[i].c, 1);
      x->p = semi + 1;
      return 0;
    }
  }
  int64_t cp = n > 0 && name[0] == '#' ? char_ref(name, n) : -1;
  if (cp < 0)
    return xml_fail(x, "unknown entity or bad character reference");
  utf8_put(&x->text, (uint32_t)cp);
  x->p = semi + 1;
  return 0;
}

/* Character data up to the next '<'. */
static int xml_text(xml_parser *x) {
  const char *lt = memchr(x->p, '<', (size_t)(x->end - x->p));
  const char *stop = lt ? lt : x->end;
  if (x->depth == 0) {
    for (; x->p < stop; x->p++)
      if (!is_space(*x->p))
        return xml_fail(x, "text outside the root element");
    return 0;
  }
  while (x->p < stop) {
    if (*x->p == '&') {
      int rc = xml_entity(x, stop);
      if (rc)
        return rc;
      continue;
    }
    const char *run = x->p;
    while (x->p < stop && *x->p != '&' && *x->p != '\0')
      x->p++;
    pm__sbuf_append(&x->text, run, (size_t)(x->p - run));
    if (x->p < stop && *x->p == '\0')
      return xml_fail(x, "NUL byte in text");
  }
  return x->text.err ? xml_fail(x, "element text too long") : 0;
}

/* Skip "<?...?>" / "<!--...-->"; copy "<![CDATA[...]]>" into the text. */
static int xml_skip(xml_parser *x, const char *open, const char *close,
                    bool keep) {
  const char *body = x->p + strlen(open);
  const char *found = find(body, x->end, close);
  if (!found)
    return xml_fail(x, "unterminated markup");
  if (keep) {
    if (x->depth == 0 || memchr(body, '\0', (size_t)(found - body)))
      return xml_fail(x, "misplaced CDATA section");
    pm__sbuf_append(&x->text, body, (size_t)(found - body));
    if (x->text.err)
      return xml_fail(x, "element text too long");
  }
  x->p = found + strlen(close);
  return 0;
}

static size_t name_length(const xml_parser *x, const char *name) {
  const char *q = name;
  while (q < x->end && !is_space(*q) && *q != '/' && *q != '>' && *q != '<' &&
         *q != '\0')
    q++;
  return (size_t)(q - name);
}

static int xml_end_tag(xml_parser *x) {
  const char *name = x->p + 2;
  size_t n = name_length(x, name);
  const char *q = name + n;
  while (q < x->end && is_space(*q))
    q++;
  if (q >= x->end)
    return xml_fail(x, "truncated end tag");
  if (*q != '>' || x->depth == 0 || n != x->stack[x->depth - 1].length ||
      memcmp(name, x->stack[x->depth - 1].name, n))
    return xml_fail(x, "end tag does not match");
  int rc = x->sax->close(x->sax->ctx, x->depth, name, n, &x->text);
  if (rc)
    return rc;
  pm__sbuf_reset(&x->text);
  if (--x->depth == 0)
    x->root_done = true;
  x->p = q + 1;
  return 0;
}

static int xml_start_tag(xml_parser *x) {
  const char *name = x->p + 1;
  size_t n = name_length(x, name);
  if (n == 0)
    return xml_fail(x, "empty tag name");
  if (x->depth == 0 && x->root_done)
    return xml_fail(x, "a second root element");
  if (x->depth == PM_S3_XML_DEPTH_MAX)
    return xml_fail(x, "nested too deep");
  const char *q = name + n;
  char quote = 0;
  for (; q < x->end && (quote || *q != '>'); q++) {
    if (*q == '\0' || (!quote && *q == '<'))
      return xml_fail(x, "bad character in a tag");
    if (*q == '"' || *q == '\'')
      quote = quote == *q ? 0 : quote ? quote : *q;
  }
  if (q >= x->end)
    return xml_fail(x, "truncated tag");
  bool empty = q[-1] == '/' && q - 1 >= name + n;
  x->stack[x->depth].name = name;
  x->stack[x->depth].length = n;
  x->depth++;
  pm__sbuf_reset(&x->text);
  int rc = x->sax->open(x->sax->ctx, x->depth, name, n);
  if (rc)
    return rc;
  x->p = q + 1;
  if (!empty)
    return 0;
  rc = x->sax->close(x->sax->ctx, x->depth, name, n, &x->text);
  if (--x->depth == 0)
    x->root_done = true;
  return rc;
}

static int xml_markup(xml_parser *x) {
  if (starts(x, "<?"))
    return xml_skip(x, "<?", "?>", false);
  if (starts(x, "<!--"))
    return xml_skip(x, "<!--", "-->", false);
  if (starts(x, "<![CDATA["))
    return xml_skip(x, "<![CDATA[", "]]>", true);
  if (starts(x, "<!"))
    return xml_fail(x, "DOCTYPE and declarations are not accepted");
  if (starts(x, "</"))
    return xml_end_tag(x);
  return xml_start_tag(x);
}

static int xml_run(const char *xml, size_t length, const xml_sax *sax) {
  xml_parser x = {.start = xml, .p = xml, .end = xml + length, .sax = sax};
  pm__sbuf_init(&x.text, PM_S3_XML_TEXT_MAX);
  int rc = 0;
  while (rc == 0 && x.p < x.end)
    rc = *x.p == '<' ? xml_markup(&x) : xml_text(&x);
  if (rc == 0 && (x.depth > 0 || !x.root_done))
    rc = xml_fail(&x, "truncated document");
  pm__sbuf_free(&x.text);
  return rc;
}

static bool name_eq(const char *name, size_t n, const char *want) {
  return strlen(want) == n && !memcmp(name, want, n);
}

/* Copy text into out[size]; false if it does not fit. */
static bool copy_text(const pm_sbuf *text, char *out, size_t size) {
  if (text->len >= size)
    return false;
  memcpy(out, pm__sbuf_str(text), text->len + 1);
  return true;
}

/* ---- ListObjectsV2
 * ------------------------------------------------------------ */

typedef struct list_ctx {
  pm_s3_item_cb cb;
  void *arg;
  pm_s3_list_page *page;
  bool in_contents, in_prefixes, has_key, has_size;
  pm_sbuf key;
  uint64_t size;
  int64_t mtime_ns;
  char etag[ETAG_MAX];
} list_ctx;

static int list_open(void *arg, int depth, const char *name, size_t n) {
  list_ctx *c = arg;
  if (depth == 1 && !name_eq(name, n, "ListBucketResult"))
    return pm__errf(PM_EPROTO, "not a ListObjectsV2 answer (root <%.*s>)",
                    (int)PM_MIN(n, (size_t)64), name);
  if (depth != 2)
    return 0;
  c->in_contents = name_eq(name, n, "Contents");
  c->in_prefixes = name_eq(name, n, "CommonPrefixes");
  c->has_key = c->has_size = false;
  c->size = 0;
  c->mtime_ns = 0;
  c->etag[0] = '\0';
  pm__sbuf_reset(&c->key);
  return 0;
}

static int list_field(list_ctx *c, const char *name, size_t n,
                      const pm_sbuf *text) {
  if (name_eq(name, n, c->in_contents ? "Key" : "Prefix")) {
    pm__sbuf_reset(&c->key);
    pm__sbuf_append(&c->key, text->data ? text->data : "", text->len);
    c->has_key = c->key.err == 0;
  } else if (c->in_contents && name_eq(name, n, "Size")) {
    int64_t v;
    if (pm__parse_u63(pm__sbuf_str(text), text->len, &v))
      return pm__errf(PM_EPROTO, "bad <Size> \"%.32s\"", pm__sbuf_str(text));
    c->size = (uint64_t)v;
    c->has_size = true;
  } else if (c->in_contents && name_eq(name, n, "LastModified")) {
    if (pm__s3_parse_time(pm__sbuf_str(text), &c->mtime_ns))
      c->mtime_ns = 0;
  } else if (c->in_contents && name_eq(name, n, "ETag")) {
    if (!copy_text(text, c->etag, sizeof c->etag))
      return pm__errf(PM_EPROTO, "<ETag> too long");
  }
  return 0;
}

static int list_emit(list_ctx *c) {
  if (!c->has_key || (c->in_contents && !c->has_size))
    return pm__errf(PM_EPROTO, "<%s> without <%s>",
                    c->in_contents ? "Contents" : "CommonPrefixes",
                    !c->has_key ? (c->in_contents ? "Key" : "Prefix") : "Size");
  pm_s3_item item = {.key = pm__sbuf_str(&c->key),
                     .is_prefix = c->in_prefixes,
                     .size = c->size,
                     .mtime_ns = c->mtime_ns,
                     .etag = c->etag};
  c->page->items++;
  return c->cb(c->arg, &item);
}

static int list_close(void *arg, int depth, const char *name, size_t n,
                      const pm_sbuf *text) {
  list_ctx *c = arg;
  if (depth == 3 && (c->in_contents || c->in_prefixes))
    return list_field(c, name, n, text);
  if (depth != 2)
    return 0;
  int rc = 0;
  if (c->in_contents || c->in_prefixes)
    rc = list_emit(c);
  else if (name_eq(name, n, "IsTruncated"))
    c->page->truncated = name_eq(pm__sbuf_str(text), text->len, "true");
  else if (name_eq(name, n, "NextContinuationToken") &&
           !copy_text(text, c->page->next_token, sizeof c->page->next_token))
    rc = pm__errf(PM_EPROTO, "<NextContinuationToken> too long");
  c->in_contents = c->in_prefixes = false;
  return rc;
}

int pm__s3_list_parse(const char *xml, size_t length, pm_s3_item_cb cb,
                      void *arg, pm_s3_list_page *page) {
  memset(page, 0, sizeof *page);
  list_ctx c = {.cb = cb, .arg = arg, .page = page};
  pm__sbuf_init(&c.key, PM_S3_XML_TEXT_MAX);
  xml_sax sax = {list_open, list_close, &c};
  int rc = xml_run(xml, length, &sax);
  pm__sbuf_free(&c.key);
  return rc;
}

/* ---- <Error>
 * ------------------------------------------------------------------- */

typedef struct error_ctx {
  char *code, *message;
  size_t code_size, message_size;
} error_ctx;

static int error_open(void *arg, int depth, const char *name, size_t n) {
  (void)arg;
  if (depth == 1 && !name_eq(name, n, "Error"))
    return PM_EPROTO;
  return 0;
}

static int error_close(void *arg, int depth, const char *name, size_t n,
                       const pm_sbuf *text) {
  error_ctx *c = arg;
  if (depth == 2 && name_eq(name, n, "Code"))
    snprintf(c->code, c->code_size, "%s", pm__sbuf_str(text));
  else if (depth == 2 && name_eq(name, n, "Message"))
    snprintf(c->message, c->message_size, "%s", pm__sbuf_str(text));
  return 0;
}

int pm__s3_error_parse(const char *xml, size_t length, char *code,
                       size_t code_size, char *message, size_t message_size) {
  if (code_size)
    code[0] = '\0';
  if (message_size)
    message[0] = '\0';
  if (!xml || length == 0 || code_size == 0 || message_size == 0)
    return PM_EPROTO;
  error_ctx c = {code, message, code_size, message_size};
  xml_sax sax = {error_open, error_close, &c};
  char saved[PM_ERRMSG_MAX];
  snprintf(saved, sizeof saved, "%s", pm__errmsg());
  int rc = xml_run(xml, length, &sax);
  pm__errmsg_set(saved); /* a bad error body is not the error to report */
  return rc ? PM_EPROTO : 0;
}

/* ---- timestamps
 * ---------------------------------------------------------------- */

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int pm__s3_parse_time(const char *s, int64_t *out_ns) {
  int year, mon, day, hour, min, sec;
  if (strlen(s) < 20 || !digits(s, 4, &year) || s[4] != '-' ||
      !digits(s + 5, 2, &mon) || s[7] != '-' || !digits(s + 8, 2, &day) ||
      s[10] != 'T' || !digits(s + 11, 2, &hour) || s[13] != ':' ||
      !digits(s + 14, 2, &min) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return PM_EPROTO;
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
      sec > 60)
    return PM_EPROTO;
  const char *p = s + 19;
  int64_t frac_ns = 0, scale = 100000000;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
      frac_ns += scale ? (*p - '0') * scale : 0;
  if (strcmp(p, "Z") != 0)
    return PM_EPROTO;
  struct tm tm = {.tm_year = year - 1900,
                  .tm_mon = mon - 1,
                  .tm_mday = day,
                  .tm_hour = hour,
                  .tm_min = min,
                  .tm_sec = sec};
  time_t t = timegm(&tm);
  *out_ns = (int64_t)t * 1000000000 + frac_ns;
  return 0;
}
