/*
 * perf/bench_env.h - what the transport benchmarks print about the machine
 * before their tables: the load average and the kernel's TCP congestion
 * control. Both shape loopback figures: on the 2-core VM we measure on,
 * the default is bbr, and a 1 MiB fabric GET over tcp;ofi_rxm took a p50
 * of ~340 us under it against ~200-240 us under cubic, while the bare
 * fi_read loop was ~125-175 us under either (same build, back-to-back
 * runs; the sockets are libfabric's, so pagemesh cannot choose). Header-
 * only, static functions.
 */
#ifndef PM_BENCH_ENV_H
#define PM_BENCH_ENV_H

#include <stdio.h>
#include <string.h>

/* The first line of a /proc file, without its newline, or "?" */
static void bench_env_read(const char *path, char *out, size_t size) {
  snprintf(out, size, "?");
  FILE *fp = fopen(path, "r");
  if (!fp)
    return;
  if (fgets(out, (int)size, fp))
    out[strcspn(out, "\n")] = '\0';
  fclose(fp);
}

static void bench_env_print(void) {
  char load[128], cc[64];
  bench_env_read("/proc/loadavg", load, sizeof load);
  bench_env_read("/proc/sys/net/ipv4/tcp_congestion_control", cc,
                 sizeof cc);
  printf("load average at start: %s; the kernel's default TCP congestion "
         "control: %s\n", load, cc);
}

#endif
