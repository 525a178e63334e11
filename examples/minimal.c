/* minimal: accept one connection, echo one read back, close. */
#include <ssock/ssock.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    ssock_server *server;
    ssock_socket *sock;
    char buf[512];
    size_t n;
    int rc = ssock_server_open_timeout(&server, argc > 1 ? atoi(argv[1]) : 7000,
                                       SSOCK_WAIT_FOREVER);

    if (rc != 0) {
        fprintf(stderr, "open: %s\n", ssock_strerror(rc));
        return 1;
    }
    printf("listening on port %d\n", ssock_server_local_port(server));
    fflush(stdout);
    rc = ssock_server_accept(server, &sock);
    if (rc == 0) {
        rc = ssock_socket_read(sock, buf, sizeof(buf), &n);
        if (rc == 0)
            rc = ssock_socket_write(sock, buf, n, NULL);
        ssock_socket_free(sock);
    }
    if (rc != 0)
        fprintf(stderr, "error: %s\n", ssock_strerror(rc));
    ssock_server_free(server);
    return rc == 0 ? 0 : 1;
}
