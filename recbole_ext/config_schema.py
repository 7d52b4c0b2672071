"""Typed configuration: every key's type, range or choices, read from the YAML files that hold
its default, and checked before anything is built.

The schema is not a second copy of the defaults. Each default in a YAML file carries a comment
``# (TYPE) meaning`` (RecBole's own files follow the same convention); the TYPE is read from the
files a run loads, in the order they are loaded (a later file's type for a key wins):

    TYPE   := ALT (" or " ALT)* [", optional"]          # ", optional": None is allowed too
    ALT    := BASE [LIMITS | ": " CHOICE (" | " CHOICE)*]
    BASE   := int | float | str | bool | dict | list | None | ~ | "list of " BASE
    LIMITS := CMP (", " CMP)*       CMP := (">=" | ">" | "<=" | "<") NUMBER

so ``# (int >= 1)``, ``# (float >= 0, < 1)``, ``# (str: CE | BPR)``, ``# (int >= 1 or ~)``.
RecBole's comments give types only; ``properties/config_limits.yaml`` adds limits and choices to
its keys (and corrects the few types its comments get wrong). A key whose default is ``~`` also
accepts ``None``. Rules that tie keys together (``hidden_size % n_heads``, the loss against the
negative sampling, the validation metric against ``metrics`` and ``topk``) are :func:`check_rules`.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

import recbole
import yaml

from recbole_ext._paths import PROPERTIES_DIR
from recbole_ext.data.split_methods import check_eval_split
from recbole_ext.errors import ConfigError

LIMITS_YAML = os.path.join(PROPERTIES_DIR, "config_limits.yaml")
_RECBOLE_DIR = os.path.realpath(os.path.dirname(recbole.__file__)) + os.sep
_KEY_LINE = re.compile(r"^([A-Za-z_]\w*)\s*:(?P<value>[^#]*)#\s*\((?P<spec>[^()]*)\)\s*(?P<meaning>.*)$")
_CMP = re.compile(r"^(>=|>|<=|<)\s*(-?[\d.]+(?:e-?\d+)?)$")
_BASES = {"int", "float", "str", "string", "bool", "dict", "list", "None", "~"}
_OPS = {">=": lambda v, b: v >= b, ">": lambda v, b: v > b, "<=": lambda v, b: v <= b, "<": lambda v, b: v < b}


@dataclass(frozen=True)
class Alt:
    """One alternative of a type: a base type (``element`` set for ``list of X``), its limits or
    its choices."""

    base: str
    element: Optional["Alt"] = None
    limits: Tuple[Tuple[str, float], ...] = ()
    choices: Tuple[str, ...] = ()

    def text(self) -> str:
        out = f"list of {self.element.text()}" if self.element else self.base
        if self.limits:
            out += " " + ", ".join(f"{op} {_num(b)}" for op, b in self.limits)
        if self.choices:
            out += ": " + " | ".join(self.choices)
        return out


@dataclass(frozen=True)
class KeySpec:
    """What a key accepts: any of ``alts``; ``meaning`` is its comment."""

    alts: Tuple[Alt, ...]
    meaning: str = ""

    def text(self) -> str:
        return " or ".join(a.text() for a in self.alts)


def _num(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else str(b)


def parse_alt(text: str) -> Optional[Alt]:
    """One ``ALT``; None when it is not in the grammar (the key is then not checked)."""
    text = text.strip()
    if text.startswith("list of "):
        element = parse_alt(text[len("list of ") :])
        return Alt("list", element=element) if element else None
    if ":" in text:
        base, rest = text.split(":", 1)
        choices = tuple(c.strip() for c in rest.split("|") if c.strip())
        return Alt(base.strip(), choices=choices) if base.strip() in _BASES and choices else None
    base, _, rest = text.partition(" ")
    if base not in _BASES:
        return None
    limits = []
    for part in filter(None, (p.strip() for p in rest.split(","))):
        m = _CMP.match(part)
        if not m:
            return None
        limits.append((m.group(1), float(m.group(2))))
    return Alt(base, limits=tuple(limits))


def parse_spec(text: str, meaning: str = "") -> Optional[KeySpec]:
    """A ``TYPE`` (see the module's grammar) as a KeySpec; None when it is not in the grammar."""
    text = text.strip()
    optional = text.endswith(", optional")
    if optional:
        text = text[: -len(", optional")]
    alts = [parse_alt(a) for a in text.split(" or ")]
    if not alts or any(a is None for a in alts):
        return None
    if optional:
        alts.append(Alt("None"))
    return KeySpec(tuple(alts), meaning.strip())


@functools.lru_cache(maxsize=None)
def read_yaml_specs(path: str) -> Tuple[Dict[str, Optional[KeySpec]], Tuple[str, ...]]:
    """``({key: KeySpec or None}, (keys whose default is ~))`` of one YAML file's top-level keys
    (None: the key's comment names no type of the grammar). Read once per process: every
    ``Config`` of a comparison or a sweep loads the same files. Callers do not modify the dict."""
    specs: Dict[str, Optional[KeySpec]] = {}
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    for line in text.splitlines():
        m = _KEY_LINE.match(line)
        if m:
            specs[m.group(1)] = parse_spec(m.group("spec"), m.group("meaning"))
    defaults = yaml.safe_load(text) or {}
    return specs, tuple(k for k, v in defaults.items() if v is None)


@dataclass
class Schema:
    """Every known key's spec, from the files a run loaded (later files win), with the limits of
    ``config_limits.yaml`` applied."""

    specs: Dict[str, KeySpec] = field(default_factory=dict)
    nullable: set = field(default_factory=set)

    @classmethod
    def from_files(cls, paths: Iterable[str], limits_path: str = LIMITS_YAML) -> "Schema":
        schema = cls()
        limits = _read_limits(limits_path)
        for path in paths:
            own = not os.path.realpath(path).startswith(_RECBOLE_DIR)
            specs, nullable = read_yaml_specs(path)
            schema.nullable.update(nullable)
            for key, spec in specs.items():
                if spec is None:
                    continue
                if not own and key in (limits.get("types") or {}):
                    spec = parse_spec(limits["types"][key], spec.meaning) or spec
                if key in (limits.get("limits") or {}) and (not own or not _bounded(spec)):
                    spec = _with_limits(spec, str(limits["limits"][key]))
                earlier = schema.specs.get(key)
                if earlier is not None and _bounded(earlier) and not _bounded(spec):
                    spec = earlier  # a later file's bare type (a data set's "(int)") loosens nothing
                schema.specs[key] = spec
        return schema

    def check(self, config: Dict[str, Any], keys: Optional[Iterable[str]] = None) -> None:
        """Raise ConfigError (one line: key, value, what is allowed) on the first key of ``keys``
        (default: every key with a spec) whose value in ``config`` its spec does not accept."""
        for key in keys if keys is not None else list(self.specs):
            spec = self.specs.get(key)
            if spec is None or key not in config:
                continue
            value = config[key]
            if value is None and key in self.nullable:
                continue
            if not any(accepts(alt, value) for alt in spec.alts):
                allowed = spec.text() + (" or None" if key in self.nullable else "")
                meaning = f" ({spec.meaning.rstrip('.')})" if spec.meaning else ""
                raise ConfigError(f"invalid configuration: {key}={value!r}; allowed: {allowed}{meaning}")


def _bounded(spec: KeySpec) -> bool:
    """Whether any alternative of ``spec`` (or of its list elements) has limits or choices."""

    def has(alt: Alt) -> bool:
        return bool(alt.limits or alt.choices) or (alt.element is not None and has(alt.element))

    return any(has(alt) for alt in spec.alts)


@functools.lru_cache(maxsize=None)
def _read_limits(path: str) -> dict:
    """``config_limits.yaml``, read once per process (callers do not modify it)."""
    with open(path, "r", encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _with_limits(spec: KeySpec, text: str) -> KeySpec:
    """``spec`` with the limits (``>= 1, < 5``) or choices (``: a | b``) of ``text`` put on each of
    its number (or, for choices, str) alternatives and list elements."""
    extra = parse_alt(("str" if text.startswith(":") else "float ") + text)
    if extra is None:
        raise ConfigError(f"{LIMITS_YAML}: cannot read the limits '{text}'")

    def put(alt: Alt) -> Alt:
        if alt.element is not None:
            return Alt("list", element=put(alt.element))
        if extra.choices and alt.base in ("str", "string"):
            return Alt(alt.base, choices=extra.choices)
        if extra.limits and alt.base in ("int", "float"):
            return Alt(alt.base, limits=extra.limits)
        return alt

    return KeySpec(tuple(put(a) for a in spec.alts), spec.meaning)


def accepts(alt: Alt, value: Any) -> bool:
    """Whether ``value`` is of the alternative's type and within its limits or choices."""
    base = alt.base
    if base in ("None", "~"):
        return value is None
    if base == "bool":
        return isinstance(value, bool) or (type(value) is int and value in (0, 1))
    if base == "dict":  # RecBole reads an unset map as None throughout (load_col: ~ loads every column)
        return value is None or isinstance(value, dict)
    if base == "list":
        if not isinstance(value, (list, tuple)):
            return False
        return alt.element is None or all(accepts(alt.element, v) for v in value)
    if base in ("str", "string"):
        if alt.choices:
            return isinstance(value, str) and value in alt.choices
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if base == "int" and not isinstance(value, int):
        return False
    if not math.isfinite(value):
        return False
    return all(_OPS[op](value, bound) for op, bound in alt.limits)


def check_rules(config: Dict[str, Any], model_keys: List[str], sequential: bool) -> None:
    """The rules that tie keys together; ``model_keys``: the keys of the model's own defaults."""
    hidden, heads = config.get("hidden_size"), config.get("n_heads")
    if "n_heads" in model_keys and isinstance(hidden, int) and isinstance(heads, int) and heads > 0:
        if hidden % heads:
            raise ConfigError(
                f"invalid configuration: hidden_size={hidden} is not divisible by n_heads={heads}; "
                f"allowed n_heads: divisors of {hidden}"
            )
    _check_neg_sample_args(config.get("train_neg_sample_args"))
    _check_loss_against_sampling(config, model_keys, sequential)
    _check_valid_metric(config)
    _check_eval_modes(config.get("eval_args"))
    check_eval_split(config.get("eval_args"), sequential)


_MODE = re.compile(r"^(full|labeled|(uni|pop)[1-9]\d*)$")
_NEG_KEYS = {
    "distribution": ("uniform", "popularity", "none"),
    "sample_num": None,
    "alpha": None,
    "dynamic": None,
    "candidate_num": None,
}


def _check_eval_modes(eval_args: Any) -> None:
    """Every evaluation mode is ``full``, ``labeled``, ``uniN`` or ``popN`` (N >= 1)."""
    mode = eval_args.get("mode") if isinstance(eval_args, dict) else None
    modes = mode if isinstance(mode, dict) else {"mode": mode}
    for phase, value in modes.items():
        if value is not None and not (isinstance(value, str) and _MODE.match(value)):
            raise ConfigError(
                f"invalid configuration: eval_args {phase} {value!r}; allowed: full, labeled, uniN or popN "
                "(N >= 1 sampled negatives, e.g. pop100), or {valid: ..., test: ...} of them"
            )


def _check_neg_sample_args(neg: Any) -> None:
    """``train_neg_sample_args``: known keys, a known distribution, ``sample_num >= 1``."""
    if not isinstance(neg, dict):
        return
    allowed = "{distribution: uniform | popularity | none, sample_num: int >= 1, alpha, dynamic, candidate_num}"
    unknown = sorted(set(neg) - set(_NEG_KEYS))
    if unknown:
        raise ConfigError(f"invalid configuration: train_neg_sample_args has no key {unknown[0]!r}; allowed: {allowed}")
    dist, num = neg.get("distribution", "uniform"), neg.get("sample_num", 1)
    if dist not in _NEG_KEYS["distribution"] or (
        dist != "none" and not (isinstance(num, int) and not isinstance(num, bool) and num >= 1)
    ):
        raise ConfigError(f"invalid configuration: train_neg_sample_args={neg}; allowed: {allowed}")


def _check_loss_against_sampling(config: Dict[str, Any], model_keys: List[str], sequential: bool) -> None:
    neg = config.get("train_neg_sample_args")
    sampling = isinstance(neg, dict) and neg.get("distribution") not in (None, "none", "None")
    loss = config.get("loss_type")
    if loss == "CE" and sampling and sequential:
        raise ConfigError(
            "loss_type CE scores every item and cannot be combined with negative sampling "
            f"(train_neg_sample_args={neg}); set train_neg_sample_args: ~ or use loss_type: BPR"
        )
    if loss == "BPR" and not sampling and sequential and "loss_type" in model_keys:
        raise ConfigError(
            "invalid configuration: loss_type BPR needs one sampled negative per positive, but "
            "train_neg_sample_args is off; set train_neg_sample_args: {distribution: uniform, "
            "sample_num: 1} or use loss_type: CE"
        )


def _check_valid_metric(config: Dict[str, Any]) -> None:
    metric, metrics, topk = config.get("valid_metric"), config.get("metrics"), config.get("topk")
    if not isinstance(metric, str):
        return
    names = [metrics] if isinstance(metrics, str) else list(metrics or [])
    ks = [topk] if isinstance(topk, int) else list(topk or [])
    name, _, k = metric.partition("@")
    known = {str(m).lower() for m in names}
    if name.lower() not in known or (k and (not k.isdigit() or int(k) not in ks)):
        raise ConfigError(
            f"invalid configuration: valid_metric={metric!r} is not computed; allowed: one of "
            f"metrics {names} (with @k for k in topk {ks} for ranking metrics)"
        )
