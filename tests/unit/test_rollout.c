/* tests/unit/test_rollout.c - the rollout's decisions (supervisor/rollout.c)
 * from views of the pool, without processes: which slot goes next, the
 * canary's probation, the end, and the rollback's plan. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/log.h"
#include "../../supervisor/build.h"
#include "../../supervisor/rollout.h"

#define PROBATION_MS 1000

/* Fake workers: only their addresses are compared. */
static char worker_a[4], worker_b[4], worker_c[4];
#define W(x) ((struct pool_worker *)(void *)&(x))

static struct build *test_build(const char *sha)
{
    struct build *b = calloc(1, sizeof(*b));

    ck_assert_ptr_nonnull(b);
    b->refs = 100; /* never freed by the rollout's unrefs */
    b->fd = -1;
    snprintf(b->sha256, sizeof(b->sha256), "%s", sha);
    config_defaults(&b->cfg);
    b->cfg.probation_ms = PROBATION_MS;
    return b;
}

static void view_init(struct rollout_view *v, struct build *good, int target, uint64_t now)
{
    memset(v, 0, sizeof(*v));
    v->now_ms = now;
    v->running = 1;
    v->target = target;
    v->good = good;
}

static void view_slot(struct rollout_view *v, int slot, struct pool_worker *w, const struct build *b, int ready)
{
    v->slots[slot] = (struct rollout_slot){ .worker = w, .build = b, .starting = !ready, .ready = ready };
}

static int answered, answered_ok;

static void on_done(void *arg, int ok, const char *reason)
{
    (void)arg;
    (void)reason;
    answered++;
    answered_ok = ok;
}

START_TEST(slots_go_one_at_a_time_after_the_canary)
{
    struct build *good = test_build("aa"), *to = test_build("bb");
    struct rollout r;
    struct rollout_view v;
    struct rollout_plan plan;
    struct rollout_waiter waiter = { .cb = on_done };
    char err[128];

    log_set_level(LOG_ERROR);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(rollout_start(&r, good, to, 2, 0, err, sizeof(err)), 0);
    ck_assert(rollout_active(&r));
    answered = 0;
    rollout_wait(&r, &waiter);
    /* Both slots old and serving: slot 0 first, replaced by the new build. */
    view_init(&v, good, 2, 10);
    view_slot(&v, 0, W(worker_a), good, 1);
    view_slot(&v, 1, W(worker_b), good, 1);
    memset(&plan, 0, sizeof(plan));
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 1);
    ck_assert_int_eq(plan.actions[0].act, ROLLOUT_ACT_REPLACE);
    ck_assert_ptr_eq(plan.actions[0].worker, W(worker_a));
    ck_assert_ptr_eq(plan.actions[0].build, to);
    /* While the surge starts: nothing. */
    v.surge_pending = 1;
    memset(&plan, 0, sizeof(plan));
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 0);
    /* The canary is ready at 100: slot 1 waits for its probation. */
    rollout_on_ready(&r, 0, 11, to, 100);
    ck_assert_int_eq(r.slots_done, 1);
    ck_assert(rollout_on_probation(&r, to, 100, 100 + PROBATION_MS - 1));
    ck_assert(!rollout_on_probation(&r, to, 100, 100 + PROBATION_MS));
    ck_assert(!rollout_on_probation(&r, good, 100, 100));
    view_init(&v, good, 2, 100 + PROBATION_MS - 1);
    view_slot(&v, 0, W(worker_c), to, 1);
    view_slot(&v, 1, W(worker_b), good, 1);
    memset(&plan, 0, sizeof(plan));
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 0);
    v.now_ms = 100 + PROBATION_MS;
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 1);
    ck_assert_ptr_eq(plan.actions[0].worker, W(worker_b));
    /* Slot 1 new and ready at 2000: done once it served its probation too. */
    rollout_on_ready(&r, 1, 12, to, 2000);
    view_slot(&v, 1, W(worker_a), to, 1);
    v.now_ms = 2000 + PROBATION_MS - 1;
    memset(&plan, 0, sizeof(plan));
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 0);
    ck_assert_int_eq(plan.finish, ROLLOUT_NONE);
    v.now_ms = 2000 + PROBATION_MS;
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 1);
    ck_assert_int_eq(plan.actions[0].act, ROLLOUT_ACT_ADOPT);
    ck_assert_ptr_eq(plan.actions[0].build, to);
    ck_assert_int_eq(plan.finish, ROLLOUT_DONE);
    ck_assert_int_eq(answered, 0); /* answered once the pool has carried the plan out */
    rollout_finish(&r, plan.finish);
    ck_assert_int_eq(answered, 1);
    ck_assert_int_eq(answered_ok, 1);
    ck_assert(!rollout_active(&r));
    ck_assert_uint_eq(r.count_done, 1);
    rollout_fini(&r);
    free(good);
    free(to);
}
END_TEST

