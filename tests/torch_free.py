"""Run roadsight in a subprocess where torch, torchvision and ultralytics cannot be imported.

That is what a runtime-only install (Jetson: TensorRT, numpy, OpenCV) sees: `app` and `engines` must work there.
"""

from __future__ import annotations

import sys
import textwrap

TRAINING_STACK = ("torch", "torchvision", "ultralytics")

PRELUDE = textwrap.dedent(
    f"""
    import sys

    class _BlockTrainingStack:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {TRAINING_STACK!r}:
                raise ImportError(f"{{name}} is blocked: runtime code must not import the training stack")
            return None

    sys.meta_path.insert(0, _BlockTrainingStack())

    def training_stack_loaded():
        return sorted(m for m in sys.modules if m.split(".")[0] in {TRAINING_STACK!r})
    """
)


def script(code: str, *args: str) -> list[str]:
    """argv running CODE (after the blocking prelude, which defines training_stack_loaded()) with ARGS."""
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args]


def cli(*args: str) -> list[str]:
    """argv running `roadsight ARGS`; its last stdout line is `TRAINING STACK LOADED: [...]` (expected [])."""
    return script(
        """
        import app.cli
        sys.argv = ["roadsight", *sys.argv[1:]]
        try:
            app.cli.main()
        finally:
            print("TRAINING STACK LOADED:", training_stack_loaded())
        """,
        *args,
    )


NONE_LOADED = "TRAINING STACK LOADED: []"
