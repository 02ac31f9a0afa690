// SPDX-License-Identifier: GPL-2.0
/*
 * Signals of host tasks, and the rest of the work on the way back to "user
 * mode" (the host program) at the end of a system call.
 *
 * Host code cannot run a signal handler of the kernel's kind: there is no
 * user-mode context to build a frame on.  A signal whose action is a handler
 * is taken as delivered to a handler that returns at once, as on any
 * architecture after sigreturn; the system call it interrupted restarts or
 * fails with -EINTR by the usual rules (SA_RESTART).  Host tasks are threads
 * of pid 1, so signals with the default action are ignored, as they are for
 * every init, and an interrupted call restarts.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/resume_user_mode.h>
#include <linux/sched/signal.h>
#include <linux/signal.h>
#include <asm/cpu.h>

/*
 * Takes the next signal; returns true if the call returning @ret must run
 * again.
 */
static bool lkl_do_signal(long *ret)
{
	struct ksignal ksig;
	bool restart = false;

	if (get_signal(&ksig)) {
		switch (*ret) {
		case -ERESTART_RESTARTBLOCK:
		case -ERESTARTNOHAND:
			*ret = -EINTR;
			break;
		case -ERESTARTSYS:
			if (!(ksig.ka.sa.sa_flags & SA_RESTART)) {
				*ret = -EINTR;
				break;
			}
			fallthrough;
		case -ERESTARTNOINTR:
			restart = true;
			break;
		}
		/* The handler "returned": the mask it ran with is gone too. */
		restore_saved_sigmask();
		return restart;
	}

	switch (*ret) {
	case -ERESTARTNOHAND:
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTART_RESTARTBLOCK:
		restart = true;
		break;
	}
	restore_saved_sigmask();
	return restart;
}

/**
 * lkl_exit_to_user() - the work due before a system call returns
 * @ret: the call's result, updated as signals require
 *
 * Runs task work and takes pending signals, as an architecture does on
 * its way back to user mode.
 *
 * Return: true if the call has to be restarted: with the same arguments,
 * or as restart_syscall() if *@ret is -ERESTART_RESTARTBLOCK.
 */
bool lkl_exit_to_user(long *ret)
{
	const unsigned long work = _TIF_SIGPENDING | _TIF_NOTIFY_SIGNAL |
				   _TIF_NOTIFY_RESUME;
	unsigned long flags;
	bool restart = false;

	while ((flags = READ_ONCE(current_thread_info()->flags)) & work) {
		if (flags & (_TIF_SIGPENDING | _TIF_NOTIFY_SIGNAL))
			restart = lkl_do_signal(ret);
		if (flags & _TIF_NOTIFY_RESUME)
			resume_user_mode_work(NULL);
	}
	return restart;
}
