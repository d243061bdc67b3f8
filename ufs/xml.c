/*
 * ufs/xml.c - the strict little XML tokenizer behind every XML answer an
 * origin sends (S3 and GCS listings, Azure's List Blobs, <Error>
 * documents). It is network input, so this is no general XML parser:
 * the caller caps the body, text per element is capped
 * (PM_XML_TEXT_MAX), nesting is capped (PM_XML_DEPTH_MAX), end tags must
 * match, only the five predefined entities and numeric references (to
 * valid, non-NUL code points) are decoded, DOCTYPEs are refused (no entity
 * expansion of any kind), and nothing past the end of the buffer is read.
 * Anything else is PM_EPROTO with the byte offset in the detail. Callers
 * see elements through open/close callbacks (ufs/xml_int.h).
 */
#include <stdio.h>
#include <string.h>

#include "ufs/xml_int.h"

typedef struct xml_parser {
  const char *start, *p, *end;
  struct {
    const char *name;
    size_t length;
  } stack[PM_XML_DEPTH_MAX];
  int depth;
  bool root_done;
  pm_sbuf text; /* decoded text of the innermost open element */
  const pm_xml_sax *sax;
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
  if (x->depth == PM_XML_DEPTH_MAX)
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
  const char *attrs = name + n;
  size_t attrs_len = (size_t)(q - attrs) - (empty ? 1 : 0);
  int rc = x->sax->open(x->sax->ctx, x->depth, name, n, attrs, attrs_len);
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

int pm__xml_run(const char *xml, size_t length, const pm_xml_sax *sax) {
  xml_parser x = {.start = xml, .p = xml, .end = xml + length, .sax = sax};
  if (length >= 3 && !memcmp(xml, "\xEF\xBB\xBF", 3))
    x.p += 3; /* a UTF-8 byte order mark, as Azure sends */
  pm__sbuf_init(&x.text, PM_XML_TEXT_MAX);
  int rc = 0;
  while (rc == 0 && x.p < x.end)
    rc = *x.p == '<' ? xml_markup(&x) : xml_text(&x);
  if (rc == 0 && (x.depth > 0 || !x.root_done))
    rc = xml_fail(&x, "truncated document");
  pm__sbuf_free(&x.text);
  return rc;
}

bool pm__xml_name_eq(const char *name, size_t n, const char *want) {
  return strlen(want) == n && !memcmp(name, want, n);
}

/* Copy text into out[size]; false if it does not fit. */
bool pm__xml_copy_text(const pm_sbuf *text, char *out, size_t size) {
  if (text->len >= size)
    return false;
  memcpy(out, pm__sbuf_str(text), text->len + 1);
  return true;
}

static bool attr_name_char(char c) {
  return c != '=' && c != ' ' && c != '\t' && c != '\r' && c != '\n';
}

/* The next name="value" pair of [*p, end), or false at the end. */
static bool next_attr(const char **p, const char *end, const char **name,
                      size_t *name_len, const char **value, size_t *value_len) {
  while (*p < end && is_space(**p))
    (*p)++;
  *name = *p;
  while (*p < end && attr_name_char(**p))
    (*p)++;
  *name_len = (size_t)(*p - *name);
  while (*p < end && is_space(**p))
    (*p)++;
  if (*name_len == 0 || *p + 1 >= end || **p != '=')
    return false;
  (*p)++;
  while (*p < end && is_space(**p))
    (*p)++;
  char quote = *p < end ? **p : 0;
  if (quote != '"' && quote != '\'')
    return false;
  *value = ++(*p);
  const char *close = memchr(*p, quote, (size_t)(end - *p));
  if (!close)
    return false;
  *value_len = (size_t)(close - *value);
  *p = close + 1;
  return true;
}

bool pm__xml_attr_is(const char *attrs, size_t length, const char *name,
                     const char *value) {
  const char *p = attrs, *end = attrs + length, *n, *v;
  size_t n_len, v_len;
  while (next_attr(&p, end, &n, &n_len, &v, &v_len))
    if (pm__xml_name_eq(n, n_len, name) && pm__xml_name_eq(v, v_len, value))
      return true;
  return false;
}
