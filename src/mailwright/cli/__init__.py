"""The ``mailwright`` command: serve, queue, send, user and config.

Exit statuses (also in docs/cli.md):

* 0: done;
* 1: the command ran and failed (unknown queue id or user, mail refused);
* 2: bad usage or a bad configuration (the message names file, line and key);
* 3: a server could not be reached (``send``), or ``serve`` is not available;
* 130: interrupted (Ctrl-C).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130
