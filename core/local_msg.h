/*
 * core/local_msg.h - sending and receiving the same-node protocol's
 * messages (transport/proto/local.proto) over a unix SOCK_SEQPACKET
 * socket: one protobuf message per packet, capped, with an optional file
 * descriptor passed alongside (SCM_RIGHTS).
 */
#ifndef PM_CORE_LOCAL_MSG_H
#define PM_CORE_LOCAL_MSG_H

#include "core_int.h"
#include "local.pb-c.h"

/* Largest message either side sends or accepts. */
#define PM_LOCAL_MSG_MAX (256u << 10)
/* Version of the protocol spoken in LocalHello. */
#define PM_LOCAL_PROTOCOL 1

/* Pack and send a message; fd >= 0 is passed along. Returns 0 or a pm_err
 * (PM_EUNREACHABLE if the other side is gone). */
int pm__local_send(int sock, const ProtobufCMessage *msg, int fd);

/* *fd of a whole message whose passed descriptor this process could not
 * take (out of descriptors: MSG_CTRUNC). */
#define PM_LOCAL_FD_LOST (-2)

/* Receive one packet into buf (PM_LOCAL_MSG_MAX bytes); *fd receives a
 * passed descriptor, -1, or PM_LOCAL_FD_LOST. Returns the packet length, 0
 * if the other side closed, or a pm_err: PM_ETIMEDOUT (no message within
 * the socket's receive timeout; no detail set), PM_EUNREACHABLE,
 * PM_ETOOBIG (over PM_LOCAL_MSG_MAX). */
ssize_t pm__local_recv(int sock, uint8_t *buf, int *fd);

#endif /* PM_CORE_LOCAL_MSG_H */
