# Config validation, offline mode and the names every rule file uses.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# Scripts run in fresh interpreters (and, on a cluster, on other nodes): hand them the
# package the same way.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")])
)

from inputspace.config import load_schema, validated
from inputspace.errors import ConfigError

try:
    _checked = validated(config, load_schema(Path(workflow.basedir) / "schemas/config.schema.yaml"))
except ConfigError as error:
    sys.exit(f"inputspace: {error}")
config.clear()
config.update(_checked)

if not config["allow_downloads"]:
    # Without this, a from_pretrained that misses the cache retries the network for
    # tens of seconds before failing.
    os.environ["HF_HUB_OFFLINE"] = "1"

MODELS = sorted(config["models"])


wildcard_constraints:
    model="|".join(MODELS),


def model_folder(wildcards):
    return f"results/models/{wildcards.model}"
