/* tests/integration/main.c - runs the integration suites: real worker
 * processes, real HTTP, the throwaway PostgreSQL of tests/run.sh.
 * Check's CK_RUN_SUITE=name / CK_RUN_CASE=name run a part. */
#include <check.h>
#include <stdlib.h>

Suite *api_suite(void);
Suite *http_suite(void);
Suite *security_suite(void);
Suite *resilience_suite(void);
Suite *privilege_suite(void);
Suite *sessions_suite(void);
Suite *cli_suite(void);
Suite *supervisor_suite(void);
Suite *operability_suite(void);
Suite *upgrade_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    int failed;

    srunner_add_suite(sr, http_suite());
    srunner_add_suite(sr, security_suite());
    srunner_add_suite(sr, sessions_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_add_suite(sr, supervisor_suite());
    srunner_add_suite(sr, operability_suite());
    srunner_add_suite(sr, upgrade_suite());
    srunner_add_suite(sr, privilege_suite());
    srunner_add_suite(sr, resilience_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
