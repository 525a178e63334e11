/* Smoke test of an installed ssock: open a server on an ephemeral port on
 * 127.0.0.1, check the port and host, close, print the version. */
#include <ssock/ssock.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    ssock_server *server = NULL;
    int port;
    int rc = ssock_server_open_addr(&server, 0, 1000, "127.0.0.1");

    if (rc != 0) {
        fprintf(stderr, "consumer: open failed: %s (%s)\n", ssock_strerror(rc),
                ssock_err_name(rc));
        return 1;
    }
    port = ssock_server_local_port(server);
    if (port <= 0 || port > 65535 ||
        strcmp(ssock_server_host(server), "127.0.0.1") != 0) {
        fprintf(stderr, "consumer: bad address %s:%d\n",
                ssock_server_host(server), port);
        ssock_server_free(server);
        return 1;
    }
    rc = ssock_server_close(server);
    ssock_server_free(server);
    if (rc != 0) {
        fprintf(stderr, "consumer: close failed: %s\n", ssock_strerror(rc));
        return 1;
    }
    if (strcmp(ssock_version_string(), SSOCK_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header %s but library %s\n",
                SSOCK_VERSION_STRING, ssock_version_string());
        return 1;
    }
    printf("consumer: port %d ok, ssock %s\n", port, ssock_version_string());
    return 0;
}
