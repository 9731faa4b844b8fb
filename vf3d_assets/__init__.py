"""The Dagster layer of vf3d: partitions, thin assets, checks, jobs and the `vf3d` command line."""

import warnings

# We use Dagster's beta APIs knowingly (observable sources, partition mappings); dagster is pinned.
from dagster import BetaWarning, PreviewWarning

warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
