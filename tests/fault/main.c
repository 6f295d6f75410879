/* tests/fault/main.c - fault tests under real load (wrk): SIGKILL,
 * SIGSTOP, real memory leaks, scaling and recycling while serving. Run
 * against a build without AddressSanitizer (its shadow memory would
 * distort RSS), with small limits and short timings. */
#include <check.h>
#include <stdlib.h>

Suite *fault_suite(void);
Suite *rollout_suite(void);
Suite *proxy_suite(void);
Suite *failover_suite(void);
Suite *client_share_suite(void);
Suite *connections_suite(void);
Suite *hash_share_suite(void);
Suite *sandbox_suite(void);
Suite *upgrade_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(fault_suite());
    int failed;

    srunner_add_suite(sr, rollout_suite());
    srunner_add_suite(sr, proxy_suite());
    srunner_add_suite(sr, client_share_suite());
    srunner_add_suite(sr, connections_suite());
    srunner_add_suite(sr, hash_share_suite());
    srunner_add_suite(sr, sandbox_suite());
    srunner_add_suite(sr, upgrade_suite());
    srunner_add_suite(sr, failover_suite()); /* last: it stops and restarts the test PostgreSQL */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
