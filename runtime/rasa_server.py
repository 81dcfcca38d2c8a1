"""The Rasa command line with the project's patches applied: `python -m runtime.rasa_server run …`.

`make run`, `make shell`, the tests and the benchmark start the Rasa server this way, so the
measured fixes of runtime/rasa_patches.py are applied where the server starts, and nowhere else.
Any arguments are Rasa's own (`rasa run --help`).
"""

from runtime import rasa_patches


def main() -> None:
    rasa_patches.apply()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
