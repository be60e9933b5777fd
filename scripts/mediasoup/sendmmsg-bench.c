// What batching the worker's UDP sends with sendmmsg() could save (issue 20, README.md "Where
// the worker's time goes"): sender CPU per datagram on loopback, one sendmsg() per datagram as
// mediasoup sends today, against one sendmmsg() of 10 datagrams per destination socket per
// round (the bench's plain-RTP room: 10 publishers, one socket per listener), copy included.
// A reader thread drains the receivers as the bench's sinks do.
//
//   gcc -O2 -o /tmp/sendmmsg-bench scripts/mediasoup/sendmmsg-bench.c -lpthread
//   /tmp/sendmmsg-bench 0 2000; /tmp/sendmmsg-bench 1 2000   # unbatched, batched; 2000 rounds
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define DESTS 100
#define PUBS 10
#define LEN 100
static int rx[DESTS], tx[DESTS];
static struct sockaddr_in dst[DESTS];
static volatile int stop;
static long received;

static void* reader(void* arg) {
	(void)arg;
	int ep = epoll_create1(0);
	for (int i = 0; i < DESTS; i++) { struct epoll_event ev = { .events = EPOLLIN, .data.fd = rx[i] }; epoll_ctl(ep, EPOLL_CTL_ADD, rx[i], &ev); }
	char buf[32][2048]; struct mmsghdr m[32]; struct iovec v[32];
	for (int i = 0; i < 32; i++) { v[i].iov_base = buf[i]; v[i].iov_len = 2048; memset(&m[i], 0, sizeof m[i]); m[i].msg_hdr.msg_iov = &v[i]; m[i].msg_hdr.msg_iovlen = 1; }
	struct epoll_event evs[128];
	while (!stop) {
		int n = epoll_wait(ep, evs, 128, 10);
		for (int i = 0; i < n; i++) { int r; while ((r = recvmmsg(evs[i].data.fd, m, 32, MSG_DONTWAIT, NULL)) > 0) received += r; }
	}
	return NULL;
}

static double cpu_us(void) { struct rusage u; getrusage(RUSAGE_THREAD, &u); return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec; }
static double sys_us(void) { struct rusage u; getrusage(RUSAGE_THREAD, &u); return u.ru_stime.tv_sec * 1e6 + u.ru_stime.tv_usec; }

int main(int argc, char** argv) {
	int batched = argc > 1 && atoi(argv[1]);
	int rounds = argc > 2 ? atoi(argv[2]) : 2000;
	for (int i = 0; i < DESTS; i++) {
		rx[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		int sz = 1 << 21; setsockopt(rx[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		bind(rx[i], (struct sockaddr*)&a, sizeof a); socklen_t l = sizeof dst[i]; getsockname(rx[i], (struct sockaddr*)&dst[i], &l);
		tx[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		bind(tx[i], (struct sockaddr*)&a, sizeof a);
	}
	pthread_t t; pthread_create(&t, NULL, reader, NULL);
	char payload[LEN]; memset(payload, 7, LEN);
	static char queue[DESTS][PUBS][LEN]; struct mmsghdr m[PUBS]; struct iovec v[PUBS];
	long sent = 0; double c0 = cpu_us(), s0 = sys_us();
	for (int r = 0; r < rounds; r++) {
		if (!batched) {
			for (int p = 0; p < PUBS; p++)
				for (int d = 0; d < DESTS; d++) {
					struct iovec iv = { payload, LEN }; struct msghdr h = { .msg_name = &dst[d], .msg_namelen = sizeof dst[d], .msg_iov = &iv, .msg_iovlen = 1 };
					if (sendmsg(tx[d], &h, 0) == LEN) sent++;
				}
		} else {
			for (int p = 0; p < PUBS; p++)
				for (int d = 0; d < DESTS; d++) memcpy(queue[d][p], payload, LEN);  // the copy the worker's queue makes
			for (int d = 0; d < DESTS; d++) {
				for (int p = 0; p < PUBS; p++) { v[p].iov_base = queue[d][p]; v[p].iov_len = LEN; memset(&m[p], 0, sizeof m[p]); m[p].msg_hdr.msg_name = &dst[d]; m[p].msg_hdr.msg_namelen = sizeof dst[d]; m[p].msg_hdr.msg_iov = &v[p]; m[p].msg_hdr.msg_iovlen = 1; }
				int n = sendmmsg(tx[d], m, PUBS, 0); if (n > 0) sent += n;
			}
		}
		usleep(1000);
	}
	double c = cpu_us() - c0, s = sys_us() - s0;
	usleep(100000); stop = 1; pthread_join(t, NULL);
	printf("%s: %ld datagrams, sender %.3f us/datagram (sys %.3f), received %ld\n", batched ? "sendmmsg x10" : "sendmsg", sent, c / sent, s / sent, received);
	return 0;
}