START_TEST(a_new_worker_dying_rolls_back_and_the_build_is_refused_after)
{
    struct build *good = test_build("aa"), *to = test_build("bb");
    struct rollout r;
    struct rollout_view v;
    struct rollout_plan plan;
    char err[256];

    log_set_level(LOG_ERROR);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(rollout_start(&r, good, to, 3, 0, err, sizeof(err)), 0);
    rollout_on_ready(&r, 0, 11, to, 100);
    /* Slot 0 serves the new build; slot 1's new worker is starting. */
    view_init(&v, good, 3, 2000);
    view_slot(&v, 0, W(worker_a), to, 1);
    view_slot(&v, 1, W(worker_b), to, 0);
    view_slot(&v, 2, W(worker_c), good, 1);
    /* An old worker's death is no reason to halt. */
    memset(&plan, 0, sizeof(plan));
    rollout_on_exit(&r, &v, 2, 13, good, "exited with status 1", &plan);
    ck_assert_int_eq(plan.count, 0);
    ck_assert_int_eq(r.state, ROLLOUT_ROLLING);
    /* The canary crashes: roll back, kill the starting new one. */
    rollout_on_exit(&r, &v, 0, 11, to, "killed by signal 11", &plan);
    ck_assert_int_eq(r.state, ROLLOUT_ROLLING_BACK);
    ck_assert_ptr_nonnull(strstr(r.reason, "new worker 11 in slot 0 killed by signal 11"));
    ck_assert_int_eq(plan.count, 2);
    ck_assert_int_eq(plan.actions[0].act, ROLLOUT_ACT_FILL_GOOD);
    ck_assert_ptr_eq(plan.actions[0].build, good);
    ck_assert_int_eq(plan.actions[1].act, ROLLOUT_ACT_KILL);
    ck_assert_ptr_eq(plan.actions[1].worker, W(worker_b));
    /* Rolling back: a serving new worker is replaced by the good build. */
    view_init(&v, good, 3, 2100);
    view_slot(&v, 0, NULL, NULL, 0);
    view_slot(&v, 1, W(worker_a), to, 1);
    view_slot(&v, 2, W(worker_c), good, 1);
    memset(&plan, 0, sizeof(plan));
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 1);
    ck_assert_int_eq(plan.actions[0].act, ROLLOUT_ACT_REPLACE);
    ck_assert_ptr_eq(plan.actions[0].worker, W(worker_a));
    ck_assert_ptr_eq(plan.actions[0].build, good);
    /* Every slot on the good build and serving: rolled back. */
    view_slot(&v, 0, W(worker_b), good, 1);
    view_slot(&v, 1, W(worker_a), good, 1);
    memset(&plan, 0, sizeof(plan));
    rollout_step(&r, &v, &plan);
    ck_assert_int_eq(plan.count, 0);
    ck_assert_int_eq(plan.finish, ROLLOUT_ROLLED_BACK);
    rollout_finish(&r, plan.finish);
    ck_assert_int_eq(r.state, ROLLOUT_ROLLED_BACK);
    ck_assert_str_eq(r.rejected_sha, "bb");
    /* The same binary is not tried again. */
    ck_assert_int_eq(rollout_start(&r, good, to, 3, 3000, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "was rolled back"));
    rollout_fini(&r);
    free(good);
    free(to);
}
END_TEST

START_TEST(memory_on_probation_halts)
{
    struct build *good = test_build("aa"), *to = test_build("bb");
    struct rollout r;
    struct rollout_view v;
    struct rollout_plan plan;
    char err[128];

    log_set_level(LOG_ERROR);
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(rollout_start(&r, good, to, 1, 0, err, sizeof(err)), 0);
    ck_assert_int_eq(rollout_start(&r, good, to, 1, 0, err, sizeof(err)), -1); /* one at a time */
    ck_assert_str_eq(err, "rollout in progress");
    view_init(&v, good, 1, 500);
    view_slot(&v, 0, W(worker_a), to, 1);
    memset(&plan, 0, sizeof(plan));
    rollout_on_memory(&r, &v, 0, 11, (uint64_t)300 << 20, &plan);
    ck_assert_int_eq(r.state, ROLLOUT_ROLLING_BACK);
    ck_assert_ptr_nonnull(strstr(r.reason, "reached RSS 300 MiB on probation"));
    ck_assert_int_eq(plan.count, 1); /* fill with the good build; the serving one is replaced by the step */
    ck_assert_int_eq(plan.actions[0].act, ROLLOUT_ACT_FILL_GOOD);
    rollout_finish(&r, ROLLOUT_ROLLED_BACK);
    rollout_fini(&r);
    free(good);
    free(to);
}
END_TEST

Suite *rollout_suite(void)
{
    Suite *s = suite_create("rollout");
    TCase *tc = tcase_create("decisions");

    tcase_add_test(tc, slots_go_one_at_a_time_after_the_canary);
    tcase_add_test(tc, a_new_worker_dying_rolls_back_and_the_build_is_refused_after);
    tcase_add_test(tc, memory_on_probation_halts);
    suite_add_tcase(s, tc);
    return s;
}
