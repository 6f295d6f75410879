/* supervisor/admin.c - the admin socket (supervisor/admin.h). */
#include "admin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../proto/log.h"
#include "admin_request.h"
#include "status.h"
#include "supervisor.h"

#define ADMIN_REQUEST_TIMEOUT_MS 10000 /* a connection that sends no request line is closed */

struct admin_client {
    uv_pipe_t pipe;
    uv_timer_t timer;             /* ADMIN_REQUEST_TIMEOUT_MS for the request line */
    int handles;                  /* open of pipe and timer; freed at 0 */
    struct admin *admin;
    char line[ADMIN_REQUEST_MAX + 1];
    size_t len;
    int answered;
    int waiting;                  /* `reload --wait`: answered when the rollout ends */
    struct rollout_waiter waiter;
};

static void admin_reply(struct admin_client *client, char *answer);
static void admin_client_close(struct admin_client *client);

static char *admin_answer(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *admin_answer(int code, const char *fmt, ...)
{
    va_list ap;
    char *text = NULL, *out = NULL;

    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    va_end(ap);
    if (text == NULL || asprintf(&out, "%d\n%s", code, text) < 0)
        out = NULL;
    free(text);
    return out;
}

static void admin_on_upgrade_refused(void *arg, const char *reason)
{
    struct admin_client *client = arg;

    client->waiting = 0;
    admin_reply(client, admin_answer(1, "upgrade refused: %s\n", reason));
}

static void admin_on_rollout_end(void *arg, int ok, const char *reason)
{
    struct admin_client *client = arg;

    client->waiting = 0;
    if (ok)
        admin_reply(client, admin_answer(0, "rollout done\n"));
    else
        admin_reply(client, admin_answer(1, "rollout halted and rolled back: %s\n", reason));
}

char *admin_execute(struct supervisor *sup, const char *line)
{
    struct admin_request req;
    char err[CONFIG_ERROR_MAX + 64];
    int code = admin_request_parse(line, POOL_SLOTS_MAX, &req, err, sizeof(err));

    if (code != 0)
        return admin_answer(code, "%s\n", err);
    if (req.verb == ADMIN_STATUS) {
        if (!req.json) {
            char *table = status_table(sup), *out;
            out = admin_answer(0, "%s", table != NULL ? table : "");
            free(table);
            return out;
        } else {
            json_t *doc = status_json(sup);
            char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER), *out;
            json_decref(doc);
            out = admin_answer(0, "%s\n", text != NULL ? text : "{}");
            if (text != NULL)
                log_json_free(text);
            return out;
        }
    }
    if (sup->state != SUPERVISOR_RUNNING)
        return admin_answer(1, "stopping: only status is answered\n");
    if (upgrade_running(&sup->upgrade) && (req.verb == ADMIN_SCALE || req.verb == ADMIN_RECYCLE))
        return admin_answer(1, "upgrade in progress\n");
    switch (req.verb) {
    case ADMIN_RELOAD:
        code = supervisor_reload(sup, err, sizeof(err));
        if (code != 0)
            return admin_answer(code, "%s\n", err);
        return admin_answer(0, "rollout started\n");
    case ADMIN_SCALE:
        if (rollout_active(&sup->pool.rollout))
            return admin_answer(1, "rollout in progress\n");
        pool_scale(&sup->pool, (int)req.number);
        return admin_answer(0, "scaling to %ld workers\n", req.number);
    case ADMIN_RECYCLE:
        if (pool_recycle(&sup->pool, (int)req.number) != 0)
            return admin_answer(1, "no ready worker with pid %ld\n", req.number);
        return admin_answer(0, "recycling worker %ld\n", req.number);
    case ADMIN_STOP:
        supervisor_stop(sup, 0, "ctl stop");
        admin_stop(&sup->admin); /* this answer still goes out: only the listener closes */
        return admin_answer(0, "stopping\n");
    case ADMIN_UPGRADE:
        /* Without a client to answer (admin.c's callers answer it themselves). */
        if (upgrade_start(&sup->upgrade, -1, NULL, NULL, err, sizeof(err)) != 0)
            return admin_answer(1, "upgrade refused: %s\n", err);
        return admin_answer(0, "upgrade started (the new supervisor logs supervisor_upgrade)\n");
    case ADMIN_STATUS:
        break;
    }
    return admin_answer(2, "unknown request\n");
}

static void admin_on_client_close(uv_handle_t *h)
{
    struct admin_client *client = h->data;

    if (--client->handles == 0)
        free(client);
}

