#!/usr/bin/env bash
# Runs the kernel's checkpatch.pl --strict over the patches in lkl/patches,
# lkl/mutants, lkl/fuzz-mutants and lkl/test-patches, and over every file of the arch port;
# fails on any error, warning or check.  The few exceptions below are shapes the generic kernel imposes
# on every architecture, which checkpatch's heuristics cannot know:
#   NEW_TYPEDEFS         pte_t, pgd_t, elf_gregset_t ... are required types
#   MACRO_WITH_FLOW_CONTROL  __get_kernel_nofault() takes a goto label
#   PRINTK_WITHOUT_KERN_LEVEL  show_stack() prints at the level its caller
#                        passes in (loglvl), as every arch's dumpstack does
#   BRACKET_SPACE, MACRO_ARG_UNUSED  the designated-initializer X-macros
#                        __SYSCALL()/__SYSCALL_WITH_COMPAT() that every 6.12
#                        arch's table uses with asm/syscall_table_64.h
#   AVOID_BUG            lkl_deschedule(): schedule() returning there means
#                        a parked host task ran on a borrowed host thread,
#                        which would corrupt that thread's stack; no way on
#   USLEEP_RANGE, LONG_UDELAY  time_kunit.c tests udelay() itself, with the
#                        constants that take its compile-time path
#   ENOSYS               the futex ABI: an unknown FUTEX_OP is -ENOSYS on
#                        every architecture (asm-generic/futex.h)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
tree=$(realpath "${LINUX_SRC:-target/lkl/tree}")
checkpatch="$tree/scripts/checkpatch.pl"
[ -f "$checkpatch" ] || { echo "no $checkpatch: run cargo build first (it prepares the kernel tree)"; exit 1; }

declare -A ignore=(
	[lkl/arch/lkl/include/asm/elf.h]=NEW_TYPEDEFS
	[lkl/arch/lkl/include/asm/page.h]=NEW_TYPEDEFS
	[lkl/arch/lkl/include/asm/uaccess.h]=MACRO_WITH_FLOW_CONTROL
	[lkl/arch/lkl/kernel/misc.c]=PRINTK_WITHOUT_KERN_LEVEL
	[lkl/arch/lkl/kernel/time_kunit.c]=USLEEP_RANGE,LONG_UDELAY
	[lkl/arch/lkl/kernel/syscalls.c]=BRACKET_SPACE,MACRO_ARG_UNUSED
	[lkl/arch/lkl/kernel/threads.c]=AVOID_BUG
	[lkl/arch/lkl/kernel/uaccess.c]=ENOSYS
)

status=0
check() {
	local out
	# From inside the kernel tree, as checkpatch expects.
	out=$(cd "$tree" && perl "$checkpatch" --strict "$@" 2>/dev/null) || true
	if grep -q "total: 0 errors, 0 warnings, 0 checks" <<<"$out"; then
		echo "clean: ${*: -1}" | sed "s|$top/||"
	else
		echo "$out"
		status=1
	fi
}

for patch in lkl/patches/*.patch lkl/mutants/*.patch lkl/fuzz-mutants/*.patch \
	lkl/test-patches/*.patch; do
	check "$top/$patch"
done
while IFS= read -r file; do
	types=${ignore[$file]:-}
	check --no-tree ${types:+--ignore "$types"} -f "$top/$file"
done < <(find lkl/arch/lkl -type f \( -name '*.[chS]' -o -name Makefile -o -name 'Kconfig*' \) | sort)
exit $status
