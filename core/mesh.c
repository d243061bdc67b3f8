/*
 * core/mesh.c - joining the mesh and the view of it that placement uses.
 * The node peer starts a page transport (tcp, and fabric if asked), then
 * membership, advertising the transport addresses and its disk capacity as
 * its placement weight. Its member id is kept in <cache_dir>/member.id, so
 * a restarted node keeps its place (and its pages stay where placement
 * looks for them); every start is a new boot epoch. Membership events mark
 * the view stale; the next page lookup rebuilds it from a snapshot.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mesh_int.h"

/* ---- member id kept in the cache directory -------------------------------- */

static void load_or_make_id(pm_peer *peer, pm__member_id *id) {
  char path[PM_URI_MAX], hex[64] = "";
  snprintf(path, sizeof path, "%s/member.id", peer->cache_dir);
  FILE *f = fopen(path, "re");
  pm_page_id parsed;
  if (f) {
    bool ok = fgets(hex, sizeof hex, f) && pm__page_id_parse(hex, &parsed) == 0;
    fclose(f);
    if (ok) {
      memcpy(id->bytes, parsed.bytes, sizeof id->bytes);
      return;
    }
  }
  pm__random(id->bytes, sizeof id->bytes);
  memcpy(parsed.bytes, id->bytes, sizeof parsed.bytes);
  pm__page_id_hex(&parsed, hex);
  f = fopen(path, "we");
  if (f) {
    fprintf(f, "%s\n", hex);
    fclose(f);
  }
}

/* The boot epoch of this start: the wall clock, but always above the
 * last start's (kept in member.epoch next to member.id). Other members
 * tell a restarted member from its past by a higher epoch; a clock that
 * stepped back (NTP after a start with the clock ahead) gave a lower one,
 * and the new life's records were ignored while it acked pings meant for
 * the old one, which then never died. */
static uint64_t next_boot_epoch(pm_peer *peer) {
  char path[PM_URI_MAX], tmp[PM_URI_MAX + 16], text[32] = "";
  snprintf(path, sizeof path, "%s/member.epoch", peer->cache_dir);
  uint64_t last = 0, epoch = (uint64_t)pm__wall_ns();
  FILE *f = fopen(path, "re");
  if (f) {
    if (fgets(text, sizeof text, f))
      last = strtoull(text, NULL, 10);
    fclose(f);
  }
  if (epoch <= last)
    epoch = last + 1;
  snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
  f = fopen(tmp, "we");
  if (f) {
    bool ok = fprintf(f, "%llu\n", (unsigned long long)epoch) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0)
      unlink(tmp);
  }
  return epoch;
}

/* ---- the view --------------------------------------------------------------- */

static void view_release(pm_view *v) {
  if (v && atomic_fetch_sub(&v->refs, 1) == 1) {
    free(v->members);
    free(v->peers);
    free(v);
  }
}

static pm_place_health health_of(pm__member_state state) {
  switch (state) {
  case PM_MEMBER_ALIVE:
    return PM_PLACE_ALIVE;
  case PM_MEMBER_SUSPECT:
    return PM_PLACE_SUSPECT;
  default:
    return PM_PLACE_GONE;
  }
}

static pm_view *view_build(pm_mesh *mesh) {
  pm__member_info *info = NULL;
  size_t count = 0;
  if (pm__swim_driver_snapshot(mesh->driver, &info, &count) != 0)
    return NULL;
  pm_view *v = calloc(1, sizeof *v);
  if (v) {
    v->members = calloc(count ? count : 1, sizeof *v->members);
    v->peers = calloc(count ? count : 1, sizeof *v->peers);
  }
  if (!v || !v->members || !v->peers) {
    if (v) {
      free(v->members);
      free(v->peers);
    }
    free(v);
    free(info);
    return NULL;
  }
  atomic_init(&v->refs, 1);
  v->self = SIZE_MAX;
  for (size_t i = 0; i < count; i++) {
    pm_placement_member *m = &v->members[i];
    memcpy(m->id, info[i].id.bytes, sizeof m->id);
    m->weight = info[i].meta.capacity;
    m->health = health_of(info[i].state);
    pm_view_peer *p = &v->peers[i];
    snprintf(p->tcp, sizeof p->tcp, "%s", info[i].meta.tcp_addr);
    size_t flen = PM_MIN((size_t)info[i].meta.fabric_len, sizeof p->fabric - 1);
    memcpy(p->fabric, info[i].meta.fabric_addr, flen);
    p->fabric[flen] = '\0';
    if (pm__member_id_eq(&info[i].id, &mesh->self_id))
      v->self = i;
  }
  v->count = count;
  pm__placement_prepare(v->members, count);
  free(info);
  return v;
}

