/*
 * core/flight.c - the single-flight table (see flight.h): a small chained
 * hash table of fetches in progress under one mutex, each with a condition
 * variable its followers wait on.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flight.h"

#define FLIGHT_BUCKETS 256

struct pm_flight {
  pm_flight *next;
  pm_page_id key;
  unsigned refs;
  bool done;
  bool linked; /* in the table: begin joins it */
  int result;
  void *data;
  size_t length;
  char errmsg[PM_ERRMSG_MAX];
  pthread_cond_t cond;
  pm_flights *table;
};

struct pm_flights {
  pthread_mutex_t mutex;
  pm_flight *buckets[FLIGHT_BUCKETS];
};

int pm__flights_open(pm_flights **out) {
  pm_flights *f = calloc(1, sizeof *f);
  if (!f)
    return pm__errf(PM_ENOMEM, "cannot allocate the flight table");
  pthread_mutex_init(&f->mutex, NULL);
  *out = f;
  return 0;
}

void pm__flights_close(pm_flights *flights) {
  if (!flights)
    return;
  pthread_mutex_destroy(&flights->mutex);
  free(flights);
}

static pm_flight **bucket_of(pm_flights *flights, const pm_page_id *key) {
  return &flights->buckets[pm__page_id_hash(key) % FLIGHT_BUCKETS];
}

pm_flight *pm__flight_begin(pm_flights *flights, const pm_page_id *key,
                            bool *leader) {
  pthread_mutex_lock(&flights->mutex);
  pm_flight **bucket = bucket_of(flights, key);
  for (pm_flight *f = *bucket; f; f = f->next) {
    if (pm__page_id_eq(&f->key, key)) {
      f->refs++;
      pthread_mutex_unlock(&flights->mutex);
      *leader = false;
      return f;
    }
  }
  pm_flight *f = calloc(1, sizeof *f);
  if (f) {
    f->key = *key;
    f->refs = 1;
    f->linked = true;
    f->table = flights;
    pthread_cond_init(&f->cond, NULL);
    f->next = *bucket;
    *bucket = f;
  }
  pthread_mutex_unlock(&flights->mutex);
  *leader = true;
  return f;
}

static void unlink_flight(pm_flights *flights, pm_flight *flight) {
  if (!flight->linked)
    return;
  flight->linked = false;
  for (pm_flight **p = bucket_of(flights, &flight->key); *p; p = &(*p)->next) {
    if (*p == flight) {
      *p = flight->next;
      return;
    }
  }
}

static void publish(pm_flights *flights, pm_flight *flight, int result,
                    void *data, size_t length, bool joinable) {
  pthread_mutex_lock(&flights->mutex);
  if (!joinable)
    unlink_flight(flights, flight);
  flight->done = true;
  flight->result = result;
  flight->data = data;
  flight->length = length;
  if (result < 0)
    snprintf(flight->errmsg, sizeof flight->errmsg, "%s", pm__errmsg());
  pthread_cond_broadcast(&flight->cond);
  pthread_mutex_unlock(&flights->mutex);
}

void pm__flight_finish(pm_flights *flights, pm_flight *flight, int result,
                       void *data, size_t length) {
  publish(flights, flight, result, data, length, false);
}

void pm__flight_finish_joinable(pm_flights *flights, pm_flight *flight,
                                void *data, size_t length) {
  publish(flights, flight, 0, data, length, true);
}

void pm__flight_retire(pm_flights *flights, pm_flight *flight) {
  pthread_mutex_lock(&flights->mutex);
  unlink_flight(flights, flight);
  pthread_mutex_unlock(&flights->mutex);
}

int pm__flight_wait(pm_flight *flight, const void **data, size_t *length) {
  pm_flights *flights = flight->table;
  pthread_mutex_lock(&flights->mutex);
  while (!flight->done)
    pthread_cond_wait(&flight->cond, &flights->mutex);
  pthread_mutex_unlock(&flights->mutex);
  *data = flight->data;
  *length = flight->length;
  if (flight->result < 0)
    pm__errmsg_set(flight->errmsg);
  return flight->result;
}

void pm__flight_release(pm_flights *flights, pm_flight *flight) {
  if (!flight)
    return;
  pthread_mutex_lock(&flights->mutex);
  bool last = --flight->refs == 0;
  pthread_mutex_unlock(&flights->mutex);
  if (!last)
    return;
  pthread_cond_destroy(&flight->cond);
  free(flight->data);
  free(flight);
}

void pm__flight_hold(pm_flights *flights, pm_flight *flight) {
  pthread_mutex_lock(&flights->mutex);
  flight->refs++;
  pthread_mutex_unlock(&flights->mutex);
}
