"""``recbole-ext data list | fetch NAME | stats NAME`` (see :mod:`recbole_ext.cli`)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from recbole_ext.data.fetch import fetch_dataset
from recbole_ext.data.locate import locate_dataset
from recbole_ext.data.sources import registry
from recbole_ext.data.stats import dataset_stats
from recbole_ext.errors import DatasetNotFoundError


def list(args: argparse.Namespace) -> int:  # noqa: A001 - the subcommand's name
    """One line a registry entry: name, on disk or not, format, source."""
    for name, source in sorted(registry(args.data_sources).items()):
        try:
            where = "on disk: " + locate_dataset(name, args.data_path)
        except DatasetNotFoundError:
            where = "fetches itself" if source.fetchable else "by hand"
        print(f"{name:20} {where:60} {source.format or '-':16} {source.url or source.terms}")
    return 0


def fetch(args: argparse.Namespace) -> int:
    """Fetch and convert without training."""
    folder = fetch_dataset(args.name, args.data_path, args.data_sources, progress=sys.stderr.isatty())
    print(f"{args.name}: {folder}")
    return 0


def stats(args: argparse.Namespace) -> int:
    """Figures of the data set as it is on disk (fetching it first if needed)."""
    try:
        folder = locate_dataset(args.name, args.data_path)
    except DatasetNotFoundError:
        if args.name not in registry(args.data_sources):
            raise
        folder = fetch_dataset(args.name, args.data_path, args.data_sources, progress=sys.stderr.isatty())
    figures = dataset_stats(folder, args.name)
    print(json.dumps({"name": args.name, "folder": os.path.abspath(folder), **figures}, indent=1))
    return 0
