"""The package's shape: imports flow one way (leaves at the bottom, the registry the only place
classes are composed, the run pipeline the only place a run is assembled, application code on
top), ``data/`` holds data, a ``Config`` has no side effects, ``import recbole_ext`` stays light,
and no module or function grows past the size a reader can hold."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
from typing import Dict, List, Set

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "recbole_ext")

#: the bottom: imports nothing of ours; the leaves may raise its errors
BOTTOM = "recbole_ext.errors"
#: modules that import nothing of ours but the bottom
LEAVES = {
    "recbole_ext.errors",
    "recbole_ext.fileio",
    "recbole_ext._paths",
    "recbole_ext._requirements",
    "recbole_ext.logger",
    "recbole_ext.compat",
    "recbole_ext.compat.numpy",
    "recbole_ext.distributed",
    "recbole_ext.memory",
}
#: application code: nothing below imports it (the package's own ``__init__`` re-exports lazily)
APPLICATION = (
    "recbole_ext.cli",
    "recbole_ext.__main__",
    "recbole_ext.compare",
    "recbole_ext.report",
    "recbole_ext.serving",
    "recbole_ext.quick_start",
    "recbole_ext.tune",
    "recbole_ext.reproduce",
)
#: the run pipeline: above the registry, below the application
PIPELINE = "recbole_ext.pipeline"
#: the data layer imports nothing of ours but the leaves and itself
DATA = "recbole_ext.data"
#: the results package sits under the comparison, the report command and reproduce's tables only
RESULTS = "recbole_ext.results"
#: commands other code uses through their package's public API only (what its ``__init__`` exports)
SEALED = ("recbole_ext.compare",)
MAX_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules() -> Dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


def _imports(module: str, path: str, known: Set[str]) -> Set[str]:
    """Our modules that ``module`` imports anywhere in its file (inside functions too)."""
    out = set()
    is_package = path.endswith("__init__.py")
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        out |= {n for n in names if n in known and n != module}
    return out


def _graph() -> Dict[str, Set[str]]:
    mods = _modules()
    return {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def _cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle, or []."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(m: str) -> List[str]:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        state[m] = 2
        stack.pop()
        return []

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return []


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_no_import_cycle():
    assert _cycle(_graph()) == []


def test_the_cycle_check_can_fail():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]


def test_leaves_import_nothing_of_ours():
    graph = _graph()
    assert not graph.get(BOTTOM)
    assert {m: sorted(graph[m] - {BOTTOM}) for m in LEAVES if graph.get(m, set()) - {BOTTOM}} == {}
    assert LEAVES <= set(graph)


def test_nothing_below_imports_application_code():
    graph = _graph()
    wrong = {
        m: sorted(n for n in deps if _within(n, APPLICATION) and not _within(m, APPLICATION))
        for m, deps in graph.items()
        if m != "recbole_ext"
    }
    assert {m: d for m, d in wrong.items() if d} == {}
    users = {m for m, deps in graph.items() if any(_within(n, [RESULTS]) for n in deps) and not _within(m, [RESULTS])}
    assert {m for m in users if not _within(m, ["recbole_ext.compare"])} <= {
        "recbole_ext.report",
        "recbole_ext.reproduce.tables",
    }


def internal_imports(graph: Dict[str, Set[str]], sealed=SEALED) -> Dict[str, List[str]]:
    """``{module: [internals]}``: the modules of a sealed package (anything under it but the
    package itself) that a module outside it imports."""
    wrong = {}
    for m, deps in graph.items():
        for package in sealed:
            inside = sorted(n for n in deps if n.startswith(package + ".") and not _within(m, [package]))
            if inside:
                wrong.setdefault(m, []).extend(inside)
    return wrong


def test_only_compare_imports_its_internals():
    """``tune``, ``reproduce`` and everything else use ``recbole_ext.compare``'s public API (its
    ``__init__``), never ``compare.runner``, ``compare.parallel`` or another of its modules."""
    assert internal_imports(_graph()) == {}


def test_the_internals_check_can_fail(tmp_path):
    """A module outside ``compare/`` that reaches a compare module (even inside a function) is
    named; the package itself and compare's own modules are not."""
    source = (
        "from recbole_ext import compare\n"
        "from recbole_ext.compare import Comparison\n"
        "def f():\n"
        "    from recbole_ext.compare.runner import preflight\n"
        "    import recbole_ext.compare.parallel\n"
        "    return compare, Comparison, preflight\n"
    )
    path = tmp_path / "tune.py"
    path.write_text(source)
    known = {"recbole_ext.compare", "recbole_ext.compare.runner", "recbole_ext.compare.parallel", "recbole_ext.tune"}
    graph = {
        "recbole_ext.tune": _imports("recbole_ext.tune", str(path), known),
        "recbole_ext.compare.parallel": {"recbole_ext.compare.runner"},
        "recbole_ext.reproduce": {"recbole_ext.compare"},
    }
    assert internal_imports(graph) == {
        "recbole_ext.tune": ["recbole_ext.compare.parallel", "recbole_ext.compare.runner"]
    }


