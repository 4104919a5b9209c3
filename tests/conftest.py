"""Test-wide settings: ultralytics stays offline and writes nothing to $HOME."""

import os
import tempfile

os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "false"
os.environ["YOLO_VERBOSE"] = "false"
os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="roadsight-test-ultralytics-")
