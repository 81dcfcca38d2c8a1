"""The Rasa command line with the project's patches applied: `python -m runtime.rasa_server run …`.

`make run`, `make shell`, the tests and the benchmark start the Rasa server this way, so the
measured fixes of runtime/rasa_patches.py are applied where the server starts, and nowhere else.
Any arguments are Rasa's own (`rasa run --help`). A `run` without `--cors` takes its origins from
CORS_ORIGINS (comma-separated, as the socket.io channel reads it), so a systemd unit
(deploy/systemd) needs no shell to split them.
"""

import os
import sys

from runtime import rasa_patches


def with_cors_from_environment(argv: list[str]) -> list[str]:
    origins = [o.strip() for o in os.environ.get("CORS_ORIGINS", "").split(",") if o.strip()]
    if argv[1:2] != ["run"] or "--cors" in argv or not origins:
        return argv
    return [*argv, "--cors", *origins]


def main() -> None:
    sys.argv = with_cors_from_environment(sys.argv)
    rasa_patches.apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
