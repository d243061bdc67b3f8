/*
 * transport/fabric_ep.c - the libfabric objects of one fabric transport:
 * choosing the provider (fi_getinfo with FI_EP_RDM, bound to the listen
 * address), the fabric, domain, completion queue, address vector and
 * endpoint; memory registration under whatever mr_mode the provider asks
 * for; the cache from advertised (hex) peer addresses to fi_addr_t; and the
 * one place where fi_* error codes become pm_err codes.
 *
 * The provider comes from FI_PROVIDER (read at each init, so a test can
 * choose it with setenv), otherwise fi_getinfo's first choice for the
 * listen address. We offer mr_mode LOCAL|VIRT_ADDR|PROV_KEY|ALLOCATED|
 * ENDPOINT and follow what comes back (tcp;ofi_rxm: none of them, shm:
 * VIRT_ADDR, verbs: LOCAL|VIRT_ADDR|PROV_KEY|ALLOCATED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/fabric_int.h"

#define FABRIC_API_VERSION FI_VERSION(1, 17)
#define CQ_SIZE 2048
#define NODE_MAX 128

/* ---- errors ----------------------------------------------------------------- */

static int map_fi_code(int code) {
  switch (code) {
  case FI_ENOMEM:
    return PM_ENOMEM;
  case FI_ENODATA: case FI_ENOSYS: case FI_EOPNOTSUPP:
    return PM_ENOTSUP;
  case FI_ETIMEDOUT: case FI_EAGAIN:
    return PM_ETIMEDOUT;
  case FI_EINVAL: case FI_EBADF:
    return PM_EINVAL;
  case FI_ETRUNC: case FI_EMSGSIZE: case FI_ETOOSMALL:
    return PM_ETOOBIG;
  case FI_EKEYREJECTED:
    return PM_EPROTO;
  case FI_ECONNREFUSED: case FI_ECONNRESET: case FI_ECONNABORTED:
  case FI_EHOSTUNREACH: case FI_ENETUNREACH: case FI_ENETDOWN:
  case FI_EADDRNOTAVAIL: case FI_EADDRINUSE: case FI_ECANCELED:
  case FI_ENOTCONN: case FI_ESHUTDOWN: case FI_EHOSTDOWN:
    return PM_EUNREACHABLE;
  default:
    return PM_EIO;
  }
}

int pm_fabric_err(int fi_rc, const char *what) {
  int code = fi_rc < 0 ? -fi_rc : fi_rc;
  return pm__errf(map_fi_code(code), "fabric: %s: %s (FI error %d)", what,
                  fi_strerror(code), code);
}

/* ---- provider selection -------------------------------------------------------- */

/* Split "IP:PORT" or "[IPv6]:PORT" into node and service (NULL for port 0:
 * the provider picks one). */
static int parse_listen(const char *listen, char *node, char *service,
                        const char **service_out) {
  if (!listen || !*listen)
    return pm__errf(PM_EINVAL, "fabric: no listen address");
  const char *colon = strrchr(listen, ':');
  const char *host = listen;
  size_t host_len = colon ? (size_t)(colon - listen) : 0;
  if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
    host++;
    host_len -= 2;
  }
  if (!colon || host_len == 0 || host_len >= NODE_MAX)
    return pm__errf(PM_EINVAL, "fabric: listen address \"%s\" is not IP:PORT",
                    listen);
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end || colon[1] == '\0' || port > 65535)
    return pm__errf(PM_EINVAL, "fabric: bad port in \"%s\"", listen);
  memcpy(node, host, host_len);
  node[host_len] = '\0';
  snprintf(service, 8, "%lu", port);
  *service_out = port ? service : NULL;
  return 0;
}

static struct fi_info *make_hints(void) {
  struct fi_info *hints = fi_allocinfo();
  if (!hints)
    return NULL;
  hints->ep_attr->type = FI_EP_RDM;
  hints->caps = FI_MSG | FI_RMA | FI_WRITE | FI_REMOTE_WRITE;
  hints->mode = FI_CONTEXT | FI_CONTEXT2 | FI_RX_CQ_DATA;
  hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
                                FI_MR_PROV_KEY | FI_MR_ALLOCATED |
                                FI_MR_ENDPOINT;
  hints->domain_attr->threading = FI_THREAD_SAFE;
  const char *prov = getenv("FI_PROVIDER");
  if (prov && *prov) {
    hints->fabric_attr->prov_name = strdup(prov);
    if (!hints->fabric_attr->prov_name) {
      fi_freeinfo(hints);
      return NULL;
    }
  }
  return hints;
}

