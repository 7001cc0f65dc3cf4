"""`python -m model_training train|evaluate|card` (see model_training.cli)."""
import os
import sys

# TensorFlow's start-up chatter (oneDNN notice, CUDA probing) hides the CLI's own output;
# oneDNN off also keeps CPU results bit-for-bit reproducible.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from model_training.cli import main  # noqa: E402  (the environment must be set before TensorFlow loads)

sys.exit(main())
