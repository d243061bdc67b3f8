/*
 * ufs/azure_xml.c - decoding Azure's List Blobs answers:
 *
 *   <EnumerationResults ContainerName="...">
 *     <Prefix/><Marker/><MaxResults/><Delimiter/>
 *     <Blobs>
 *       <Blob><Name>a/b</Name><Properties><Last-Modified>RFC 1123
 *         </Last-Modified><Etag>0x8D...</Etag><Content-Length>N
 *         </Content-Length>...</Properties></Blob>
 *       <BlobPrefix><Name>a/c/</Name></BlobPrefix>
 *     </Blobs>
 *     <NextMarker>opaque, empty on the last page</NextMarker>
 *   </EnumerationResults>
 *
 * A name the service could not put in XML comes percent-encoded with
 * Encoded="true". The tokenizer of ufs/xml.c enforces the caps; this file
 * only picks fields out, and refuses blobs without a name or a length.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ufs/azure_int.h"
#include "ufs/xml_int.h"

#define ETAG_MAX 1024

typedef struct list_ctx {
  pm_azure_item_cb cb;
  void *arg;
  pm_azure_list_page *page;
  bool in_blobs, in_blob, in_prefix, in_properties;
  bool has_name, has_size, name_encoded;
  bool directory; /* <ResourceType>directory: hierarchical namespace */
  pm_sbuf name;
  uint64_t size;
  int64_t mtime_ns;
  char etag[ETAG_MAX];
} list_ctx;

static void item_start(list_ctx *c, const char *name, size_t n) {
  c->in_blob = pm__xml_name_eq(name, n, "Blob");
  c->in_prefix = pm__xml_name_eq(name, n, "BlobPrefix");
  c->has_name = c->has_size = c->directory = false;
  c->size = 0;
  c->mtime_ns = 0;
  c->etag[0] = '\0';
  pm__sbuf_reset(&c->name);
}

static int list_open(void *arg, int depth, const char *name, size_t n,
                     const char *attrs, size_t attrs_length) {
  list_ctx *c = arg;
  if (depth == 1 && !pm__xml_name_eq(name, n, "EnumerationResults"))
    return pm__errf(PM_EPROTO, "not a List Blobs answer (root <%.*s>)",
                    (int)PM_MIN(n, (size_t)64), name);
  if (depth == 2)
    c->in_blobs = pm__xml_name_eq(name, n, "Blobs");
  else if (depth == 3 && c->in_blobs)
    item_start(c, name, n);
  else if (depth == 4 && (c->in_blob || c->in_prefix)) {
    c->in_properties = c->in_blob && pm__xml_name_eq(name, n, "Properties");
    if (pm__xml_name_eq(name, n, "Name"))
      c->name_encoded = pm__xml_attr_is(attrs, attrs_length, "Encoded", "true");
  }
  return 0;
}

static int take_name(list_ctx *c, const pm_sbuf *text) {
  pm__sbuf_reset(&c->name);
  if (c->name_encoded) {
    if (pm__uri_decode(&c->name, pm__sbuf_str(text), text->len))
      return pm__errf(PM_EPROTO, "bad percent-encoding in an encoded <Name>");
  } else {
    pm__sbuf_append(&c->name, pm__sbuf_str(text), text->len);
  }
  c->has_name = c->name.err == 0;
  return 0;
}

static int take_property(list_ctx *c, const char *name, size_t n,
                         const pm_sbuf *text) {
  if (pm__xml_name_eq(name, n, "Content-Length")) {
    int64_t v;
    if (pm__parse_u63(pm__sbuf_str(text), text->len, &v))
      return pm__errf(PM_EPROTO, "bad <Content-Length> \"%.32s\"",
                      pm__sbuf_str(text));
    c->size = (uint64_t)v;
    c->has_size = true;
  } else if (pm__xml_name_eq(name, n, "Last-Modified")) {
    time_t t = curl_getdate(pm__sbuf_str(text), NULL);
    c->mtime_ns = t > 0 ? (int64_t)t * 1000000000 : 0;
  } else if (pm__xml_name_eq(name, n, "ResourceType")) {
    c->directory = text->len == 9 &&
                   !strncasecmp(pm__sbuf_str(text), "directory", 9);
  } else if (pm__xml_name_eq(name, n, "Etag")) {
    if (!pm__xml_copy_text(text, c->etag, sizeof c->etag))
      return pm__errf(PM_EPROTO, "<Etag> too long");
  }
  return 0;
}

static int item_emit(list_ctx *c) {
  if (!c->has_name || (c->in_blob && !c->has_size))
    return pm__errf(PM_EPROTO, "<%s> without <%s>",
                    c->in_blob ? "Blob" : "BlobPrefix",
                    !c->has_name ? "Name" : "Content-Length");
  /* An account with a hierarchical namespace (abfs) lists each of its
   * directories as an empty blob too: not an object (its contents come
   * as a BlobPrefix, or as their own blobs when recursive). */
  if (c->in_blob && c->directory)
    return 0;
  pm_azure_item item = {.name = pm__sbuf_str(&c->name),
                        .is_prefix = c->in_prefix,
                        .size = c->size,
                        .mtime_ns = c->mtime_ns,
                        .etag = c->etag};
  c->page->items++;
  return c->cb(c->arg, &item);
}

static int list_close(void *arg, int depth, const char *name, size_t n,
                      const pm_sbuf *text) {
  list_ctx *c = arg;
  bool in_item = c->in_blob || c->in_prefix;
  if (depth == 5 && c->in_properties)
    return take_property(c, name, n, text);
  if (depth == 4 && in_item && pm__xml_name_eq(name, n, "Name"))
    return take_name(c, text);
  if (depth == 4)
    c->in_properties = false;
  if (depth == 3 && in_item) {
    int rc = item_emit(c);
    c->in_blob = c->in_prefix = false;
    return rc;
  }
  if (depth == 2 && pm__xml_name_eq(name, n, "NextMarker") &&
      !pm__xml_copy_text(text, c->page->next_marker,
                         sizeof c->page->next_marker))
    return pm__errf(PM_EPROTO, "<NextMarker> too long");
  if (depth == 2)
    c->in_blobs = false;
  return 0;
}

int pm__azure_list_parse(const char *xml, size_t length, pm_azure_item_cb cb,
                         void *arg, pm_azure_list_page *page) {
  memset(page, 0, sizeof *page);
  list_ctx c = {.cb = cb, .arg = arg, .page = page};
  pm__sbuf_init(&c.name, PM_XML_TEXT_MAX);
  pm_xml_sax sax = {list_open, list_close, &c};
  int rc = pm__xml_run(xml, length, &sax);
  pm__sbuf_free(&c.name);
  return rc;
}