static int get_info(pm_fabric *f, const char *listen) {
  char node[NODE_MAX], service[8];
  const char *service_arg = NULL;
  int rc = parse_listen(listen, node, service, &service_arg);
  if (rc)
    return rc;
  struct fi_info *hints = make_hints();
  if (!hints)
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate hints");
  rc = fi_getinfo(FABRIC_API_VERSION, node, service_arg, FI_SOURCE, hints,
                  &f->info);
  const char *prov = hints->fabric_attr->prov_name;
  if (rc) {
    char what[256];
    snprintf(what, sizeof what, "no provider%s%s for RDM+RMA on %s",
             prov ? " " : "", prov ? prov : "", listen);
    fi_freeinfo(hints);
    f->info = NULL;
    return pm_fabric_err(rc, what);
  }
  fi_freeinfo(hints);
  snprintf(f->provider, sizeof f->provider, "%s",
           f->info->fabric_attr->prov_name);
  return 0;
}

/* Check what the provider granted and derive the request id mask. */
static int check_info(pm_fabric *f) {
  struct fi_info *info = f->info;
  size_t cq_data = info->domain_attr->cq_data_size;
  if (cq_data < 4)
    return pm__errf(PM_ENOTSUP,
                    "fabric: provider %s carries %zu bytes of CQ data, "
                    "need 4", f->provider, cq_data);
  f->id_mask = cq_data >= 8 ? UINT64_MAX : (1ull << (8 * cq_data)) - 1;
  f->mr_mode = (uint64_t)info->domain_attr->mr_mode;
  f->next_key = 1;
  PM_LOG(PM_LOG_DEBUG, "fabric",
         "provider %s domain %s mr_mode 0x%llx cq_data %zu", f->provider,
         info->domain_attr->name, (unsigned long long)f->mr_mode, cq_data);
  return 0;
}

/* ---- objects ------------------------------------------------------------------ */

/* A CQ with a wait object (the progress thread blocks in fi_cq_sread
 * when idle) if the provider has one, else one without (it polls, and
 * sleeps between empty polls). PM_FABRIC_CQ_WAIT=none asks for the latter
 * on any provider, to test that path. */
static int open_cq(pm_fabric *f) {
  struct fi_cq_attr attr = {
      .size = CQ_SIZE,
      .format = FI_CQ_FORMAT_DATA,
      .wait_obj = FI_WAIT_UNSPEC,
  };
  const char *wait = getenv("PM_FABRIC_CQ_WAIT");
  int rc = wait && strcmp(wait, "none") == 0
               ? -FI_ENOSYS
               : fi_cq_open(f->domain, &attr, &f->cq, NULL);
  if (rc == 0) {
    f->cq_waitable = true;
    return 0;
  }
  attr.wait_obj = FI_WAIT_NONE;
  rc = fi_cq_open(f->domain, &attr, &f->cq, NULL);
  if (rc)
    return pm_fabric_err(rc, "fi_cq_open");
  f->cq_waitable = false;
  return 0;
}

static int open_ep(pm_fabric *f) {
  struct fi_av_attr av_attr = {
      .type = f->info->domain_attr->av_type,
      .count = PM_FABRIC_PEERS_MAX,
  };
  int rc = fi_av_open(f->domain, &av_attr, &f->av, NULL);
  if (rc) {
    av_attr.count = 0; /* shm refuses more than its peer limit */
    rc = fi_av_open(f->domain, &av_attr, &f->av, NULL);
  }
  if (rc)
    return pm_fabric_err(rc, "fi_av_open");
  rc = fi_endpoint(f->domain, f->info, &f->ep, NULL);
  if (rc)
    return pm_fabric_err(rc, "fi_endpoint");
  rc = fi_ep_bind(f->ep, &f->av->fid, 0);
  if (rc)
    return pm_fabric_err(rc, "fi_ep_bind(av)");
  rc = fi_ep_bind(f->ep, &f->cq->fid, FI_TRANSMIT | FI_RECV);
  if (rc)
    return pm_fabric_err(rc, "fi_ep_bind(cq)");
  rc = fi_enable(f->ep);
  if (rc)
    return pm_fabric_err(rc, "fi_enable");
  return 0;
}

static int read_name(pm_fabric *f) {
  size_t len = sizeof f->self_addr;
  int rc = fi_getname(&f->ep->fid, f->self_addr, &len);
  if (rc)
    return pm_fabric_err(rc, "fi_getname");
  if (len == 0 || len > PM_FABRIC_RAWADDR_MAX)
    return pm__errf(PM_ETOOBIG, "fabric: address of %zu bytes", len);
  f->self_addr_len = len;
  return pm_fabric_hex_encode(f->self_addr, len, f->self_hex,
                              sizeof f->self_hex);
}

