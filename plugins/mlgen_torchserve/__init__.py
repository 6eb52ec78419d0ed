"""torchserve serving backend for mlgen (being written)."""

MLGEN_PLUGIN_API = 1
