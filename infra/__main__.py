"""What `pulumi up` runs (Pulumi.yaml: runtime python). See PUBLISHING.md section 10."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The program package beside this file, and pubsys from the same checkout (one config schema).
sys.path[:0] = [str(HERE), str(HERE.parent)]

from pubsys_infra.program import export  # noqa: E402

export()
