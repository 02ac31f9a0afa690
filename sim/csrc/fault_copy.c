// SPDX-License-Identifier: GPL-2.0
/*
 * Fault-safe memory copies for the library kernel's user accesses.
 *
 * Like a real kernel's exception table: the copy runs with a per-thread
 * recovery point armed, and a SIGSEGV/SIGBUS handler that finds the point
 * armed jumps back to it, so the copy reports failure instead of killing
 * the process.  A fault anywhere else is passed to the handler that was
 * installed before ours (Rust's stack-overflow guard, a debugger's, or the
 * default action), exactly as if ours were not there.  The good path costs
 * a memcpy plus a sigsetjmp that saves no signal mask.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Volatile: the handler reads it between any two instructions. */
static __thread sigjmp_buf *volatile recovery;
static struct sigaction previous_segv, previous_bus;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error;

static void pass_on(int sig, siginfo_t *info, void *context)
{
	struct sigaction *previous = sig == SIGSEGV ? &previous_segv
						    : &previous_bus;

	if (previous->sa_flags & SA_SIGINFO) {
		previous->sa_sigaction(sig, info, context);
		return;
	}
	if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
		previous->sa_handler(sig);
		return;
	}
	/* Default action: restore it; the faulting access runs again. */
	signal(sig, SIG_DFL);
}

static void on_fault(int sig, siginfo_t *info, void *context)
{
	sigjmp_buf *point = recovery;

	if (point) {
		recovery = NULL;
		siglongjmp(*point, 1);
	}
	pass_on(sig, info, context);
}

static void install(void)
{
	struct sigaction action;

	memset(&action, 0, sizeof(action));
	action.sa_sigaction = on_fault;
	/*
	 * SA_ONSTACK: a stack overflow must still reach Rust's handler on
	 * the alternate stack.  SA_NODEFER: leaving the handler by a jump
	 * must not leave the signal blocked.
	 */
	action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&action.sa_mask);
	if (sigaction(SIGSEGV, &action, &previous_segv) ||
	    sigaction(SIGBUS, &action, &previous_bus))
		install_error = 1;
}

/* Installs the handler once per process; returns 0 or -1. */
int lkl_sim_fault_install(void)
{
	pthread_once(&install_once, install);
	return install_error ? -1 : 0;
}

/*
 * Copies n bytes; returns 0, or n if any byte faulted (the destination may
 * then be partly written).
 */
size_t lkl_sim_fault_copy(void *dst, const void *src, size_t n)
{
	sigjmp_buf point;

	if (sigsetjmp(point, 0)) {
		recovery = NULL;
		return n;
	}
	recovery = &point;
	memcpy(dst, src, n);
	recovery = NULL;
	return 0;
}

/*
 * Compare-and-exchange of a 32-bit word: *expected gets the word's value.
 * Returns 0, or -1 if the word faulted (unmapped, or not writable: a
 * locked cmpxchg always writes).
 */
int lkl_sim_fault_cmpxchg32(uint32_t *addr, uint32_t *expected,
			    uint32_t desired)
{
	sigjmp_buf point;

	if (sigsetjmp(point, 0)) {
		recovery = NULL;
		return -1;
	}
	recovery = &point;
	__atomic_compare_exchange_n(addr, expected, desired, 0,
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	recovery = NULL;
	return 0;
}