int pm_fabric_ep_open(pm_fabric *f, const char *listen) {
  int rc = get_info(f, listen);
  if (!rc)
    rc = check_info(f);
  if (!rc && (rc = fi_fabric(f->info->fabric_attr, &f->fabric, NULL)))
    rc = pm_fabric_err(rc, "fi_fabric");
  if (!rc && (rc = fi_domain(f->fabric, f->info, &f->domain, NULL)))
    rc = pm_fabric_err(rc, "fi_domain");
  if (!rc)
    rc = open_cq(f);
  if (!rc)
    rc = open_ep(f);
  if (!rc)
    rc = read_name(f);
  if (rc) {
    char detail[PM_ERRMSG_MAX];
    snprintf(detail, sizeof detail, "%s (listen %s)", pm__errmsg(), listen);
    pm__errmsg_set(detail);
  }
  return rc;
}

static void close_fid(void *fidp) {
  struct fid **fid = fidp;
  if (*fid) {
    int rc = fi_close(*fid);
    if (rc)
      PM_LOG(PM_LOG_WARN, "fabric", "fi_close: %s", fi_strerror(-rc));
    *fid = NULL;
  }
}

void pm_fabric_ep_close_endpoint(pm_fabric *f) {
  close_fid(&f->ep);
}

void pm_fabric_ep_close(pm_fabric *f) {
  close_fid(&f->ep);
  close_fid(&f->av);
  close_fid(&f->cq);
  close_fid(&f->domain);
  close_fid(&f->fabric);
  if (f->info)
    fi_freeinfo(f->info);
  f->info = NULL;
}

/* ---- memory registration ----------------------------------------------------------- */

/* Keys we choose (no FI_MR_PROV_KEY) are random, not a counter: a
 * provider like tcp;ofi_rxm accepts RMA from any endpoint that names a
 * valid key, so keys must not be guessable. The low bits count, so keys
 * of one domain never collide. */
static uint64_t next_requested_key(pm_fabric *f) {
  if (f->mr_mode & FI_MR_PROV_KEY)
    return 0;
  uint64_t key;
  pm__random(&key, sizeof key);
  key = (key & ~0xffffull) | (atomic_fetch_add(&f->next_key, 1) & 0xffff);
  size_t key_size = f->info->domain_attr->mr_key_size;
  if (key_size < 8)
    key &= (1ull << (8 * key_size)) - 1;
  return key;
}

int pm_fabric_buf_register(pm_fabric *f, pm_fabric_buf *buf, void *data,
                           size_t size, uint64_t access) {
  buf->data = data;
  buf->size = size;
  buf->access = access;
  int rc = fi_mr_reg(f->domain, data, size, access, 0, next_requested_key(f),
                     0, &buf->mr, NULL);
  if (rc) {
    buf->mr = NULL;
    return pm_fabric_err(rc, "fi_mr_reg");
  }
  if (f->mr_mode & FI_MR_ENDPOINT) {
    rc = fi_mr_bind(buf->mr, &f->ep->fid, 0);
    if (!rc)
      rc = fi_mr_enable(buf->mr);
    if (rc) {
      pm_fabric_buf_unregister(buf);
      return pm_fabric_err(rc, "fi_mr_bind/enable");
    }
  }
  buf->desc = fi_mr_desc(buf->mr);
  buf->key = fi_mr_key(buf->mr);
  if (buf->key == FI_KEY_NOTAVAIL) {
    pm_fabric_buf_unregister(buf);
    return pm__errf(PM_ENOTSUP, "fabric: provider uses raw MR keys");
  }
  buf->rma_addr = (f->mr_mode & FI_MR_VIRT_ADDR) ? (uint64_t)(uintptr_t)data
                                                 : 0;
  return 0;
}

void pm_fabric_buf_unregister(pm_fabric_buf *buf) {
  close_fid(&buf->mr);
  buf->desc = NULL;
  buf->key = 0;
}

int pm_fabric_buf_alloc(pm_fabric *f, pm_fabric_buf *buf, size_t size,
                        uint64_t access) {
  void *data = NULL;
  memset(buf, 0, sizeof *buf);
  if (posix_memalign(&data, 4096, size ? size : 1))
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate a %zu-byte buffer",
                    size);
  int rc = pm_fabric_buf_register(f, buf, data, size, access);
  if (rc) {
    free(data);
    buf->data = NULL;
  }
  return rc;
}

int pm_fabric_buf_rekey(pm_fabric *f, pm_fabric_buf *buf) {
  pm_fabric_buf_unregister(buf);
  return pm_fabric_buf_register(f, buf, buf->data, buf->size, buf->access);
}

