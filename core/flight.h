/*
 * core/flight.h - single flight: concurrent requests for the same key (a
 * page id, or the hash of a URI for metadata) share one fetch. The first
 * caller leads and does the work; the others wait for its result, which
 * carries the fetched bytes (or the error and its detail).
 */
#ifndef PM_CORE_FLIGHT_H
#define PM_CORE_FLIGHT_H

#include "core_int.h"

typedef struct pm_flights pm_flights;
typedef struct pm_flight pm_flight;

int pm__flights_open(pm_flights **out);
void pm__flights_close(pm_flights *flights);

/* Join the flight for key, creating it if there is none. *leader is true
 * for the caller that must do the work and then call pm__flight_finish.
 * Every caller releases its reference with pm__flight_release.
 * Returns NULL only if out of memory. */
pm_flight *pm__flight_begin(pm_flights *flights, const pm_page_id *key,
                            bool *leader);

/* Publish the result: `result` (>= 0 or a pm_err), the data (ownership
 * passes to the flight; freed with free() after the last release) and the
 * calling thread's error detail. Later callers of begin start a new
 * flight. */
void pm__flight_finish(pm_flights *flights, pm_flight *flight, int result,
                       void *data, size_t length);

/* The same for a successful flight whose data is still being put where
 * later readers will look (kept in the store in the background): the
 * flight stays joinable, so a caller of begin in the meantime follows it
 * and gets its data at once instead of fetching the page again, until
 * pm__flight_retire. */
void pm__flight_finish_joinable(pm_flights *flights, pm_flight *flight,
                                void *data, size_t length);
void pm__flight_retire(pm_flights *flights, pm_flight *flight);

/* Wait for the leader; returns its result and points data and length at the
 * shared bytes (valid until release). Sets the thread's error detail to
 * the leader's on failure. */
int pm__flight_wait(pm_flight *flight, const void **data, size_t *length);

void pm__flight_release(pm_flights *flights, pm_flight *flight);

/* Take one more reference (released with pm__flight_release): keeps the
 * flight's data alive for work that outlives the caller's own use. */
void pm__flight_hold(pm_flights *flights, pm_flight *flight);

#endif /* PM_CORE_FLIGHT_H */
