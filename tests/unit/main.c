/* tests/unit/main.c - runs every unit suite (one per module). */
#include <check.h>
#include <stdlib.h>
#include <sodium.h>

Suite *config_suite(void);
Suite *password_suite(void);
Suite *address_suite(void);
Suite *auth_suite(void);
Suite *control_suite(void);
Suite *session_cache_suite(void);
Suite *hash_gate_suite(void);
Suite *hash_memory_suite(void);
Suite *textbuf_suite(void);
Suite *rollout_suite(void);
Suite *health_suite(void);

int main(void)
{
    SRunner *sr;
    int failed;

    if (sodium_init() < 0)
        return 1;
    sr = srunner_create(config_suite());
    srunner_add_suite(sr, password_suite());
    srunner_add_suite(sr, address_suite());
    srunner_add_suite(sr, textbuf_suite());
    srunner_add_suite(sr, rollout_suite());
    srunner_add_suite(sr, health_suite());
    srunner_add_suite(sr, auth_suite());
    srunner_add_suite(sr, control_suite());
    srunner_add_suite(sr, session_cache_suite());
    srunner_add_suite(sr, hash_gate_suite());
    srunner_add_suite(sr, hash_memory_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
