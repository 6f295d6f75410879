/* tests/fault/test_client_share.c - one client's share of a worker's
 * memory (SPEC 5), measured as RSS on a build without AddressSanitizer
 * (its quarantine keeps freed answers resident): a client that pipelines
 * requests and never reads its answers makes the worker stop reading it. */
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/harness.h"

static struct harness_worker worker;
static struct harness_response *r;

/* VmRSS of `pid` in KiB, or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* A client connected with a tiny receive buffer that it never reads. */
static int connect_never_reading(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), small = 2048;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

/* A client that pipelines requests and never reads its answers holds at
 * most its share (64 KiB of answers) of the worker's memory: the worker
 * stops reading it (SPEC 5). Before, 35 MiB of requests grew a worker by
 * 500 MiB. */
START_TEST(a_client_that_never_reads_cannot_grow_the_worker)
{
    static const char one[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char *batch = malloc(64 * 1024);
    size_t per = sizeof(one) - 1, n = 64 * 1024 / per, sent = 0;
    long before, after;
    long long deadline;
    int fd;

    r = calloc(1, sizeof(*r));
    ck_assert_int_eq(harness_worker_start(&worker, NULL, 1), 0);
    before = rss_kib(worker.pid);
    fd = connect_never_reading(worker.port);
    deadline = harness_now_ms() + 5000;

    for (size_t i = 0; i < n; i++)
        memcpy(batch + i * per, one, per);
    while (harness_now_ms() < deadline && sent < 64u * 1024 * 1024) {
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        ssize_t k = send(fd, batch, n * per, MSG_NOSIGNAL);

        if (k > 0)
            sent += (size_t)k;
        else
            poll(&pfd, 1, 20);
    }
    after = rss_kib(worker.pid);
    /* Others are still served meanwhile. */
    ck_assert_int_eq(harness_request(worker.port, "GET", "/healthz", NULL, NULL, r), 200);
    ck_assert_msg(after - before < 16 * 1024, "RSS grew %ld KiB (%ld -> %ld) after %zu bytes of requests",
                  after - before, before, after, sent);
    close(fd);
    free(batch);
    harness_worker_stop(&worker);
    free(r);
}
END_TEST

Suite *client_share_suite(void)
{
    Suite *s = suite_create("client_share");
    TCase *tc = tcase_create("client_share");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_client_that_never_reads_cannot_grow_the_worker);
    suite_add_tcase(s, tc);
    return s;
}
