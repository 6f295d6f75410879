/* worker/routes.h - the login API of SPEC.md section 4: dispatch by path
 * and method. Each group of endpoints lives in its own file (routes.c:
 * health, session, logout; login.c; account.c: registration and password
 * change); what they share, one request's context and its answers, is
 * worker/route_ctx.h.
 */
#ifndef VERONA_WORKER_ROUTES_H
#define VERONA_WORKER_ROUTES_H

#include "route_ctx.h"

/* The http_server handler. */
void routes_dispatch(struct http_server *server, struct http_request *req);

/* The route a path counts under (ROUTE_OTHER when none): for requests the
 * HTTP layer refuses before dispatch (413, 431, 400). */
enum control_route routes_route_of(const char *path);

/* Handlers in login.c and account.c. */
void login_handle(struct route_ctx *ctx);
void account_register(struct route_ctx *ctx);
void account_password(struct route_ctx *ctx);

#endif
