/*
 * bindings/cli/progress.h - a progress report for long commands (pagemesh
 * load): a bar with objects, bytes, rate and ETA redrawn in place on a
 * terminal, or a plain line every few seconds otherwise.
 */
#ifndef PM_CLI_PROGRESS_H
#define PM_CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct cli_progress {
  FILE *out;
  int tty;
  uint64_t objects_total, bytes_total;
  double started, last_draw;
} cli_progress;

void cli_progress_start(cli_progress *p, FILE *out, uint64_t objects_total,
                        uint64_t bytes_total);
/* Redraw if due (at most 10 times a second on a terminal, every 2 s
 * otherwise), or always with force. */
void cli_progress_update(cli_progress *p, uint64_t objects, uint64_t bytes,
                         int force);
/* The final line. */
void cli_progress_finish(cli_progress *p, uint64_t objects, uint64_t bytes,
                         uint64_t failed);
double cli_now(void);

#endif /* PM_CLI_PROGRESS_H */