static void admin_client_close(struct admin_client *client)
{
    if (!uv_is_closing((uv_handle_t *)&client->pipe))
        uv_close((uv_handle_t *)&client->pipe, admin_on_client_close);
    if (!uv_is_closing((uv_handle_t *)&client->timer))
        uv_close((uv_handle_t *)&client->timer, admin_on_client_close);
}

static void admin_on_request_timeout(uv_timer_t *t)
{
    struct admin_client *client = t->data;

    if (!client->answered && !client->waiting)
        admin_reply(client, admin_answer(2, "no request line within %d s\n", ADMIN_REQUEST_TIMEOUT_MS / 1000));
}

static void admin_on_write(uv_write_t *req, int status)
{
    struct admin_client *client = req->data;

    (void)status;
    free(req);
    admin_client_close(client);
}

static void admin_reply(struct admin_client *client, char *answer)
{
    uv_write_t *req = malloc(sizeof(*req) + (answer != NULL ? strlen(answer) : 0) + 1);
    uv_buf_t buf;
    char *copy;

    client->answered = 1;
    uv_read_stop((uv_stream_t *)&client->pipe);
    if (req == NULL || answer == NULL) {
        free(req);
        free(answer);
        admin_client_close(client);
        return;
    }
    copy = (char *)(req + 1);
    strcpy(copy, answer);
    free(answer);
    req->data = client;
    buf = uv_buf_init(copy, (unsigned)strlen(copy));
    if (uv_write(req, (uv_stream_t *)&client->pipe, &buf, 1, admin_on_write) != 0) {
        free(req);
        admin_client_close(client);
    }
}

/* Runs the client's request; `reload --wait` answers when the rollout ends. */
static void admin_dispatch(struct admin_client *client)
{
    struct supervisor *sup = client->admin->sup;
    struct admin_request req;
    char err[512];
    char *answer;

    uv_timer_stop(&client->timer);
    if (admin_request_parse(client->line, POOL_SLOTS_MAX, &req, err, sizeof(err)) == 0 && req.verb == ADMIN_UPGRADE &&
        sup->state == SUPERVISOR_RUNNING) {
        uv_os_fd_t fd;

        /* Answered by the new image (this socket is handed over), or
         * here when refused. */
        if (uv_fileno((uv_handle_t *)&client->pipe, &fd) != 0)
            fd = -1;
        if (upgrade_start(&sup->upgrade, fd, admin_on_upgrade_refused, client, err, sizeof(err)) != 0) {
            admin_reply(client, admin_answer(1, "upgrade refused: %s\n", err));
            return;
        }
        client->waiting = 1;
        uv_read_stop((uv_stream_t *)&client->pipe);
        return;
    }
    answer = admin_execute(sup, client->line);
    if (admin_request_parse(client->line, POOL_SLOTS_MAX, &req, err, sizeof(err)) == 0 && req.verb == ADMIN_RELOAD &&
        req.wait && answer != NULL && answer[0] == '0') {
        free(answer);
        client->waiting = 1;
        uv_read_stop((uv_stream_t *)&client->pipe);
        client->waiter.cb = admin_on_rollout_end;
        client->waiter.arg = client;
        rollout_wait(&sup->pool.rollout, &client->waiter);
        return;
    }
    admin_reply(client, answer);
}

static void admin_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct admin_client *client = h->data;

    (void)suggested;
    *buf = uv_buf_init(client->line + client->len, (unsigned)(ADMIN_REQUEST_MAX - client->len));
}

static void admin_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct admin_client *client = s->data;
    char *newline;

    (void)buf;
    if (client->answered)
        return;
    if (nread < 0) {
        /* EOF without a newline: take what came as the request. */
        if (nread == UV_EOF && client->len > 0) {
            client->line[client->len] = '\0';
            admin_dispatch(client);
        } else {
            /* Gone before asking: close the pipe and the request timer both. */
            uv_read_stop(s);
            admin_client_close(client);
        }
        return;
    }
    client->len += (size_t)nread;
    client->line[client->len] = '\0';
    if (memchr(client->line, '\0', client->len) != NULL) {
        admin_reply(client, admin_answer(2, "request contains a NUL byte\n"));
        return;
    }
    newline = strchr(client->line, '\n');
    if (newline != NULL) {
        *newline = '\0';
        log_emit(LOG_INFO, "admin_request", json_pack("{s:s}", "request", client->line));
        admin_dispatch(client);
    } else if (client->len == ADMIN_REQUEST_MAX) {
        admin_reply(client, admin_answer(2, "request longer than %d bytes\n", ADMIN_REQUEST_MAX));
    }
}

