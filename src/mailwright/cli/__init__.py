"""The ``mailwright`` command: serve, queue, send, user, config, and the authentication tools.

The tools are ``auth check``, ``spf check|build``, ``dkim keygen|sign|verify``,
``dmarc build`` and ``check DOMAIN`` (docs/cli.md).

Exit statuses (also in docs/cli.md):

* 0: done;
* 1: the command ran and failed (unknown queue id or user, mail refused, a DKIM
  signature that does not pass, an error finding of ``check``);
* 2: bad usage or a bad configuration (the message names file, line and key);
* 3: a server could not be reached (``send``), or ``serve`` is not available;
* 130: interrupted (Ctrl-C).
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130
