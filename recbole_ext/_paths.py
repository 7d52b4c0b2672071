"""Where things are: this package's folders and RecBole's. A leaf: imports nothing of ours."""

from __future__ import annotations

import os

import recbole

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
PROPERTIES_DIR = os.path.join(PACKAGE_DIR, "properties")
#: one YAML of defaults per model of ours (its name is the model's name)
OWN_MODEL_YAML_DIR = os.path.join(PROPERTIES_DIR, "model")
#: the data-set YAMLs, shipped as package data
OWN_DATASET_YAML_DIR = os.path.join(PROPERTIES_DIR, "dataset")
#: evaluation protocols to pass with ``--config_files`` (``protocol-pop100.yaml``, ...)
PROTOCOL_YAML_DIR = os.path.join(PROPERTIES_DIR, "quick_start_config")
RECBOLE_DIR = os.path.dirname(os.path.abspath(recbole.__file__))
RECBOLE_MODEL_YAML_DIR = os.path.join(RECBOLE_DIR, "properties", "model")