static void admin_on_connection(uv_stream_t *server, int status)
{
    struct admin *admin = server->data;
    struct admin_client *client;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;

    if (status < 0)
        return;
    client = calloc(1, sizeof(*client));
    if (client == NULL)
        return;
    client->admin = admin;
    uv_pipe_init(admin->sup->loop, &client->pipe, 0);
    uv_timer_init(admin->sup->loop, &client->timer);
    client->pipe.data = client->timer.data = client;
    client->handles = 2;
    if (uv_accept(server, (uv_stream_t *)&client->pipe) != 0) {
        admin_client_close(client);
        return;
    }
    /* Root, or the user the supervisor runs as; nobody else. */
    if (uv_fileno((uv_handle_t *)&client->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != getuid())) {
        log_emit(LOG_WARN, "admin_refused", json_pack("{s:i}", "uid", (int)cred.uid));
        admin_reply(client, admin_answer(1, "permission denied\n"));
        return;
    }
    uv_timer_start(&client->timer, admin_on_request_timeout, ADMIN_REQUEST_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&client->pipe, admin_on_alloc, admin_on_read);
}

int admin_start(struct admin *admin, struct supervisor *sup, const char *path, char *err, size_t errsize)
{
    struct sockaddr_un sun;
    mode_t old_mask;
    int rc, probe;

    memset(admin, 0, sizeof(*admin));
    admin->sup = sup;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errsize, "admin_socket: path longer than %zu bytes", sizeof(sun.sun_path) - 1);
        return -1;
    }
    snprintf(admin->path, sizeof(admin->path), "%s", path);
    /* A socket file left by a dead supervisor is removed; a live one wins. */
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
        close(probe);
        snprintf(err, errsize, "admin_socket %s: another supervisor is running there", path);
        return -1;
    }
    if (probe >= 0)
        close(probe);
    {
        /* The socket's own folder is made when missing (./var on a fresh
         * checkout), its parent never: a mistyped path still fails. libuv
         * would report a missing folder as "permission denied". */
        char dir[sizeof(sun.sun_path)];
        const char *slash = strrchr(path, '/');
        struct stat st;

        snprintf(dir, sizeof(dir), "%.*s", slash == NULL ? 1 : slash == path ? 1 : (int)(slash - path),
                 slash == NULL ? "." : path);
        int missing = stat(dir, &st) != 0;

        if (missing && errno == ENOENT && (mkdir(dir, 0700) == 0 || errno == EEXIST))
            missing = stat(dir, &st) != 0;
        if (missing || !S_ISDIR(st.st_mode)) {
            snprintf(err, errsize, "admin_socket %s: folder %s: %s", path, dir,
                     missing ? strerror(errno) : "is not a folder");
            return -1;
        }
    }
    unlink(path);
    uv_pipe_init(sup->loop, &admin->server, 0);
    admin->server.data = admin;
    old_mask = umask(0177); /* the socket is born 0600: no window where others can connect */
    rc = uv_pipe_bind(&admin->server, path);
    umask(old_mask);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&admin->server, 16, admin_on_connection);
    if (rc != 0) {
        snprintf(err, errsize, "admin_socket %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&admin->server, NULL);
        return -1;
    }
    chmod(path, 0600);
    admin->open = 1;
    return 0;
}

void admin_stop(struct admin *admin)
{
    if (!admin->open)
        return;
    admin->open = 0;
    uv_close((uv_handle_t *)&admin->server, NULL);
    unlink(admin->path);
}

int admin_adopt(struct admin *admin, struct supervisor *sup, const char *path, int fd, char *err, size_t errsize)
{
    int rc;

    memset(admin, 0, sizeof(*admin));
    admin->sup = sup;
    snprintf(admin->path, sizeof(admin->path), "%s", path);
    uv_pipe_init(sup->loop, &admin->server, 0);
    admin->server.data = admin;
    rc = uv_pipe_open(&admin->server, fd);
    if (rc != 0)
        close(fd); /* the handle never owned it */
    else
        rc = uv_listen((uv_stream_t *)&admin->server, 16, admin_on_connection);
    if (rc != 0) {
        snprintf(err, errsize, "admin_socket %s (descriptor %d): %s", path, fd, uv_strerror(rc));
        uv_close((uv_handle_t *)&admin->server, NULL);
        return -1;
    }
    admin->open = 1;
    return 0;
}
