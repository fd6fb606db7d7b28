/* The scale run's native floor: peers/raw_many.py in C.

       raw_many_native HOST PORT PATH KEY FIRST_STRATEGY_ID STRATEGIES

   N idle connections in ONE thread blocked in epoll for ever: each upgraded over a plain
   TCP socket, subscribed to its (at most 100, C2's limit) strategies once the server's
   connection.connected arrives, a heartbeat found by a substring test in the head of a
   text frame and answered with a masked heartbeat.ack, pings answered with pongs.  It
   writes nothing and checks nothing else.

   Why it is here: the bench's scale target compares the CPU of an idle client with 1000
   subscriptions over 10 connections with that of one subscription.  Every connection is
   sent, and must answer, its own heartbeat every 30 s, at a time of the server's
   choosing.  What a heartbeat costs in a client with no interpreter around it (no
   bytecode, no cold interpreter state to fault back into the caches after 30 s asleep)
   says how much of the many / one ratio any client, in any language, pays.  The harness
   compiles this file with the system's C compiler when it has one (clients.py). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { PER_CONNECTION = 100, BUFFER = 1 << 16, HEAD = 48 };
enum { OP_TEXT = 1, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

typedef struct {
    int fd;
    int first, count; /* the strategies it subscribes */
    int subscribed;
    size_t length;
    unsigned char buffer[BUFFER];
} Link;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void write_all(int fd, const unsigned char *data, size_t size) {
    while (size > 0) {
        ssize_t sent = write(fd, data, size);
        if (sent < 0)
            die("write");
        data += sent;
        size -= (size_t)sent;
    }
}

/* A client frame: masked, as RFC 6455 requires of clients. */
static void send_frame(int fd, const char *payload, size_t size, int opcode) {
    unsigned char frame[512];
    static const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t head = 0;
    if (size > sizeof frame - 8)
        size = sizeof frame - 8; /* only acks, requests and pong echoes of short pings */
    frame[head++] = (unsigned char)(0x80 | opcode);
    if (size < 126) {
        frame[head++] = (unsigned char)(0x80 | size);
    } else {
        frame[head++] = 0x80 | 126;
        frame[head++] = (unsigned char)(size >> 8);
        frame[head++] = (unsigned char)(size & 0xff);
    }
    memcpy(frame + head, mask, 4);
    head += 4;
    for (size_t i = 0; i < size; i++)
        frame[head + i] = (unsigned char)(payload[i] ^ mask[i % 4]);
    write_all(fd, frame, head + size);
}

static void utc_stamp(char *out, size_t size) {
    time_t now = time(NULL);
    struct tm parts;
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &parts));
}

static void subscribe(Link *link) {
    char stamp[32], message[320];
    utc_stamp(stamp, sizeof stamp);
    for (int i = 0; i < link->count; i++) {
        int size = snprintf(message, sizeof message,
            "{\"msg_type\":\"subscription.request\",\"request_id\":\"raw-%d\","
            "\"timestamp\":\"%s\",\"payload\":{\"action\":\"subscribe\","
            "\"channel\":\"strategy.signal\",\"strategy_id\":%d}}",
            i, stamp, link->first + i);
        send_frame(link->fd, message, (size_t)size, OP_TEXT);
    }
    link->subscribed = 1;
}

/* Handles every whole frame buffered; 0 once the server closed. */
static int frames(Link *link) {
    unsigned char *buffer = link->buffer;
    size_t position = 0;
    while (link->length - position >= 2) {
        size_t size = buffer[position + 1] & 0x7f, start = position + 2;
        if (size == 126) {
            if (link->length - position < 4)
                break;
            size = ((size_t)buffer[position + 2] << 8) | buffer[position + 3];
            start = position + 4;
        } else if (size == 127) {
            if (link->length - position < 10)
                break;
            size = 0;
            for (int i = 0; i < 8; i++)
                size = (size << 8) | buffer[position + 2 + i];
            start = position + 10;
        }
        if (size > BUFFER - 16)
            die("frame larger than the buffer");
        if (start + size > link->length)
            break;
        int opcode = buffer[position] & 0x0f;
        const char *payload = (const char *)buffer + start;
        if (opcode == OP_TEXT) {
            if (memmem(payload, size < HEAD ? size : HEAD, "\"heartbeat\"", 11)) {
                char stamp[32], ack[96];
                utc_stamp(stamp, sizeof stamp);
                int ack_size = snprintf(ack, sizeof ack,
                    "{\"msg_type\":\"heartbeat.ack\",\"timestamp\":\"%s\"}", stamp);
                send_frame(link->fd, ack, (size_t)ack_size, OP_TEXT);
            } else if (!link->subscribed && memmem(payload, size, "connection.connected", 20)) {
                subscribe(link);
            }
        } else if (opcode == OP_PING) {
            send_frame(link->fd, payload, size, OP_PONG);
        } else if (opcode == OP_CLOSE) {
            return 0;
        }
        position = start + size;
    }
    memmove(buffer, buffer + position, link->length - position);
    link->length -= position;
    return 1;
}

static Link *connect_link(const char *host, const char *port, const char *path,
                          const char *key, int first, int count) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *found;
    if (getaddrinfo(host, port, &hints, &found) != 0)
        die("getaddrinfo");
    Link *link = calloc(1, sizeof *link);
    if (link == NULL)
        die("calloc");
    link->first = first;
    link->count = count;
    link->fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    if (link->fd < 0 || connect(link->fd, found->ai_addr, found->ai_addrlen) < 0)
        die("connect");
    freeaddrinfo(found);
    int one = 1;
    setsockopt(link->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char request[1024];
    int size = snprintf(request, sizeof request,
        "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Authorization: Bearer %s\r\n\r\n",
        path, host, port, key);
    write_all(link->fd, (const unsigned char *)request, (size_t)size);
    for (;;) {
        ssize_t got = read(link->fd, link->buffer + link->length, BUFFER - link->length);
        if (got <= 0)
            die("the server closed during the upgrade");
        link->length += (size_t)got;
        unsigned char *end = memmem(link->buffer, link->length, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t head = (size_t)(end + 4 - link->buffer);
            memmove(link->buffer, link->buffer + head, link->length - head);
            link->length -= head;
            return link;
        }
        if (link->length == BUFFER)
            die("upgrade response too long");
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT PATH KEY FIRST_STRATEGY_ID STRATEGIES\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[3], *key = argv[4];
    int first = atoi(argv[5]), count = atoi(argv[6]);
    int poller = epoll_create1(0), open_links = 0;
    if (poller < 0)
        die("epoll_create1");
    for (int begin = 0; begin < count; begin += PER_CONNECTION) {
        int size = count - begin < PER_CONNECTION ? count - begin : PER_CONNECTION;
        Link *link = connect_link(host, port, path, key, first + begin, size);
        if (!frames(link))
            return 0;
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = link};
        if (epoll_ctl(poller, EPOLL_CTL_ADD, link->fd, &event) < 0)
            die("epoll_ctl");
        open_links++;
    }
    struct epoll_event ready[16];
    while (open_links > 0) {
        int count_ready = epoll_wait(poller, ready, 16, -1);
        if (count_ready < 0)
            die("epoll_wait");
        for (int i = 0; i < count_ready; i++) {
            Link *link = ready[i].data.ptr;
            ssize_t got = read(link->fd, link->buffer + link->length, BUFFER - link->length);
            if (got > 0)
                link->length += (size_t)got;
            if (got <= 0 || !frames(link)) {
                epoll_ctl(poller, EPOLL_CTL_DEL, link->fd, NULL);
                close(link->fd);
                open_links--;
            }
        }
    }
    return 0;
}
