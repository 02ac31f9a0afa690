/*
 * Compiled by tests/c_abi.rs against the real host_ops.h and loaded with
 * dlopen: checks the layout of struct lkl_host_ops as C sees it, and
 * drives every op (except panic, which never returns) from C code the way
 * the kernel does.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include HOST_OPS_H

#define NFIELDS 33

size_t lkl_test_layout(size_t *offsets)
{
	size_t i = 0;
#define F(x) offsets[i++] = offsetof(struct lkl_host_ops, x)
	F(ctx);
	F(image_start);
	F(image_end);
	F(console_write);
	F(panic);
	F(sem_alloc);
	F(sem_free);
	F(sem_up);
	F(sem_down);
	F(mutex_alloc);
	F(mutex_free);
	F(mutex_enter);
	F(mutex_leave);
	F(thread_create);
	F(thread_self);
	F(thread_join);
	F(thread_yield);
	F(tls_alloc);
	F(tls_free);
	F(tls_set);
	F(tls_get);
	F(time_ns);
	F(wall_ns);
	F(timer_alloc);
	F(timer_set_oneshot);
	F(timer_cancel);
	F(timer_free);
	F(mem_alloc);
	F(mem_free);
	F(copy_from_user);
	F(copy_to_user);
	F(user_cmpxchg32);
	F(backtrace);
	F(stack_walk);
	F(shadow_map);
	F(shadow_clear);
#undef F
	return sizeof(struct lkl_host_ops);
}

static const struct lkl_host_ops *ops;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			return __LINE__;                                       \
	} while (0)

/* --- threads + semaphores --------------------------------------------- */

struct sem_arg {
	struct lkl_sem *sem;
	unsigned long seen_self;
};

static void up_thread(void *p)
{
	struct sem_arg *a = p;

	a->seen_self = ops->thread_self();
	ops->sem_up(a->sem);
}

/* --- mutex ------------------------------------------------------------- */

#define MUTEX_THREADS 4
#define MUTEX_ITERS 20000

struct mutex_arg {
	struct lkl_mutex *m;
	volatile long counter;
};

static void mutex_thread(void *p)
{
	struct mutex_arg *a = p;

	for (int i = 0; i < MUTEX_ITERS; i++) {
		ops->mutex_enter(a->m);
		a->counter = a->counter + 1;
		ops->mutex_leave(a->m);
	}
}

/* --- tls --------------------------------------------------------------- */

static struct lkl_tls_key *tls_key;
static long dtor_calls;
static void *dtor_value;
static unsigned long dtor_self;

static void tls_dtor(void *v)
{
	__atomic_add_fetch(&dtor_calls, 1, __ATOMIC_SEQ_CST);
	dtor_value = v;
	dtor_self = ops->thread_self();
}

static unsigned long tls_thread_self;

static void tls_thread(void *p)
{
	tls_thread_self = ops->thread_self();
	if (ops->tls_get(tls_key) != NULL)
		return;
	ops->tls_set(tls_key, p);
}

/* --- timer ------------------------------------------------------------- */

static void timer_cb(void *p)
{
	ops->sem_up((struct lkl_sem *)p);
}