def test_registry_is_where_mixins_are_composed():
    """``type(name, bases, ...)`` that builds classes appears in the registry only."""
    composing = set()
    for m, path in _modules().items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "type" and len(node.args) == 3:
                composing.add(m)
    assert composing == {"recbole_ext.registry"}


def test_import_recbole_ext_stays_light():
    code = (
        "import sys, recbole_ext; heavy = ('recbole_ext.compare', 'recbole_ext.results', 'recbole_ext.serving', "
        "'recbole_ext.model', 'recbole_ext.config', 'torch', 'recbole.', 'matplotlib'); "
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_modules_and_functions_stay_small():
    long_files, long_functions = [], []
    for m, path in _modules().items():
        text = open(path, encoding="utf-8").read()
        if text.count("\n") > MAX_LINES:
            long_files.append(m)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long_functions.append(f"{m}.{node.name}")
    assert long_files == [] and long_functions == []


# ------------------------------------------------------------------ where a model's blocks live
MODEL_YAML_DIR = os.path.join(PACKAGE, "properties", "model")


def blocks_in_model_file(source: str, models: Set[str]) -> List[str]:
    """The classes a model file defines that are neither one of our models (a YAML under
    ``properties/model/``) nor a recommender base class (``*Recommender``): building blocks,
    which live in ``model/<model>_layers.py`` or a shared module (docs/contributing.md)."""
    return [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name not in models and not node.name.endswith("Recommender")
    ]


def test_model_files_hold_models_and_their_blocks_live_beside():
    models = {f[: -len(".yaml")] for f in os.listdir(MODEL_YAML_DIR) if f.endswith(".yaml")}
    found = {}
    for m, path in _modules().items():
        if _within(m, ["recbole_ext.model"]) and m.split(".")[-2].endswith("_recommender"):
            blocks = blocks_in_model_file(open(path, encoding="utf-8").read(), models)
            if blocks:
                found[m] = blocks
    assert found == {}


def test_the_block_check_can_fail():
    source = (
        "class Mixer(nn.Module):\n    pass\n\n"
        "class BaseRecommender:\n    pass\n\n"
        "class Mine(BaseRecommender):\n    pass\n"
    )
    assert blocks_in_model_file(source, {"Mine"}) == ["Mixer"]


# ------------------------------------------------------------------ one place assembles a run
#: what builds a data set, its loaders or a trainer from a config (RecBole's names and ours)
BUILDERS = {"create_dataset", "data_preparation", "make_loaders", "build_split", "create_samplers"}
#: registry lookups whose result, called, builds one
CLASS_LOOKUPS = {"get_trainer", "get_dataset_class", "get_dataloader"}


def _callee(node: ast.Call) -> str:
    func = node.func
    return getattr(func, "id", None) or getattr(func, "attr", None) or ""


def run_assembly_calls(source: str) -> List[str]:
    """The calls in ``source`` that build a data set, loaders or a trainer: a builder function, a
    class the registry looked up (``get_trainer(...)(config, model)``), or a class named
    ``*Trainer``, ``*Dataset`` or ``*DataLoader`` instantiated."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        looked_up = isinstance(node.func, ast.Call) and _callee(node.func) in CLASS_LOOKUPS
        built = name.endswith(("Trainer", "Dataset", "DataLoader")) and name[:1].isupper()
        if name in BUILDERS or looked_up or built:
            found.append(f"{name or _callee(node.func)}() at line {node.lineno}")
    return found


def _places() -> Dict[str, str]:
    """Every module of the package, and the scripts and the test fixture that run models."""
    places = dict(_modules())
    for folder in ("benchmarks", "tools"):
        for f in sorted(os.listdir(os.path.join(ROOT, folder))):
            if f.endswith(".py"):
                places[f"{folder}/{f}"] = os.path.join(ROOT, folder, f)
    places["tests/conftest.py"] = os.path.join(ROOT, "tests", "conftest.py")
    return places


def test_only_the_pipeline_assembles_a_run():
    """Config -> data set -> loaders -> trainer is built in the pipeline alone: the commands,
    serving, the benchmarks, the GPU suite and the test fixture call its steps."""
    outside = {}
    for name, path in _places().items():
        if _within(name, [PIPELINE]) or name == "recbole_ext.registry":
            continue
        calls = run_assembly_calls(open(path, encoding="utf-8").read())
        if calls:
            outside[name] = calls
    assert outside == {}
    inside = {m for m, p in _modules().items() if run_assembly_calls(open(p, encoding="utf-8").read())}
    assert inside == {"recbole_ext.pipeline.run", "recbole_ext.pipeline.loaders"}


def test_the_assembly_check_can_fail():
    source = (
        "from recbole_ext.registry import get_trainer\n"
        "def f(config, model, dataset):\n"
        "    t = get_trainer(config['MODEL_TYPE'], config['model'])(config, model)\n"
        "    d = create_dataset(config)\n"
        "    return SequentialDataset(config), t, d\n"
    )
    assert run_assembly_calls(source) == [
        "get_trainer() at line 3",
        "create_dataset() at line 4",
        "SequentialDataset() at line 5",
    ]


def test_data_imports_only_the_leaves_and_itself():
    """``data/`` holds data: it imports neither the registry, nor the trainer, nor the pipeline,
    nor the command line (nor anything else of ours above the leaves)."""
    graph = _graph()
    wrong = {
        m: sorted(n for n in deps if not _within(n, [DATA]) and n not in LEAVES)
        for m, deps in graph.items()
        if _within(m, [DATA])
    }
    assert {m: d for m, d in wrong.items() if d} == {}


def test_the_data_search_path_holds_only_what_a_user_has(tmp_path, monkeypatch):
    """``data_path``, ``datasets/``, ``$RECBOLE_EXT_DATA`` and RecBole's bundled ml-100k; a
    ``../shared/datasets`` beside the current folder is not looked in unless the user names it."""
    from recbole_ext.data.locate import candidate_dirs, locate_dataset
    from recbole_ext.errors import DatasetNotFoundError

    work, shared = tmp_path / "work", tmp_path / "shared" / "datasets" / "toy"
    work.mkdir()
    shared.mkdir(parents=True)
    (shared / "toy.inter").write_text("user_id:token\titem_id:token\n1\t1\n")
    monkeypatch.chdir(work)
    monkeypatch.delenv("RECBOLE_EXT_DATA", raising=False)
    assert not any("shared" in d for d in candidate_dirs("toy", None))
    with pytest.raises(DatasetNotFoundError):
        locate_dataset("toy", None)
    monkeypatch.setenv("RECBOLE_EXT_DATA", str(shared.parent))
    assert locate_dataset("toy", None) == str(shared)


# ------------------------------------------------------------------ a Config has no side effects
class _Cut(OSError):
    pass


@pytest.fixture
def network_and_group_cut(monkeypatch):
    """Every outgoing connection and every process group refused (and recorded)."""
    import torch.distributed as dist

    tried: List[str] = []

    def refuse(what):
        def _refuse(*args, **kwargs):
            tried.append(what)
            raise _Cut(f"{what}: cut by the test")

        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("resolve"))
    monkeypatch.setattr(dist, "init_process_group", refuse("process group"))
    monkeypatch.setattr(dist, "TCPStore", refuse("process group"))  # the group's rendezvous store
    assert not dist.is_initialized()
    return tried


def test_building_a_config_opens_no_connection_and_no_process_group(network_and_group_cut, tmp_path, monkeypatch):
    """A registry data set that is not on disk, a torchrun rank and RecBole's spawn keys: the
    Config is built, nothing is fetched or written, no process group is joined."""
    import torch.distributed as dist

    from recbole_ext.config import Config

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    fetchable = Config("GRU4Rec", "ml-1m", config_dict={"data_path": str(data)})
    assert fetchable["dataset"] == "ml-1m" and os.listdir(data) == [] and os.listdir(tmp_path) == ["data"]
    spawned = Config("SASRec", "ml-100k", config_dict={"local_rank": 0, "world_size": 2, "nproc": 2})
    for key, value in {
        "LOCAL_RANK": "0",
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
    }.items():
        monkeypatch.setenv(key, value)
    torchrun = Config("SASRec", "ml-100k")
    assert spawned["single_spec"] is False and torchrun["single_spec"] is False and torchrun["world_size"] == 2
    assert network_and_group_cut == [] and not dist.is_initialized()


def test_the_cut_catches_what_the_pipeline_steps_do(network_and_group_cut, tmp_path, monkeypatch):
    """The same guards see the steps that do fetch and join (so the test above can fail)."""
    from recbole_ext.errors import DataFetchError
    from recbole_ext.pipeline import Run

    monkeypatch.chdir(tmp_path)
    run = Run.resolve("GRU4Rec", "ml-1m", config_dict={"data_path": str(tmp_path / "data")})
    with pytest.raises(DataFetchError):
        run.locate_data()
    assert "resolve" in network_and_group_cut or "connect" in network_and_group_cut
    rank = Run.resolve("SASRec", "ml-100k", config_dict={"local_rank": 0, "world_size": 2, "nproc": 2})
    with pytest.raises(_Cut):
        rank.attach_device()
    assert network_and_group_cut[-1] == "process group"
