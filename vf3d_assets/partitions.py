"""All partitions, defined once from the catalog: scene, style, and scene x style."""

from dagster import MultiPartitionsDefinition, MultiToSingleDimensionPartitionMapping, StaticPartitionsDefinition

from vf3d.benchmark.catalog import active_catalog

catalog = active_catalog()

scene_partitions = StaticPartitionsDefinition(sorted(catalog.scenes))
style_partitions = StaticPartitionsDefinition(sorted(catalog.styles))
scene_style_partitions = MultiPartitionsDefinition({"scene": scene_partitions, "style": style_partitions})

# Per-scene and per-style assets feed scene x style assets through these (same dimension objects).
from_scene = MultiToSingleDimensionPartitionMapping(partition_dimension_name="scene")
from_style = MultiToSingleDimensionPartitionMapping(partition_dimension_name="style")
