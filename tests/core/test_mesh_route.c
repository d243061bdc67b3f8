/* Tests for pm__mesh_route (core/mesh_fetch.c): a member is reached over
 * fabric only when it advertises a fabric address of the same protocol
 * version as ours (the scheme before the first '-'), else over tcp. The
 * transports are only compared, never called: stand-in pointers do. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/mesh_int.h"

TestSuite(mesh_route, .timeout = 10);

static pm_transport *const TCP = (pm_transport *)0x1000;
static pm_transport *const FABRIC = (pm_transport *)0x2000;

static void advertise(pm_mesh *mesh, const char *fabric) {
  mesh->meta.fabric_len = (uint16_t)strlen(fabric);
  memcpy(mesh->meta.fabric_addr, fabric, mesh->meta.fabric_len);
}

Test(mesh_route, fabric_only_to_the_same_protocol) {
  static pm_mesh mesh;
  memset(&mesh, 0, sizeof mesh);
  mesh.tcp = TCP;
  mesh.fabric = FABRIC;
  advertise(&mesh, "pmf1-0a0b0c");
  pm_view_peer peers[5] = {0};
  const char *fabric[] = {"pmf1-1a2b3c", "pmf2-1a2b3c", "1a2b3c", "", "pmf1"};
  for (int i = 0; i < 5; i++) {
    snprintf(peers[i].tcp, sizeof peers[i].tcp, "127.0.0.1:%d", 7000 + i);
    snprintf(peers[i].fabric, sizeof peers[i].fabric, "%s", fabric[i]);
  }
  pm_view v = {.count = 5, .peers = peers, .self = SIZE_MAX};
  const char *addr;
  cr_assert_eq(pm__mesh_route(&mesh, &v, 0, &addr), FABRIC);
  cr_assert_str_eq(addr, "pmf1-1a2b3c");
  for (size_t i = 1; i < 5; i++) {
    cr_assert_eq(pm__mesh_route(&mesh, &v, i, &addr), TCP, "peer %zu", i);
    cr_assert_str_eq(addr, peers[i].tcp);
  }
  mesh.fabric = NULL; /* a tcp-only member reaches everyone over tcp */
  cr_assert_eq(pm__mesh_route(&mesh, &v, 0, &addr), TCP);
  peers[0].tcp[0] = '\0';
  cr_assert_null(pm__mesh_route(&mesh, &v, 0, &addr));
}
