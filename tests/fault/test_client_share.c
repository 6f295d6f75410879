/* tests/fault/test_client_share.c - one client's share of a worker's
 * memory (SPEC 5), measured as RSS on a build without AddressSanitizer
 * (its quarantine keeps freed answers resident): a client that pipelines
 * requests and never reads its answers makes the worker stop reading it;
 * one whose last answer is never taken is dropped. */
#include <check.h>
#include <dirent.h>
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

/* The server's side of the loopback connection from client port
 * `client_port` to `server_port` in /proc/net/tcp: its queues and inode.
 * 1 when found. */
static int server_side(int server_port, int client_port, long *tx, long *rx, unsigned long *inode)
{
    char line[512];
    FILE *f = fopen("/proc/net/tcp", "r");
    int found = 0;

    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        unsigned local_port, remote_port, state;
        unsigned long txq, rxq, ino;

        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %lx:%lx %*x:%*x %*x %*u %*d %lu", &local_port, &remote_port, &state,
                   &txq, &rxq, &ino) == 6 &&
            (int)local_port == server_port && (int)remote_port == client_port) {
            *tx = (long)txq;
            *rx = (long)rxq;
            *inode = ino;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* 1 while process `pid` holds the socket with this inode. */
static int holds_socket(pid_t pid, unsigned long inode)
{
    char dir[64], path[320], link[64], want[64];
    struct dirent *e;
    DIR *d;
    int found = 0;

    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    d = opendir(dir);
    if (d == NULL)
        return 0;
    while (!found && (e = readdir(d)) != NULL) {
        ssize_t n;

        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        n = readlink(path, link, sizeof(link) - 1);
        if (n > 0) {
            link[n] = '\0';
            found = strcmp(link, want) == 0;
        }
    }
    closedir(d);
    return found;
}

/* Sends all of `text` on the non-blocking `fd` (within 5 s), then waits
 * until the worker has read it (its side's receive queue empty). */
static void send_and_wait_read(int fd, int server_port, int client_port, const char *text, size_t len)
{
    long long deadline = harness_now_ms() + 5000;
    size_t sent = 0;
    long tx, rx = 1;
    unsigned long inode;

    while (sent < len && harness_now_ms() < deadline) {
        ssize_t k = send(fd, text + sent, len - sent, MSG_NOSIGNAL);

        if (k > 0)
            sent += (size_t)k;
        else
            poll(NULL, 0, 5);
    }
    ck_assert_uint_eq(sent, len);
    while (harness_now_ms() < deadline && (!server_side(server_port, client_port, &tx, &rx, &inode) || rx != 0))
        poll(NULL, 0, 5);
    ck_assert_int_eq(rx, 0);
}

/* A connection whose last answer (Connection: close) is never taken is
 * dropped within 10 s (SPEC 5); before, it stayed open for good, holding
 * its memory. The client fills the kernel's buffers with answers it does
 * not read, in small steps (so the worker never stops reading it: under
 * 64 KiB of answers wait in the worker), then asks with Connection: close:
 * that answer cannot be written, and the worker must let go anyway. */
START_TEST(a_last_answer_never_taken_is_dropped)
{
    static const char one[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char last[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char batch[200 * sizeof(one)];
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    size_t per = sizeof(one) - 1;
    long tx = 0, rx, last_tx = -1;
    unsigned long inode = 0;
    int fd, steady = 0, small = 0;
    long long deadline;

    r = calloc(1, sizeof(*r));
    ck_assert_int_eq(harness_worker_start(&worker, NULL, 1), 0);
    fd = connect_never_reading(worker.port);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    for (int i = 0; i < 200; i++)
        memcpy(batch + (size_t)i * per, one, per);
    /* Until the kernel takes no more answers: the worker's side's send
     * queue stops growing. Steps of 200 requests (some 22 KiB of answers)
     * until it first stands still, then of 20 (2 KiB): at most about 30
     * KiB wait in the worker, under the 64 KiB that stops its reading. */
    for (int step = 0; step < 2000 && steady < 3; step++) {
        send_and_wait_read(fd, worker.port, ntohs(me.sin_port), batch, (small ? 20 : 200) * per);
        poll(NULL, 0, 20);
        ck_assert(server_side(worker.port, ntohs(me.sin_port), &tx, &rx, &inode));
        steady = tx == last_tx ? steady + 1 : 0;
        small |= steady > 0;
        last_tx = tx;
    }
    ck_assert_msg(steady >= 3, "the send queue kept growing (%ld bytes)", tx);
    fprintf(stderr, "client_share: the kernel holds %ld bytes of answers; now the last request\n", tx);
    ck_assert(holds_socket(worker.pid, inode));
    send_and_wait_read(fd, worker.port, ntohs(me.sin_port), last, sizeof(last) - 1);
    /* 10 s, with slack for a loaded machine. */
    deadline = harness_now_ms() + 20000;
    while (harness_now_ms() < deadline && holds_socket(worker.pid, inode))
        poll(NULL, 0, 50);
    fprintf(stderr, "client_share: dropped %lld ms after the last request\n", harness_now_ms() - (deadline - 20000));
    ck_assert_msg(!holds_socket(worker.pid, inode), "the worker still holds the connection 20 s after its last request");
    ck_assert_int_eq(harness_request(worker.port, "GET", "/healthz", NULL, NULL, r), 200);
    close(fd);
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
    tcase_add_test(tc, a_last_answer_never_taken_is_dropped);
    suite_add_tcase(s, tc);
    return s;
}