pm_view *pm__mesh_view(pm_mesh *mesh) {
  pthread_mutex_lock(&mesh->view_mutex);
  if (mesh->driver &&
      (atomic_exchange(&mesh->view_dirty, false) || !mesh->view)) {
    pm_view *fresh = view_build(mesh);
    if (fresh) {
      view_release(mesh->view);
      mesh->view = fresh;
    } else {
      atomic_store(&mesh->view_dirty, true);
    }
  }
  pm_view *v = mesh->view;
  if (v)
    atomic_fetch_add(&v->refs, 1);
  pthread_mutex_unlock(&mesh->view_mutex);
  return v;
}

void pm__mesh_view_release(pm_view *view) {
  view_release(view);
}

static void on_member_event(void *arg, pm__swim_event_kind kind,
                            const pm__member_info *member) {
  pm_mesh *mesh = arg;
  atomic_store(&mesh->view_dirty, true);
  if (kind != PM_SWIM_EV_SUSPECT && kind != PM_SWIM_EV_REAP)
    pm__mesh_members_changed(mesh);
  char hex[33];
  pm__member_id_hex(&member->id, hex);
  static const char *const names[] = {"joined", "updated", "is suspect",
                                      "is dead", "left", "was forgotten"};
  PM_LOG(kind == PM_SWIM_EV_UPDATE ? PM_LOG_DEBUG : PM_LOG_INFO, "mesh",
         "member %.8s (%s) %s", hex, member->addr,
         kind <= PM_SWIM_EV_REAP ? names[kind] : "changed");
}

/* ---- start and stop ----------------------------------------------------------- */

static void split_host(const char *listen, char *host, size_t size) {
  snprintf(host, size, "%s", listen);
  char *colon = strrchr(host, ':');
  if (colon)
    *colon = '\0';
}

static int start_transports(pm_mesh *mesh, pm__member_meta *meta) {
  pm_peer *peer = mesh->peer;
  char host[PM_SWIM_ADDR_MAX], listen[PM_SWIM_ADDR_MAX + 8];
  split_host(peer->opts.listen, host, sizeof host);
  if (peer->opts.transport_listen)
    snprintf(listen, sizeof listen, "%s", peer->opts.transport_listen);
  else
    snprintf(listen, sizeof listen, "%s:0", host);
  pm_transport_config tc = {
      .size = sizeof tc,
      .listen = listen,
      .cluster_key = mesh->key,
      .cluster_id = peer->opts.cluster_id ? peer->opts.cluster_id : "pagemesh",
      .insecure_data = (peer->opts.flags & PM_OPEN_INSECURE_DATA) != 0,
      .max_page_size = peer->opts.page_size,
      .server_threads = 4,
      .server = {.serve_get = pm__mesh_serve_get,
                 .serve_put = pm__mesh_serve_put,
                 .arg = peer,
                 .serve_file = pm__mesh_serve_file},
  };
  int err = pm__transport_open("tcp", &tc, &mesh->tcp);
  if (!err)
    err = pm__transport_address(mesh->tcp, meta->tcp_addr,
                                sizeof meta->tcp_addr);
  bool fabric = peer->opts.transport && strcmp(peer->opts.transport,
                                               "fabric") == 0;
  if (!err && fabric) {
    char fabric_listen[PM_SWIM_ADDR_MAX + 8];
    snprintf(fabric_listen, sizeof fabric_listen, "%s:0", host);
    tc.listen = fabric_listen;
    err = pm__transport_open("fabric", &tc, &mesh->fabric);
    char addr[PM_SWIM_FABRIC_MAX + 1];
    if (!err)
      err = pm__transport_address(mesh->fabric, addr, sizeof addr);
    if (!err) {
      meta->fabric_len = (uint16_t)PM_MIN(strlen(addr), sizeof
                                          meta->fabric_addr);
      memcpy(meta->fabric_addr, addr, meta->fabric_len);
    }
  }
  return err;
}

static int read_key(pm_mesh *mesh) {
  const char *path = mesh->peer->opts.cluster_key_file;
  if (!path)
    path = getenv("PAGEMESH_CLUSTER_KEY_FILE");
  if (!path || !*path)
    return pm__errf(PM_ECONFIG, "joining a mesh needs a cluster key: "
                    "--cluster-key-file or PAGEMESH_CLUSTER_KEY_FILE");
  return pm__cluster_key_read(path, &mesh->key);
}

