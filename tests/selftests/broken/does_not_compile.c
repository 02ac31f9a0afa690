// SPDX-License-Identifier: GPL-2.0
/* A syntax error, for the compile error's report. */
int main(void)
{
	return undeclared_thing;
}
