/* tools/testing/selftests/hello/hello_test.c */
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <assert.h>

#ifndef __NR_hello
#define __NR_hello 451
#endif

#include <linux/hello.h>

int main(void)
{
    struct hello_args args = {
        .flags = 0,
        .pad   = 0,
        .name  = (unsigned long)"world",
    };

    long ret = syscall(__NR_hello, &args, sizeof(args));
    assert(ret == 0);

    /* Test: unknown flag should fail */
    args.flags = 0xdeadbeef;
    ret = syscall(__NR_hello, &args, sizeof(args));
    assert(ret == -1 && errno == EINVAL);

    /* Test: NULL pointer should fail */
    args.flags = 0;
    args.name = 0;
    ret = syscall(__NR_hello, &args, sizeof(args));
    assert(ret == -1 && errno == EFAULT);

    printf("All tests passed\n");
    return 0;
}
