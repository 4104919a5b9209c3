"""Import torch and ultralytics the safe way: offline, no settings in $HOME, all CPU threads.

Every module of model/ that needs torch starts with `from model.ultra import torch`.
"""

import os
import tempfile

from engines.errors import require_training_extra

require_training_extra("training, evaluating .pt checkpoints and export")

# ultralytics pins OMP_NUM_THREADS=1 when unset; torch imported first keeps every core.
import torch  # noqa: E402

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_VERBOSE", "false")
os.environ.setdefault("ULTRALYTICS_SKIP_REQUIREMENTS_CHECKS", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), "roadsight-ultralytics"))

import ultralytics  # noqa: E402,F401

from ultralytics.utils import SETTINGS  # noqa: E402

if SETTINGS.get("sync"):
    SETTINGS.update(sync=False)

__all__ = ["torch"]
