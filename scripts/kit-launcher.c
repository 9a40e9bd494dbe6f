/*
 * kit-launcher.c - the `kit` executable. Ctrl-C or SIGTERM must never kill
 * kit outright, not even while Python starts (tens of milliseconds before
 * any of kit's code can take them). So the signals are blocked here, where
 * nothing has started; blocked signals stay pending across exec, and
 * kit.command takes them the moment its handlers are in place.
 *
 * Built by scripts/setup.sh with KIT_PYTHON set to the virtualenv's python.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef KIT_PYTHON
#error "build with -DKIT_PYTHON=\"/path/to/.venv/bin/python\""
#endif

/* Isolated (-I: no cwd on sys.path, no PYTHON* variables) and without site
 * (-S) until the handlers are set; kit.command then loads site itself. */
static const char start[] =
	"import kit.command as c; c.run_as_command()";

int main(int argc, char **argv)
{
	sigset_t stop;
	char **args = calloc((size_t)argc + 5, sizeof(*args));
	int i;

	if (!args)
		return 127;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	args[0] = KIT_PYTHON;
	args[1] = "-I";
	args[2] = "-c";
	args[3] = (char *)start;
	for (i = 1; i < argc; i++)
		args[3 + i] = argv[i];
	execv(KIT_PYTHON, args);
	sigprocmask(SIG_UNBLOCK, &stop, NULL);
	perror("kit: cannot start " KIT_PYTHON);
	return 127;
}
