"""A clean environment for programs under test that reach cloud origins:
util.clean_env (no AWS_* or PAGEMESH_* variables, HOME in a test
directory) also without the Azure, Hugging Face and Google variables a
developer's shell may hold, so that only what a test sets is seen."""

from . import util

PREFIXES = ("AZURE_", "HF_", "HUGGING_FACE_", "GCS_", "GOOGLE_", "CLOUDSDK_",
            "STORAGE_EMULATOR_HOST", "GCE_")


def clean_env(home, **extra):
    env = util.clean_env(home)
    env = {k: v for k, v in env.items() if not k.startswith(PREFIXES)}
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def blank(**values):
    """For PagemeshCLI, which starts from os.environ: every cloud variable
    the outer environment holds set empty (pagemesh treats empty as unset),
    then `values`."""
    import os
    env = {k: "" for k in os.environ if k.startswith(PREFIXES)}
    env.update({k: str(v) for k, v in values.items() if v is not None})
    return env
