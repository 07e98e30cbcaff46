"""CleveReward's recipes (YAML), shipped as the package `clevereward_configs`; see `reward.recipes`."""
