/* proto/hash_gate.c - the machine-wide gate on Argon2 hashing (hash_gate.h). */
#include "hash_gate.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>

/* semctl's fourth argument; the caller defines it, whole (man 2 semctl). */
union hash_gate_semun {
    int val;
    struct semid_ds *buf;   /* cppcheck-suppress unusedStructMember */
    unsigned short *array;  /* cppcheck-suppress unusedStructMember */
};

int hash_gate_create(int slots, char *err, size_t errsize)
{
    union hash_gate_semun arg;
    int id;

    if (slots < 1 || slots > SHRT_MAX) {
        snprintf(err, errsize, "hash gate: %d slots", slots);
        return -1;
    }
    id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    if (id < 0) {
        snprintf(err, errsize, "hash gate: semget: %s", strerror(errno));
        return -1;
    }
    arg.val = slots;
    if (semctl(id, 0, SETVAL, arg) < 0) {
        snprintf(err, errsize, "hash gate: semctl SETVAL: %s", strerror(errno));
        hash_gate_remove(id);
        return -1;
    }
    return id;
}

void hash_gate_remove(int id)
{
    if (id >= 0)
        (void)semctl(id, 0, IPC_RMID);
}

int hash_gate_from_env(void)
{
    const char *text = getenv(HASH_GATE_ENV);
    char *end;
    long id;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    id = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || id > INT_MAX)
        return -1;
    return (int)id;
}

static int hash_gate_op(int id, short delta)
{
    struct sembuf op = { .sem_num = 0, .sem_op = delta, .sem_flg = SEM_UNDO };

    if (id < 0)
        return -1;
    while (semop(id, &op, 1) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

int hash_gate_enter(int id)
{
    return hash_gate_op(id, -1);
}

void hash_gate_leave(int id)
{
    (void)hash_gate_op(id, 1);
}