/* Seeds "a:1,b:2" as an array of strings (one allocation). */
static char **split_seeds(const char *text, size_t *count) {
  *count = 0;
  if (!text || !*text)
    return NULL;
  size_t n = 1;
  for (const char *p = text; *p; p++)
    n += *p == ',';
  size_t len = strlen(text) + 1;
  char **out = malloc(n * sizeof *out + len);
  if (!out)
    return NULL;
  char *copy = (char *)(out + n);
  memcpy(copy, text, len);
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save))
    if (*tok)
      out[(*count)++] = tok;
  return out;
}

/* A seed is HOST:PORT (a name, an IPv4 address or [IPv6]) with a port
 * of 1..65535: anything else is a typo to say at once, not a member that
 * never answers. */
static bool seed_ok(const char *seed) {
  const char *colon = strrchr(seed, ':');
  if (!colon || colon == seed || (seed[0] == '[' && colon[-1] != ']'))
    return false;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  return colon[1] && !*end && port >= 1 && port <= 65535;
}

/* A seed's address as the membership layer takes it ("IP:PORT",
 * "[IPv6]:PORT"): a host name is resolved now, since the membership layer
 * only reads numbers, to its first address of the family this peer
 * listens on ("localhost" is often ::1 first, and a peer on 127.0.0.1
 * cannot reach it), or its first address if it has none of that family;
 * a name that does not resolve is PM_ECONFIG, said at once rather than a
 * mesh that never forms. */
#define SEED_ADDR_MAX 64
/* The first address of `family` in a lookup's answers, else the first. */
static const struct addrinfo *pick_address(const struct addrinfo *all,
                                           int family) {
  for (const struct addrinfo *a = all; a; a = a->ai_next)
    if (a->ai_family == family)
      return a;
  return all;
}

static int resolve_seed(const char *seed, const char *listen,
                        char out[SEED_ADDR_MAX]) {
  const char *colon = strrchr(seed, ':');
  char host[256];
  size_t hlen = (size_t)(colon - seed);
  if (seed[0] == '[' || hlen >= sizeof host) {
    if (strlen(seed) >= SEED_ADDR_MAX)
      return pm__errf(PM_ECONFIG, "seed \"%.200s\" is too long", seed);
    snprintf(out, SEED_ADDR_MAX, "%s", seed);
    return 0;
  }
  memcpy(host, seed, hlen);
  host[hlen] = '\0';
  struct in_addr v4;
  if (inet_pton(AF_INET, host, &v4) == 1) {
    snprintf(out, SEED_ADDR_MAX, "%s", seed);
    return 0;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM}, *all = NULL;
  int rc = getaddrinfo(host, NULL, &hints, &all);
  if (rc == 0 && !all)
    rc = EAI_NONAME;
  if (rc != 0)
    return pm__errf(PM_ECONFIG, "seed \"%.200s\": cannot resolve %s: %s",
                    seed, host, gai_strerror(rc));
  const struct addrinfo *found = pick_address(
      all, listen && listen[0] == '[' ? AF_INET6 : AF_INET);
  char ip[INET6_ADDRSTRLEN] = "";
  if (found->ai_family == AF_INET)
    inet_ntop(AF_INET, &((struct sockaddr_in *)found->ai_addr)->sin_addr,
              ip, sizeof ip);
  else
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)found->ai_addr)->sin6_addr,
              ip, sizeof ip);
  bool v6 = found->ai_family == AF_INET6;
  freeaddrinfo(all);
  snprintf(out, SEED_ADDR_MAX, v6 ? "[%s]%s" : "%s%s", ip, colon);
  PM_LOG(PM_LOG_INFO, "mesh", "seed %s is %s", seed, out);
  return 0;
}