int lkl_test_run(const struct lkl_host_ops *o)
{
	ops = o;

	/* console */
	static const char line[] = "6,1,0,-,caller=T0;hello from C\n";
	ops->console_write(ops->ctx, line, sizeof(line) - 1);

	/* thread_self */
	unsigned long me = ops->thread_self();
	CHECK(me != 0);
	CHECK(ops->thread_self() == me);

	/* thread_create + sem */
	struct sem_arg sa = { ops->sem_alloc(0), 0 };
	CHECK(sa.sem);
	unsigned long t = ops->thread_create(up_thread, &sa);
	CHECK(t != 0);
	ops->sem_down(sa.sem);
	CHECK(ops->thread_join(t) == 0);
	CHECK(sa.seen_self == t);
	CHECK(ops->thread_join(t) == -1);
	ops->thread_yield();
	ops->sem_free(sa.sem);
	CHECK(ops->sem_alloc(-1) == NULL);

	/* mutex */
	struct mutex_arg ma = { ops->mutex_alloc(), 0 };
	unsigned long mt[MUTEX_THREADS];
	CHECK(ma.m);
	for (int i = 0; i < MUTEX_THREADS; i++) {
		mt[i] = ops->thread_create(mutex_thread, &ma);
		CHECK(mt[i] != 0);
	}
	for (int i = 0; i < MUTEX_THREADS; i++)
		CHECK(ops->thread_join(mt[i]) == 0);
	CHECK(ma.counter == MUTEX_THREADS * MUTEX_ITERS);
	ops->mutex_free(ma.m);

	/* tls */
	tls_key = ops->tls_alloc(tls_dtor);
	CHECK(tls_key);
	CHECK(ops->tls_get(tls_key) == NULL);
	CHECK(ops->tls_set(tls_key, (void *)0x1234) == 0);
	CHECK(ops->tls_get(tls_key) == (void *)0x1234);
	t = ops->thread_create(tls_thread, (void *)0x5678);
	CHECK(t != 0);
	CHECK(ops->thread_join(t) == 0);
	CHECK(__atomic_load_n(&dtor_calls, __ATOMIC_SEQ_CST) == 1);
	CHECK(dtor_value == (void *)0x5678);
	CHECK(dtor_self == t && tls_thread_self == t);
	CHECK(ops->tls_get(tls_key) == (void *)0x1234);
	CHECK(ops->tls_set(tls_key, NULL) == 0);
	ops->tls_free(tls_key);

	/* clocks */
	unsigned long long a = ops->time_ns(), b = ops->time_ns();
	CHECK(a > 0 && b >= a);
	CHECK(ops->wall_ns() > 1600000000ULL * 1000000000ULL);

	/* timer */
	struct lkl_sem *fired = ops->sem_alloc(0);
	struct lkl_timer *tm = ops->timer_alloc(timer_cb, fired);
	CHECK(tm);
	a = ops->time_ns();
	CHECK(ops->timer_set_oneshot(tm, 2000000) == 0);
	ops->sem_down(fired);
	CHECK(ops->time_ns() - a >= 2000000);
	CHECK(ops->timer_set_oneshot(tm, 1000000000ULL) == 0);
	ops->timer_cancel(tm);
	ops->timer_free(tm);
	ops->sem_free(fired);

	/* memory */
	char *m = ops->mem_alloc(3 * 4096);
	CHECK(m && ((uintptr_t)m & 4095) == 0);
	m[0] = 1;
	m[3 * 4096 - 1] = 2;
	CHECK(ops->mem_alloc(0) == NULL);

	/* user copies */
	char buf[16] = "0123456789abcdef";
	CHECK(ops->copy_to_user(m, buf, 16) == 0);
	CHECK(memcmp(m, buf, 16) == 0);
	memset(buf, 0, sizeof(buf));
	CHECK(ops->copy_from_user(buf, m + 8, 8) == 0);
	CHECK(memcmp(buf, "89abcdef", 8) == 0);
	CHECK(ops->copy_from_user(buf, NULL, 16) == 16);
	CHECK(ops->copy_to_user(NULL, buf, 16) == 16);
	CHECK(ops->copy_from_user(buf, (void *)1, 1) == 1);

	/* futex words */
	unsigned int *word = (unsigned int *)(m + 4096), expected = 0;
	*word = 7;
	CHECK(ops->user_cmpxchg32(word, &expected, 9) == 0 && expected == 7);
	CHECK(*word == 7);
	CHECK(ops->user_cmpxchg32(word, &expected, 9) == 0 && expected == 7);
	CHECK(*word == 9);
	CHECK(ops->user_cmpxchg32(NULL, &expected, 1) == -1);
	CHECK(ops->user_cmpxchg32((unsigned int *)(m + 1), &expected, 1) == -1);
	ops->mem_free(m, 3 * 4096);

	return 0;
}
