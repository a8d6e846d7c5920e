"""The lineage tags a version starts with."""

from components import vocabulary as v
from components.release.lineage import lineage_tags

COMMON = {"dataset_md5": "m", "dataset_path": "p", "git": "g", "params_hash": "h", "candidate": "c", "family": "f"}


def test_the_task_is_tagged_when_known():
    assert lineage_tags(**COMMON, task="multiclass")[v.TAG_TASK] == "multiclass"
    assert v.TAG_TASK not in lineage_tags(**COMMON)  # callers from before tasks: nothing claimed
    assert lineage_tags(**COMMON)[v.TAG_FAMILY] == "f"