static int start_membership(pm_mesh *mesh, const pm__member_meta *meta) {
  pm_peer *peer = mesh->peer;
  size_t seed_count;
  char **seeds = split_seeds(peer->opts.seeds, &seed_count);
  if (peer->opts.seeds && *peer->opts.seeds && !seeds)
    return pm__errf(PM_ENOMEM, "mesh: out of memory");
  char (*resolved)[SEED_ADDR_MAX] =
      seed_count ? calloc(seed_count, SEED_ADDR_MAX) : NULL;
  if (seed_count && !resolved) {
    free(seeds);
    return pm__errf(PM_ENOMEM, "mesh: out of memory");
  }
  for (size_t i = 0; i < seed_count; i++) {
    int err = seed_ok(seeds[i])
                  ? resolve_seed(seeds[i], peer->opts.listen, resolved[i])
                  : pm__errf(PM_ECONFIG, "seed \"%.200s\" is not HOST:PORT",
                             seeds[i]);
    if (err) {
      free(resolved);
      free(seeds);
      return err;
    }
    seeds[i] = resolved[i];
  }
  pm__swim_driver_config dc = {
      .listen = peer->opts.listen,
      .seeds = (const char *const *)seeds,
      .seed_count = seed_count,
      .cluster_key = mesh->key,
      .cluster_id = peer->opts.cluster_id ? peer->opts.cluster_id : "pagemesh",
      .id = &mesh->self_id,
      .boot_epoch = next_boot_epoch(peer),
      .meta = meta,
      .event_fn = on_member_event,
      .event_arg = mesh,
  };
  int err = pm__swim_driver_start(&dc, &mesh->driver);
  free(resolved);
  free(seeds);
  return err;
}

int pm__mesh_start(pm_peer *peer, pm_mesh **out) {
  *out = NULL;
  if (!peer->opts.listen)
    return 0;
  pm_mesh *mesh = calloc(1, sizeof *mesh);
  if (!mesh)
    return pm__errf(PM_ENOMEM, "out of memory");
  mesh->peer = peer;
  mesh->started_ns = pm__now_ns();
  pthread_mutex_init(&mesh->view_mutex, NULL);
  pthread_mutex_init(&mesh->rebalance_lock, NULL);
  atomic_init(&mesh->view_dirty, true);
  load_or_make_id(peer, &mesh->self_id);
  pm__member_meta *meta = &mesh->meta;
  meta->capacity = peer->opts.disk_capacity;
  if (peer->opts.zone)
    snprintf(meta->zone, sizeof meta->zone, "%s", peer->opts.zone);
  peer->mesh = mesh; /* the transports may call back as soon as they run */
  int err = read_key(mesh);
  if (!err)
    err = start_transports(mesh, meta);
  if (!err)
    err = start_membership(mesh, meta);
  if (err) {
    char detail[PM_ERRMSG_MAX];
    snprintf(detail, sizeof detail, "%s", pm__errmsg());
    pm__mesh_stop(mesh);
    peer->mesh = NULL;
    pm__errmsg_set(detail);
    return err;
  }
  /* The members at start, for the first change to be compared with: a
   * node alone that another joins later warms it (mesh_rebalance.c);
   * without a view to compare with, that first change was only noted. */
  pthread_mutex_lock(&mesh->rebalance_lock);
  if (!mesh->rebalance_view)
    mesh->rebalance_view = pm__mesh_view(mesh);
  pthread_mutex_unlock(&mesh->rebalance_lock);
  PM_LOG(PM_LOG_INFO, "mesh", "joined as %s (pages on %s%s%s)",
         pm__swim_driver_addr(mesh->driver), meta->tcp_addr,
         mesh->fabric ? ", fabric " : "", mesh->fabric ? "on" : "");
  *out = mesh;
  return 0;
}

void pm__mesh_leave(pm_mesh *mesh) {
  if (!mesh || !mesh->driver)
    return;
  /* The others stop sending requests; no more membership events. Readers
   * of the driver hold view_mutex. */
  pthread_mutex_lock(&mesh->view_mutex);
  pm__swim_driver *driver = mesh->driver;
  mesh->driver = NULL;
  pthread_mutex_unlock(&mesh->view_mutex);
  pm__swim_driver_leave(driver, 2000000000ull);
}

int pm__mesh_task_submit(pm_mesh *mesh, void (*fn)(void *), void *arg,
                         size_t max_queued) {
  /* Counted before the flag is read, the flag set before the count is
   * (pm__mesh_stop): either this sees it, or the stop sees the count. */
  atomic_fetch_add(&mesh->tasks, 1);
  int rc = atomic_load(&mesh->stopping)
               ? pm__errf(PM_ESHUTDOWN, "the mesh is stopping")
               : pm__pool_submit_background(mesh->peer->pool, fn, arg,
                                            max_queued);
  if (rc)
    atomic_fetch_sub(&mesh->tasks, 1);
  return rc;
}

