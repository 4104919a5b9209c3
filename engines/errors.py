"""One error type for everything a user can get wrong; the CLI prints it as one line."""


class RoadsightError(Exception):
    """A problem the user can fix: the message names it and says how.

    Style: "<subject>: <what happened>. Expected <x>, got <y>. <hint>"
    """


class MissingDependency(RoadsightError):
    """An optional package (torch, tensorrt, pycuda, modelopt) is needed but not installed."""

    def __init__(self, package: str, purpose: str, install: str):
        super().__init__(f"{package} is not installed: {purpose} needs it. Install it with: {install}")


def require_training_extra(purpose: str) -> None:
    """Fail with one line when PyTorch/ultralytics (the `train` extra) are missing."""
    import importlib.util

    for package in ("torch", "ultralytics"):
        if importlib.util.find_spec(package) is None:
            raise MissingDependency(package, purpose, "pip install 'roadsight[train]'")
