/*
 * server_socket_test: the C twin of TotalCross's ServerSocketTest sample.
 *
 * Waits for connections with a 10 s accept timeout, treating "nothing" as
 * "still waiting"; reads an HTTP request line by line with a read timeout;
 * answers with a small HTML page and closes the connection. SIGINT or
 * SIGTERM sets a flag that is checked after each accept timeout, as in the
 * original sample.
 *
 *   server_socket_test [--port N] [--once]
 *     --port N  port to listen on (default 8080; 0 = ephemeral)
 *     --once    serve a single request, then exit
 */
#include <ssock/ssock.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PORT 8080
#define ACCEPT_TIMEOUT_MS 10000
#define READ_TIMEOUT_MS 5000

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* A small buffered line reader over an accepted socket. */
struct line_reader {
    ssock_socket *sock;
    char buf[1024];
    size_t pos, len;
};

/*
 * Read one line without its "\r\n" or "\n" into `line` (truncated to `cap`
 * - 1 bytes, always NUL-terminated).
 * @return 0, or the ssock status that ended the stream (SSOCK_EOF,
 *         SSOCK_ETIMEOUT, ...).
 */
static int read_line(struct line_reader *lr, char *line, size_t cap)
{
    size_t n = 0;

    for (;;) {
        char ch;

        if (lr->pos == lr->len) {
            int rc =
                ssock_socket_read(lr->sock, lr->buf, sizeof(lr->buf), &lr->len);
            lr->pos = 0;
            if (rc != 0) {
                lr->len = 0;
                line[n] = '\0';
                return rc;
            }
        }
        ch = lr->buf[lr->pos++];
        if (ch == '\n')
            break;
        if (n + 1 < cap)
            line[n++] = ch;
    }
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    return 0;
}

static int serve(ssock_socket *sock)
{
    static const char body[] =
        "<html><head><title>ssock</title></head>"
        "<body><h1>Hello from ssock</h1>"
        "<p>This page was served by a ServerSocket.</p></body></html>\n";
    struct line_reader lr = {.sock = sock, .pos = 0, .len = 0};
    char line[512];
    char reply[512];
    int n;
    int rc;

    printf("connection from %s:%d\n", ssock_socket_peer_host(sock),
           ssock_socket_peer_port(sock));
    /* The request: lines up to the empty one that ends the headers. */
    while ((rc = read_line(&lr, line, sizeof(line))) == 0 && line[0] != '\0')
        printf("  %s\n", line);
    if (rc != 0) {
        printf("  request not complete: %s\n", ssock_strerror(rc));
        return rc;
    }

    n = snprintf(reply, sizeof(reply),
                 "HTTP/1.0 200 OK\r\n"
                 "Content-Type: text/html\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n"
                 "\r\n",
                 sizeof(body) - 1);
    rc = ssock_socket_write(sock, reply, (size_t)n, NULL);
    if (rc == 0)
        rc = ssock_socket_write(sock, body, sizeof(body) - 1, NULL);
    if (rc != 0)
        printf("  reply not sent: %s\n", ssock_strerror(rc));
    return rc;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    ssock_server *server = NULL;
    int port = DEFAULT_PORT;
    bool once = false;
    int status = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        char *end;

        if (strcmp(argv[i], "--once") == 0) {
            once = true;
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            long v;

            errno = 0;
            v = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 0 || v > 65535) {
                fprintf(stderr, "bad port '%s'\n", argv[i]);
                return 2;
            }
            port = (int)v;
        } else {
            fprintf(stderr, "usage: %s [--port N] [--once]\n", argv[0]);
            return 2;
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rc = ssock_server_open_timeout(&server, port, ACCEPT_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "cannot open port %d: %s\n", port, ssock_strerror(rc));
        return 1;
    }
    printf(strchr(ssock_server_host(server), ':') ? "listening on [%s]:%d\n"
                                                  : "listening on %s:%d\n",
           ssock_server_host(server), ssock_server_local_port(server));
    fflush(stdout);

    while (!stop_requested) {
        ssock_socket *sock = NULL;

        rc = ssock_server_accept(server, &sock);
        if (rc == SSOCK_ETIMEOUT)
            continue; /* "nothing": still waiting; check the flag */
        if (rc != 0) {
            fprintf(stderr, "accept failed: %s\n", ssock_strerror(rc));
            status = 1;
            break;
        }
        (void)ssock_socket_set_read_timeout(sock, READ_TIMEOUT_MS);
        rc = serve(sock);
        ssock_socket_free(sock);
        fflush(stdout);
        if (once) {
            status = rc == 0 ? 0 : 1;
            break;
        }
    }
    ssock_server_free(server);
    return status;
}
