"""Conventions shared by every lictrt command line (``python -m train|export.onnx|export.trt|runtime|benchmarks``).

Exit status, the same for every command:

====  =========================================================================================
0     success
1     the work failed: bad input (image, bitstream, checkpoint, bundle), a refused output, a failed check
2     usage: unknown option, missing argument, contradictory options (the message says which)
130   interrupted (Ctrl-C)
====  =========================================================================================

An error is one line on stderr, ``error: <message>``; ``--verbose`` shows the traceback instead. Third-party
deprecation warnings (FutureWarning, DeprecationWarning) are hidden unless ``--verbose``. Notes about what a
command changed (e.g. an image's alpha channel dropped) are printed as ``note: ...`` on stderr. Progress bars
go to stderr and ``-q`` silences them.

Shell completion: each command is also installed as a console script (``lictrt-train``, ``lictrt-models``,
``lictrt-export-onnx``, ``lictrt-export-trt``, ``lictrt-runtime``, ``lictrt-benchmarks``), because shells bind
completion to a command name, not to ``python -m``; ``lictrt-runtime --install-completion`` sets it up.

``run(app, argv)`` runs a Typer app under these rules; ``progress(...)`` is the one progress-bar factory;
``QuietOpt`` and ``VerboseOpt`` are the ``-q`` / ``--verbose`` options every command declares, ``BundleArg`` and
``CoderMode`` the bundle argument and coder mode of the commands that code images.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

__all__ = [
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "EXIT_INTERRUPTED",
    "UsageError",
    "run",
    "progress",
    "step_progress",
    "quiet_third_party",
    "error_line",
    "CONTEXT",
    "QuietOpt",
    "VerboseOpt",
    "BundleArg",
    "CoderMode",
    "new_app",
]

#: Typer/click context settings every lictrt app uses (``-h`` as well as ``--help``)
CONTEXT = {"help_option_names": ["-h", "--help"]}


def new_app(name: str, help: str | None = None, **kw) -> typer.Typer:
    """A lictrt command-line app: ``-h``/``--help``, shell completion, plain (non-rich) help text."""
    return typer.Typer(name=name, help=help, context_settings=CONTEXT, add_completion=True, rich_markup_mode=None, **kw)


class CoderMode(str, Enum):
    """The entropy coder's mode (``--mode``)."""

    fast = "fast"
    compat = "compat"


#: a codec bundle directory, the first argument of the commands that code images
BundleArg = Annotated[Path, typer.Argument(metavar="BUNDLE", help="codec bundle directory (python -m export.onnx)")]
#: ``-q``: no progress bars (and no per-item lines where a command prints them)
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="no progress bars")]
#: ``--verbose``: tracebacks on error, third-party warnings (``run`` reads it from argv before parsing)
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="tracebacks on error, third-party warnings")]


class UsageError(Exception):
    """Missing or contradictory command-line options (exit status 2)."""


def quiet_third_party(verbose: bool = False) -> None:
    """Hide third-party deprecation warnings unless ``verbose``; print notes as ``note: ...`` on stderr."""
    if not verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(torch|onnx|onnxscript|compressai)(\.|$)")
    root = logging.getLogger("lictrt")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("note: %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.INFO)


def error_line(e: BaseException) -> str:
    """The one line a user sees for ``e``: its first line, an OSError as 'reason: path'."""
    text = str(e).strip()
    msg = text.splitlines()[0] if text else type(e).__name__
    if isinstance(e, OSError) and e.filename:
        msg = f"{e.strerror or msg}: {e.filename}"
    return msg


def _verbose(argv: list[str]) -> bool:
    return "--verbose" in argv or "-v" in argv


def run(app, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run Typer ``app`` on ``argv`` (default ``sys.argv[1:]``) and return the exit status of the rules above."""
    try:  # Typer vendors click since 0.2x; older releases use click itself
        from typer._click import exceptions as cx
    except ImportError:
        from click import exceptions as cx
    argv = list(sys.argv[1:] if argv is None else argv)
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if script and not script.endswith(".py") and script not in ("-c", "-m"):
        prog = script  # a console script (lictrt-runtime ...): its name is what shell completion binds to
    verbose = _verbose(argv)
    quiet_third_party(verbose)
    try:
        cmd = typer.main.get_command(app)
        rc = cmd.main(args=argv, prog_name=prog, standalone_mode=False)
        return rc if isinstance(rc, int) else EXIT_OK
    except (typer.Exit, getattr(cx, "Exit", typer.Exit)) as e:  # --help, --show-completion
        return e.exit_code
    except cx.UsageError as e:  # also "no arguments": the help, then status 2
        e.show()
        return EXIT_USAGE
    except UsageError as e:
        print(f"error: {e} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, typer.Abort, getattr(cx, "Abort", typer.Abort)):
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # one line for the user; --verbose for the traceback
        if verbose:
            raise
        print(f"error: {error_line(e)}", file=sys.stderr)
        return EXIT_ERROR


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    quiet: bool = False,
    leave: bool = False,
    delay: float = 0.0,
):
    """A tqdm progress bar on stderr (disabled by ``quiet``; shown only after ``delay`` seconds)."""
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=quiet,
        leave=leave,
        file=sys.stderr,
        dynamic_ncols=True,
        delay=delay,
    )


def step_progress(desc: str, quiet: bool = False, delay: float = 1.0):
    """``(bar, callback)`` for a Codec call's ``progress=``: a bar of the plan's steps that appears only when the
    work lasts longer than ``delay`` seconds (a large image), nothing with ``quiet``. Close the bar after."""
    bar = progress(total=0, desc=desc, unit="step", quiet=quiet, delay=delay)

    def callback(done: int, total: int) -> None:
        if total != bar.total:
            bar.total = total
        bar.update(done - bar.n)

    return bar, callback
