// SPDX-License-Identifier: GPL-2.0
/*
 * Booting and halting the library kernel.
 *
 * lkl_start_kernel() runs start_kernel() on a new host thread, which then
 * becomes the idle task, and waits until pid 1 has "exec'd" /init: a file
 * this code creates in rootfs and a private binfmt accepts.  There is no
 * user space to run, so pid 1 becomes the first host task instead, the one
 * every later host task is cloned from.
 */
#define pr_fmt(fmt) "lkl: " fmt

#include <linux/binfmts.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/panic_notifier.h>
#include <linux/personality.h>
#include <linux/reboot.h>
#include <linux/sched/task.h>
#include <linux/start_kernel.h>
#include <linux/string.h>
#include <linux/tick.h>
#include <asm/cpu.h>
#include <asm/kasan.h>
#include <asm/setup.h>

#define LKL_INIT_PATH	"/init"

const struct lkl_host_ops *lkl_ops;
bool lkl_panicked;
static bool lkl_halted;

void (*pm_power_off)(void);

/* Powering off is what lkl_sys_halt() asks for; machine_power_off() does it. */
static void lkl_power_off(void)
{
}

static struct notifier_block lkl_panic_nb;

void __init setup_arch(char **cmdline_p)
{
	/* A panic from here on is reported, with the log, to the host. */
	lkl_console_init();
	atomic_notifier_chain_register(&panic_notifier_list, &lkl_panic_nb);
	pm_power_off = lkl_power_off;
	*cmdline_p = boot_command_line;
	parse_early_param();
	lkl_smp_init_cpus();
	lkl_mem_init();
	kasan_init();
}

static void __ref lkl_boot_thread(void *arg)
{
	void *jb[LKL_JMP_BUF_WORDS];

	if (__builtin_setjmp(jb)) {
		lkl_kasan_forget_frames();
		return;
	}
	lkl_exit_point = jb;
	lkl_current_ti = &init_thread_info;
	init_task.thread.tid = lkl_thread_id();
	lkl_cpus[0].curr = &init_task;
	lkl_cpu_take(&lkl_cpus[0], false);
	start_kernel();
}

/**
 * lkl_start_kernel() - boot the library kernel
 * @ops: host services; must stay valid until lkl_sys_halt() returns
 * @cmdline: kernel command line
 *
 * Return: 0 once the kernel is ready for system calls, or a negative
 * errno if it could not be started.
 */
int __ref lkl_start_kernel(const struct lkl_host_ops *ops, const char *cmdline)
{
	struct lkl_sem *init_sem;
	size_t i;
	int ret;

	if (lkl_ops)
		return -EBUSY;
	lkl_ops = ops;
	ret = lkl_kasan_map();
	if (ret) {
		lkl_ops = NULL;
		return ret;
	}
	/*
	 * Not strscpy(): no kernel code that a sanitizer may instrument runs
	 * on this thread, which is no task's.
	 */
	for (i = 0; i + 1 < COMMAND_LINE_SIZE && cmdline[i]; i++)
		boot_command_line[i] = cmdline[i];
	boot_command_line[i] = '\0';

	init_sem = lkl_ops->sem_alloc(0);
	if (!init_sem)
		return -ENOMEM;
	ret = lkl_cpus_init();
	if (ret)
		goto out_free;
	ret = lkl_threads_init(init_sem);
	if (ret)
		goto out_free;

	lkl_cpus[0].idle_tid = lkl_ops->thread_create(lkl_boot_thread, NULL);
	if (!lkl_cpus[0].idle_tid) {
		ret = -ENOMEM;
		goto out_free;
	}

	lkl_ops->sem_down(init_sem);
	lkl_ops->sem_free(init_sem);

	/*
	 * pid 1 gave up its host thread with its CPU still held: run pid 1
	 * on this thread and return it to "user mode", which frees the CPU.
	 * pid 1 belongs to no thread afterwards (see lkl_new_host_task()).
	 */
	lkl_current_ti = task_thread_info(lkl_host0);
	__atomic_store_n(&lkl_this_cpu()->owner, lkl_thread_id(),
			 __ATOMIC_SEQ_CST);
	lkl_task_leave();
	lkl_host0->thread.tid = 0;
	return 0;

out_free:
	lkl_ops->sem_free(init_sem);
	return ret;
}

/*
 * Power off as the caller's task.  Not through the reboot system call: that
 * holds system_transition_mutex across kernel_power_off(), which does not
 * return here (see lkl_machine_stop()).
 */