void pm__mesh_task_done(pm_mesh *mesh) {
  atomic_fetch_sub(&mesh->tasks, 1);
}

void pm__mesh_stop(pm_mesh *mesh) {
  if (!mesh)
    return;
  pm__mesh_leave(mesh);
  /* No membership events from here on. A peer that closes has run its
   * pool dry already; a node that failed to start still runs it: what it
   * queued meanwhile finishes before the mesh goes (the pool runs every
   * queued task, even when stopping), and nothing is queued after this
   * (the transports still serve until they close below). */
  atomic_store(&mesh->stopping, true);
  while (atomic_load(&mesh->tasks) > 0)
    usleep(1000);
  pm__transport_close(mesh->fabric);
  pm__transport_close(mesh->tcp);
  view_release(mesh->view);
  view_release(mesh->rebalance_view);
  if (mesh->key)
    pm__cluster_key_free(mesh->key);
  pthread_mutex_destroy(&mesh->view_mutex);
  pthread_mutex_destroy(&mesh->rebalance_lock);
  free(mesh);
}

int pm__mesh_set_weight(pm_mesh *mesh, uint64_t capacity) {
  pthread_mutex_lock(&mesh->view_mutex);
  mesh->meta.capacity = capacity;
  int err = mesh->driver ? pm__swim_driver_update_meta(mesh->driver,
                                                       &mesh->meta)
                         : 0;
  atomic_store(&mesh->view_dirty, true);
  pthread_mutex_unlock(&mesh->view_mutex);
  if (!err)
    pm__mesh_members_changed(mesh);
  return err;
}

/* ---- status ------------------------------------------------------------------ */

json_t *pm__mesh_members_json(pm_mesh *mesh) {
  pm__member_info *info = NULL;
  size_t count = 0;
  json_t *arr = json_array();
  if (!mesh)
    return arr;
  pthread_mutex_lock(&mesh->view_mutex);
  int err = mesh->driver ? pm__swim_driver_snapshot(mesh->driver, &info,
                                                    &count)
                         : PM_ESHUTDOWN;
  pthread_mutex_unlock(&mesh->view_mutex);
  if (err)
    return arr;
  for (size_t i = 0; i < count; i++) {
    char hex[33];
    pm__member_id_hex(&info[i].id, hex);
    json_array_append_new(arr, json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:b}", "id", hex, "addr",
        info[i].addr, "state", pm__member_state_name(info[i].state),
        "boot_epoch", (json_int_t)info[i].boot_epoch, "incarnation",
        (json_int_t)info[i].incarnation, "capacity",
        (json_int_t)info[i].meta.capacity, "zone", info[i].meta.zone,
        "tcp", info[i].meta.tcp_addr, "self",
        pm__member_id_eq(&info[i].id, &mesh->self_id)));
  }
  free(info);
  return arr;
}

void pm__mesh_stats(pm_mesh *mesh, pm_mesh_stats *out) {
  memset(out, 0, sizeof *out);
  if (!mesh)
    return;
  out->pages_from_peers = atomic_load(&mesh->pages_from_peers);
  out->bytes_from_peers = atomic_load(&mesh->bytes_from_peers);
  out->peer_failures = atomic_load(&mesh->peer_failures);
  out->replicas_pushed = atomic_load(&mesh->replicas_pushed);
  pm_transport_stats ts;
  if (pm__transport_stats(mesh->tcp, &ts) == 0) {
    out->pages_to_peers += ts.gets_served;
    out->bytes_to_peers += ts.bytes_sent;
  }
  if (mesh->fabric && pm__transport_stats(mesh->fabric, &ts) == 0) {
    out->pages_to_peers += ts.gets_served;
    out->bytes_to_peers += ts.bytes_sent;
  }
  pm__member_info *info = NULL;
  size_t count = 0;
  pthread_mutex_lock(&mesh->view_mutex);
  int err = mesh->driver ? pm__swim_driver_snapshot(mesh->driver, &info,
                                                    &count)
                         : PM_ESHUTDOWN;
  pthread_mutex_unlock(&mesh->view_mutex);
  if (err == 0) {
    for (size_t i = 0; i < count; i++) {
      switch (info[i].state) {
      case PM_MEMBER_ALIVE: out->alive++; break;
      case PM_MEMBER_SUSPECT: out->suspect++; break;
      case PM_MEMBER_DEAD: out->dead++; break;
      default: out->left++; break;
      }
    }
    free(info);
  }
}
