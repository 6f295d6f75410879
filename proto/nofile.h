/* proto/nofile.h - the open-files limit each process raises to fit its
 * connections (SPEC 10.8). */
#ifndef VERONA_PROTO_NOFILE_H
#define VERONA_PROTO_NOFILE_H

/* Descriptors a process keeps beside its client connections (listeners,
 * control and database sockets, logs, /proc reads, the resolver). */
#define NOFILE_RESERVE 256

/* Raises the soft RLIMIT_NOFILE to `want`, or to the hard limit when that
 * is lower. Returns the soft limit now in force (never lowers it). */
long nofile_raise(long want);

#endif