void pm_fabric_buf_free(pm_fabric_buf *buf) {
  pm_fabric_buf_unregister(buf);
  free(buf->data);
  memset(buf, 0, sizeof *buf);
}

/* ---- peers --------------------------------------------------------------------- */

static unsigned bucket_of(const char *hex) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const char *p = hex; *p; p++)
    h = (h ^ (uint8_t)*p) * 16777619u;
  return h % PM_FABRIC_PEER_BUCKETS;
}

/* Forget the peer unused longest, if it has been unused for
 * peer_idle_ns; false if none has (under peer_lock). */
static bool forget_idle_peer(pm_fabric *f, uint64_t now) {
  pm_fabric_peer **oldest = NULL;
  for (unsigned b = 0; b < PM_FABRIC_PEER_BUCKETS; b++)
    for (pm_fabric_peer **p = &f->peers[b]; *p; p = &(*p)->next)
      if (!oldest || (*p)->used_ns < (*oldest)->used_ns)
        oldest = p;
  if (!oldest || now - (*oldest)->used_ns < f->peer_idle_ns)
    return false;
  pm_fabric_peer *gone = *oldest;
  *oldest = gone->next;
  fi_av_remove(f->av, &gone->fi_addr, 1, 0);
  free(gone);
  f->peer_count--;
  return true;
}

static int insert_peer(pm_fabric *f, const char *hex, unsigned bucket,
                       fi_addr_t *out) {
  uint8_t raw[PM_FABRIC_RAWADDR_MAX];
  ssize_t len = pm_fabric_hex_decode(hex, raw, sizeof raw);
  if (len < 0)
    return (int)len;
  uint64_t now = pm__now_ns();
  if (f->peer_count >= f->peers_max && !forget_idle_peer(f, now))
    return pm__errf(PM_EBUSY, "fabric: %u peers already known, all used in "
                    "the last %llu s", f->peer_count,
                    (unsigned long long)(f->peer_idle_ns / 1000000000ull));
  size_t hex_len = strlen(hex);
  pm_fabric_peer *peer = malloc(sizeof *peer + hex_len + 1);
  if (!peer)
    return pm__errf(PM_ENOMEM, "fabric: cannot allocate a peer");
  int rc = fi_av_insert(f->av, raw, 1, &peer->fi_addr, 0, NULL);
  if (rc != 1) {
    free(peer);
    char what[96];
    snprintf(what, sizeof what, "fi_av_insert(%.40s)", hex);
    return pm_fabric_err(rc < 0 ? rc : -FI_EADDRNOTAVAIL, what);
  }
  memcpy(peer->hex, hex, hex_len + 1);
  peer->used_ns = now;
  peer->next = f->peers[bucket];
  f->peers[bucket] = peer;
  f->peer_count++;
  *out = peer->fi_addr;
  return 0;
}

int pm_fabric_advertised(const char *addr, const char **hex) {
  size_t n = strlen(PM_FABRIC_ADDR_SCHEME);
  if (strncmp(addr, PM_FABRIC_ADDR_SCHEME, n) == 0) {
    *hex = addr + n;
    return 0;
  }
  size_t scheme = strcspn(addr, "-");
  if (addr[scheme] == '-' && scheme < 16 && !strncmp(addr, "pmf", 3))
    return pm__errf(PM_EPROTO,
                    "fabric: the peer speaks protocol %.*s, this peer %.*s",
                    (int)scheme, addr, (int)n - 1, PM_FABRIC_ADDR_SCHEME);
  return pm__errf(PM_EPROTO,
                  "fabric: \"%.24s\" is not a fabric address of protocol "
                  "%.*s",
                  addr, (int)n - 1, PM_FABRIC_ADDR_SCHEME);
}

int pm_fabric_peer_resolve(pm_fabric *f, const char *hex, fi_addr_t *out) {
  unsigned bucket = bucket_of(hex);
  int rc = 0;
  pthread_mutex_lock(&f->peer_lock);
  pm_fabric_peer *peer = f->peers[bucket];
  while (peer && strcmp(peer->hex, hex) != 0)
    peer = peer->next;
  if (peer) {
    *out = peer->fi_addr;
    peer->used_ns = pm__now_ns();
  } else
    rc = insert_peer(f, hex, bucket, out);
  pthread_mutex_unlock(&f->peer_lock);
  return rc;
}

void pm_fabric_peers_clear(pm_fabric *f) {
  for (unsigned i = 0; i < PM_FABRIC_PEER_BUCKETS; i++) {
    while (f->peers[i]) {
      pm_fabric_peer *next = f->peers[i]->next;
      free(f->peers[i]);
      f->peers[i] = next;
    }
  }
  f->peer_count = 0;
}