static long lkl_power_off_task(long unused_nr, long *unused_params,
			       void *unused_data)
{
	kernel_power_off();
	/* Only if the power-off did not happen. */
	return -EIO;
}

/**
 * lkl_sys_halt() - power the kernel off and stop its host threads
 *
 * Return: 0, or a negative errno if the kernel could not be halted.
 */
long lkl_sys_halt(void)
{
	long ret;

	ret = lkl_host_call(lkl_power_off_task, 0, NULL, NULL);
	/*
	 * The kernel may have powered itself off (a torture test's end): the
	 * halt is then done or being done; wait for it to finish.
	 */
	if (ret == -ESHUTDOWN && !READ_ONCE(lkl_panicked)) {
		while (!READ_ONCE(lkl_halted))
			lkl_ops->thread_yield();
		ret = 0;
	}
	if (ret < 0)
		return ret;
	if (!READ_ONCE(lkl_halted))
		return -EIO;

	/* Host threads told to leave may still be on their way out. */
	lkl_drain();
	lkl_syscalls_cleanup();
	lkl_cpus_cleanup();
	lkl_mem_cleanup();
	lkl_kasan_cleanup();
	return 0;
}

/*
 * Every way to stop the machine ends the same: the other CPUs are stopped,
 * and this one, which runs the task that powers off, ends every thread of
 * the kernel and leaves it too; no kernel code runs afterwards.
 */
static void __noreturn lkl_machine_stop(void)
{
	smp_send_stop();
	lkl_shutdown();
	/* This CPU is never given back either. */
	WRITE_ONCE(lkl_this_cpu()->stopped, true);
	lkl_threads_stop();
	lkl_time_cleanup();
	WRITE_ONCE(lkl_halted, true);
	lkl_leave_for_good(0);
}

void machine_halt(void)
{
	lkl_machine_stop();
}

void machine_power_off(void)
{
	lkl_machine_stop();
}

void machine_restart(char *cmd)
{
	lkl_machine_stop();
}

/*
 * A panicked kernel is never entered again: panic() has stopped the other
 * CPUs, the kernel is shut so that every system call fails, the host
 * records the panic, and the panicking thread leaves kernel code for good.
 * A host program thread goes back to its lkl_syscall(), which returns
 * -ESHUTDOWN; an interrupt thread returns to the host; a kernel thread's
 * host thread returns.
 */
static int lkl_panic(struct notifier_block *nb, unsigned long event,
		     void *msg)
{
	struct lkl_sem *never;

	WRITE_ONCE(lkl_panicked, true);
	lkl_shutdown();
	lkl_ops->panic(lkl_ops->ctx, msg);

	if (lkl_exit_point)
		lkl_leave_for_good(-ESHUTDOWN);

	never = lkl_ops->sem_alloc(0);
	for (;;)
		lkl_ops->sem_down(never);
	return NOTIFY_DONE;
}

static struct notifier_block lkl_panic_nb = {
	.notifier_call = lkl_panic,
	.priority = INT_MIN,
};

static int lkl_load_init(struct linux_binprm *bprm);

static struct linux_binfmt lkl_init_binfmt = {
	.module = THIS_MODULE,
	.load_binary = lkl_load_init,
};

/*
 * "Run" /init: finish the exec so pid 1 is a normal process, then return to
 * kernel_init(), whose caller hands pid 1 to the host (copy_thread()).
 */
static int lkl_load_init(struct linux_binprm *bprm)
{
	int ret;

	if (strcmp(bprm->filename, LKL_INIT_PATH))
		return -ENOEXEC;

	ret = begin_new_exec(bprm);
	if (ret)
		return ret;
	set_personality(PER_LINUX);
	setup_new_exec(bprm);
	set_binfmt(&lkl_init_binfmt);
	finalize_exec(bprm);
	return 0;
}

static int __init lkl_init_setup(void)
{
	struct file *file;

	file = filp_open(LKL_INIT_PATH, O_CREAT | O_WRONLY, 0700);
	if (IS_ERR(file)) {
		pr_err("cannot create %s: %ld\n", LKL_INIT_PATH,
		       PTR_ERR(file));
		return PTR_ERR(file);
	}
	__fput_sync(file);
	register_binfmt(&lkl_init_binfmt);
	return 0;
}
late_initcall(lkl_init_setup);
