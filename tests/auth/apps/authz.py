"""The authorize callback of the auth tests: refuses the users listed in $KS_TEST_DENY_FILE."""
import os
from pathlib import Path


def allow(user_info, path):
    denied = Path(os.environ["KS_TEST_DENY_FILE"]).read_text(encoding="utf-8").split()
    return user_info["name"] not in denied
