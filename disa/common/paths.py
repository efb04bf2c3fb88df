"""Where the project's files are, for a CLI run from a checkout or an editable install."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CFT_DIR = ROOT / "cft"
ROOT_TEMPLATE = CFT_DIR / "root-stack.yaml"
SUBSCRIBER_TEMPLATE = CFT_DIR / "subscriber-stack.yaml"
SAMPLE_CONSUMER = ROOT / "code" / "python" / "sample_consumer"
STATE_MACHINE_DIR = ROOT / "state-machine"
LAMBDA_SOURCE = ROOT / "code" / "python" / "disa_lambda"
LAMBDA_REQUIREMENTS = ROOT / "requirements" / "lambda.txt"
BUILD_DIR = ROOT / "build"
