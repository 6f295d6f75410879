/* tests/unit/test_health.c - one worker's health on the tick
 * (supervisor/health.c): each deadline and limit, in order, and the
 * database-down cases that are nobody's fault. */
#include <check.h>
#include <string.h>

#include "../../supervisor/health.h"

static struct config cfg;

static struct health_input fine_worker(enum pool_worker_state state)
{
    config_defaults(&cfg);
    cfg.memory_soft_limit_mb = 100;
    cfg.memory_hard_limit_mb = 200;
    cfg.health_timeout_ms = 3000;
    cfg.ready_timeout_ms = 5000;
    cfg.drain_timeout_ms = 10000;
    return (struct health_input){ .cfg = &cfg, .state = state, .hello = 1, .now_ms = 100000,
                                  .rss_bytes = (uint64_t)50 << 20, .last_pong_ms = 99000,
                                  .drain_ms = 99000, .ready_clock_ms = 99000, .others_db_up = 1 };
}

START_TEST(a_fine_worker_is_fine)
{
    struct health_input in = fine_worker(WORKER_READY);
    struct health_report out;

    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_FINE);
    ck_assert_int_eq(out.over_soft_limit, 0);
    ck_assert_int_eq(out.restart_ready_clock, 0);
}
END_TEST

START_TEST(limits_and_deadlines)
{
    struct health_input in = fine_worker(WORKER_READY);
    struct health_report out;

    in.rss_bytes = ((uint64_t)100 << 20) + 1;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_FINE);
    ck_assert_int_eq(out.over_soft_limit, 1);
    in.rss_bytes = (uint64_t)201 << 20;
    in.last_pong_ms = 0; /* the hard limit comes first */
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_OVER_HARD_LIMIT);
    ck_assert_str_eq(out.detail, "rss 201 MiB over 200 MiB");
    in = fine_worker(WORKER_READY);
    in.last_pong_ms = in.now_ms - 3000;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_FINE);
    in.last_pong_ms = in.now_ms - 3001;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_NO_PONG);
    ck_assert_str_eq(health_event_name(out.event), "no_pong");
    in = fine_worker(WORKER_DRAINING);
    in.drain_ms = in.now_ms - 11001;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_DRAIN_OVERDUE);
    in = fine_worker(WORKER_READY);
    in.drain_ms = 0; /* only a draining worker has a drain deadline */
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_FINE);
}
END_TEST

START_TEST(ready_timeout_and_the_database)
{
    struct health_input in = fine_worker(WORKER_CONFIGURED);
    struct health_report out;

    in.ready_clock_ms = in.now_ms - 5001;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_NOT_READY);
    /* PostgreSQL down for every worker: not its fault, it serves. */
    in.others_db_up = 0;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_DATABASE_DOWN);
    /* ... unless it never said hello: then it hangs. */
    in.hello = 0;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_NOT_READY);
    /* A rollout's new worker waits for the database instead. */
    in.hello = 1;
    in.rollout_waits = 1;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_FINE);
    ck_assert_int_eq(out.restart_ready_clock, 1);
    /* Once the database is back for the others, its clock runs again. */
    in.others_db_up = 1;
    health_check(&in, &out);
    ck_assert_int_eq(out.event, HEALTH_NOT_READY);
    ck_assert_int_eq(out.restart_ready_clock, 0);
}
END_TEST

Suite *health_suite(void)
{
    Suite *s = suite_create("health");
    TCase *tc = tcase_create("events");

    tcase_add_test(tc, a_fine_worker_is_fine);
    tcase_add_test(tc, limits_and_deadlines);
    tcase_add_test(tc, ready_timeout_and_the_database);
    suite_add_tcase(s, tc);
    return s;
}
