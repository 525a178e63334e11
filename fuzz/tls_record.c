/*
 * tls_record: record a whole TLS session, as the client sent it, against
 * the very server the OpenSSL fuzz target runs (same fixture, same fixed
 * random stream, same acceptor), so the file replays to the end through
 * fuzz_tls_openssl: handshake, application data, close.
 *
 *   tls_record OUTFILE
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as "port N" on stdout),
 * takes one TCP connection, and relays it to the server under test through
 * a socketpair, saving every byte the client sends to OUTFILE. The server
 * reads for up to 2 s, echoes what it gets, and closes when the client is
 * done. fuzz/record-sessions.sh drives it with `openssl s_client`.
 */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>

#include "fuzz.h"

#define FUZZ_TLS_BACKEND SSOCK_TLS_BACKEND_OPENSSL
#include "tls_common.h"
#include "tls_openssl_rng.h"

/* The target's entry point, for completeness; main() below records. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tls_fixtures();
    fuzz_rng_install();
    tls_fuzz_one(data, size);
    return 0;
}

struct relay {
    int client; /* the TCP connection from the real client */
    int pair;   /* our end of the socketpair to the server */
    FILE *out;
};

/* Copy both ways until both sides are done; save client -> server. */
static void *relay_main(void *arg)
{
    struct relay *r = arg;
    char buf[16384];
    int up = 1, down = 1;
    while (up || down) {
        struct pollfd p[2] = {{r->client, up ? POLLIN : 0, 0},
                              {r->pair, down ? POLLIN : 0, 0}};
        if (poll(p, 2, 5000) <= 0)
            break;
        if (up && p[0].revents) {
            ssize_t n = recv(r->client, buf, sizeof(buf), 0);
            if (n <= 0) {
                shutdown(r->pair, SHUT_WR);
                up = 0;
            } else {
                fwrite(buf, 1, (size_t)n, r->out);
                if (tls_write_all(r->pair, (const uint8_t *)buf, (size_t)n))
                    up = 0;
            }
        }
        if (down && p[1].revents) {
            ssize_t n = recv(r->pair, buf, sizeof(buf), 0);
            if (n <= 0 ||
                tls_write_all(r->client, (const uint8_t *)buf, (size_t)n)) {
                shutdown(r->client, SHUT_WR);
                down = 0;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTFILE\n", argv[0]);
        return 2;
    }
    FILE *out = fopen(argv[1], "wb");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    tls_fixtures();

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
        perror("listen");
        return 1;
    }
    printf("port %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    int c = accept(lfd, NULL, NULL);
    if (c < 0) {
        perror("accept");
        return 1;
    }
    close(lfd);

    int p[2];
    TCHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0);
    struct relay r = {c, p[1], out};
    pthread_t th;
    TCHECK(pthread_create(&th, NULL, relay_main, &r) == 0);

    /* tls_serve_one restarts the stream, as for every fuzz input. */
    fuzz_rng_install();
    tls_serve_one(p[0], TLS_DEADLINE_MS, 0);

    pthread_join(th, NULL);
    close(p[1]);
    close(c);
    fclose(out);
    return 0;
}
