#!/usr/bin/env python3
"""CDK entry point: `cdk synth` / `make synth` (offline, no AWS account needed)."""
import sys

from infra.app import main

if __name__ == "__main__":
    sys.exit(main())
