/* proto/hash_gate.h - the machine-wide gate on Argon2 hashing.
 *
 * A login costs one Argon2 hash and the CPUs are shared by every worker,
 * so the number of hashes running at once is a limit of the machine, not
 * of one worker. The supervisor creates one SysV semaphore holding a slot
 * per CPU and hands its id to the workers (VERONA_HASH_GATE); a worker's
 * hash thread takes a slot before it hashes and gives it back after. Any
 * worker can so use a CPU another worker leaves idle, and no more hashes
 * run than there are CPUs (time-slicing memory-hard hashes only stretches
 * every one of them). SEM_UNDO gives the kernel the bookkeeping: the slots
 * of a worker that is killed mid-hash come back when it dies.
 *
 * Every failure is soft: without a gate (a worker run on its own, a gate
 * removed under it) hashing goes on, limited by the worker's threads only.
 */
#ifndef VERONA_PROTO_HASH_GATE_H
#define VERONA_PROTO_HASH_GATE_H

#include <stddef.h>

#define HASH_GATE_ENV "VERONA_HASH_GATE"

/* Creates a private gate (mode 0600) with `slots` slots. Its id, or -1 with
 * the reason in err. */
int hash_gate_create(int slots, char *err, size_t errsize);

/* Removes the gate; workers still holding its id hash ungated from then on. */
void hash_gate_remove(int id);

/* The id in VERONA_HASH_GATE, or -1 when it is unset or not a number. */
int hash_gate_from_env(void);

/* Blocks until a slot is free and takes it: 0, or -1 (no such gate any
 * more, or id -1) and the caller hashes without one. Thread-safe. */
int hash_gate_enter(int id);

/* Gives back the slot hash_gate_enter took. */
void hash_gate_leave(int id);

#endif
