/*
 * measure: run one command once and record its wall time and peak RSS.
 *
 *   measure RESULTS LABEL PROGRAM [ARG...]
 *
 * Forks, execs PROGRAM (found on PATH; stdin, stdout and stderr inherited), waits for it with
 * wait4() and appends one line "LABEL WALL_NS MAXRSS_KIB STATUS" to RESULTS. Exits with the
 * command's exit status (128+N if it died of signal N; 127 if it could not be started).
 *
 * Why a C helper rather than python3 or bash: Linux charges a process's ru_maxrss with the
 * high-water RSS of the memory image it had *before* exec() (fs/exec.c: exec_mmap records the old
 * mm's hiwater). A child spawned by python3 therefore reports python's ~13 MiB even for a no-op.
 * This helper is a small static binary, so what it adds is tiny and constant, and the "no-op
 * floor" row of bench/apply.sh shows exactly how much it is. The wall clock (CLOCK_MONOTONIC)
 * runs from just before fork() to just after wait4() returns: process creation, exec, the run
 * and the exit are all inside, nothing else is.
 *
 * bench/apply.sh compiles it at run time (gcc -static -O2); it is never installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: measure RESULTS LABEL PROGRAM [ARG...]\n");
		return 2;
	}
	const char *results = argv[1];
	const char *label = argv[2];

	long long start = now_ns();
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "measure: fork: %s\n", strerror(errno));
		return 127;
	}
	if (pid == 0) {
		execvp(argv[3], &argv[3]);
		fprintf(stderr, "measure: exec %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
			return 127;
		}
	}
	long long wall = now_ns() - start;

	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	int fd = open(results, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || dprintf(fd, "%s %lld %ld %d\n", label, wall, ru.ru_maxrss, code) < 0) {
		fprintf(stderr, "measure: writing %s: %s\n", results, strerror(errno));
		return 127;
	}
	close(fd);
	return code;
}
