/* tests/unit/test_hash_gate.c - proto/hash_gate.c with real processes: a
 * full gate makes the next hasher wait, and the kernel gives back the slot
 * of a process killed while it held one. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../proto/hash_gate.h"

static int gate_free(int id)
{
    return semctl(id, 0, GETVAL);
}

/* Polls (5 s deadline) until `n` processes wait on the gate. */
static int gate_wait_waiters(int id, int n)
{
    struct timespec pause = { 0, 5 * 1000 * 1000 };

    for (int i = 0; i < 1000; i++) {
        if (semctl(id, 0, GETNCNT) == n)
            return 0;
        nanosleep(&pause, NULL);
    }
    return -1;
}

START_TEST(a_full_gate_makes_the_next_hasher_wait)
{
    char err[160];
    int id = hash_gate_create(2, err, sizeof(err));
    int status;
    pid_t child;

    ck_assert_int_ge(id, 0);
    ck_assert_int_eq(gate_free(id), 2);
    ck_assert_int_eq(hash_gate_enter(id), 0);
    ck_assert_int_eq(hash_gate_enter(id), 0);
    ck_assert_int_eq(gate_free(id), 0);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(hash_gate_enter(id) == 0 ? 0 : 1); /* exits holding it: SEM_UNDO */
    ck_assert_int_eq(gate_wait_waiters(id, 1), 0);
    ck_assert_int_eq(waitpid(child, &status, WNOHANG), 0); /* still waiting */
    hash_gate_leave(id);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(gate_free(id), 1); /* the child's slot came back at its exit */
    hash_gate_leave(id);
    ck_assert_int_eq(gate_free(id), 2);
    hash_gate_remove(id);
}
END_TEST

START_TEST(a_holder_killed_mid_hash_gives_its_slot_back)
{
    char err[160], byte;
    int id = hash_gate_create(1, err, sizeof(err));
    int fds[2], status;
    pid_t child;

    ck_assert_int_ge(id, 0);
    ck_assert_int_eq(pipe(fds), 0);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        if (hash_gate_enter(id) != 0 || write(fds[1], "i", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    ck_assert_int_eq(read(fds[0], &byte, 1), 1);
    ck_assert_int_eq(gate_free(id), 0);
    ck_assert_int_eq(kill(child, SIGKILL), 0);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(gate_free(id), 1);
    ck_assert_int_eq(hash_gate_enter(id), 0);
    hash_gate_leave(id);
    close(fds[0]);
    close(fds[1]);
    hash_gate_remove(id);
}
END_TEST

START_TEST(no_gate_or_a_removed_one_lets_hashing_go_on)
{
    char err[160];
    int id;

    ck_assert_int_eq(hash_gate_enter(-1), -1);
    ck_assert_int_eq(hash_gate_create(0, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "hash gate: 0 slots");
    id = hash_gate_create(1, err, sizeof(err));
    ck_assert_int_ge(id, 0);
    ck_assert_int_eq(hash_gate_enter(id), 0);
    hash_gate_remove(id);
    ck_assert_int_eq(hash_gate_enter(id), -1); /* does not block */
    ck_assert(errno == EINVAL || errno == EIDRM);
}
END_TEST

START_TEST(the_id_comes_from_the_environment)
{
    unsetenv(HASH_GATE_ENV);
    ck_assert_int_eq(hash_gate_from_env(), -1);
    setenv(HASH_GATE_ENV, "32770", 1);
    ck_assert_int_eq(hash_gate_from_env(), 32770);
    setenv(HASH_GATE_ENV, "0", 1);
    ck_assert_int_eq(hash_gate_from_env(), 0);
    setenv(HASH_GATE_ENV, "-1", 1);
    ck_assert_int_eq(hash_gate_from_env(), -1);
    setenv(HASH_GATE_ENV, "12x", 1);
    ck_assert_int_eq(hash_gate_from_env(), -1);
    setenv(HASH_GATE_ENV, "99999999999999999999", 1);
    ck_assert_int_eq(hash_gate_from_env(), -1);
    setenv(HASH_GATE_ENV, "", 1);
    ck_assert_int_eq(hash_gate_from_env(), -1);
    unsetenv(HASH_GATE_ENV);
}
END_TEST

Suite *hash_gate_suite(void)
{
    Suite *s = suite_create("hash_gate");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, a_full_gate_makes_the_next_hasher_wait);
    tcase_add_test(tc, a_holder_killed_mid_hash_gives_its_slot_back);
    tcase_add_test(tc, no_gate_or_a_removed_one_lets_hashing_go_on);
    tcase_add_test(tc, the_id_comes_from_the_environment);
    suite_add_tcase(s, tc);
    return s;
}
