"""Registry data sets fetched from a publisher: a local HTTP server on 127.0.0.1 stands in for
GroupLens; downloads are verified, converted, cached, and every failure is one line that leaves
the data folder as it was."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import pathlib
import subprocess
import sys
import threading
import zipfile

import pytest
from test_convert import AMAZON_ITEM, AMAZON_META, read, write_amazon

from recbole_ext.data.convert import convert
from recbole_ext.data.fetch import fetch_dataset
from recbole_ext.errors import DataFetchError, DatasetNotFoundError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "run_recbole_ext.py")


def ml1m_zip() -> bytes:
    """A small zip in MovieLens-1M's layout (``::`` separators, latin-1 titles) whose ratings
    follow a learnable next-item rule."""
    ratings, t = [], 978300000
    for u in range(1, 41):
        item = u % 30 + 1
        for _ in range(12):
            ratings.append(f"{u}::{item}::{(item % 5) + 1}::{t}")
            item, t = item % 30 + 1, t + 1
    users = [f"{u}::{'MF'[u % 2]}::{[1, 18, 25][u % 3]}::{u % 21}::{10000 + u}" for u in range(1, 41)]
    movies = [f"{i}::Caf\u00e9 Film {i} (19{60 + i})::Drama|Comedy" for i in range(1, 31)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, lines in (("ratings.dat", ratings), ("users.dat", users), ("movies.dat", movies)):
            z.writestr(f"ml-tiny/{name}", ("\n".join(lines) + "\n").encode("latin-1"))
    return buf.getvalue()


class Publisher(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` by name; ``/404/...`` and ``/500/...`` answer with that status;
    ``/cut/NAME`` announces the whole file and closes after half of it."""

    files: dict = {}
    hits: dict = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        Publisher.hits[self.path] = Publisher.hits.get(self.path, 0) + 1
        parts = self.path.strip("/").split("/")
        if parts[0] in ("404", "500"):
            self.send_error(int(parts[0]))
            return
        body = self.files.get(parts[-1])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if parts[0] == "cut" else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def publisher():
    Publisher.files = {"ml-tiny.zip": ml1m_zip()}
    Publisher.hits = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Publisher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def sources(tmp_path, url: str, hash_: str = None) -> str:
    """A user registry file with one MovieLens-1M-shaped entry at ``url``."""
    digest = hash_ or "md5:" + hashlib.md5(Publisher.files["ml-tiny.zip"]).hexdigest()
    path = tmp_path / "sources.yaml"
    path.write_text(f"ml-tiny:\n  url: {url}\n  hash: '{digest}'\n  format: movielens-1m\n  terms: test data\n")
    return str(path)


def run(args, cwd):
    return subprocess.run(
        [sys.executable, RUNNER, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )


@pytest.mark.slow
def test_fetch_convert_train_then_run_offline(publisher, tmp_path):
    server, base = publisher
    data = tmp_path / "data"
    args = [
        "--model=GRU4Rec",
        "--dataset=ml-tiny",
        f"--data_path={data}",
        f"--data_sources={sources(tmp_path, base + '/ml-tiny.zip')}",
        "--epochs=1",
        "--embedding_size=16",
        "--hidden_size=16",
        "--MAX_ITEM_LIST_LENGTH=10",
        "--show_progress=False",
        "--no-save",
        "--load_col={'inter': ['user_id', 'item_id', 'rating', 'timestamp']}",
    ]
    first = run(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "test result: {'recall@10'" in first.stdout
    meta = json.loads((data / "ml-tiny" / "ml-tiny.meta.json").read_text())
    assert meta["counts"] == {"interactions": 480, "users_with_features": 40, "items_with_features": 30}
    assert meta["published_hash"].startswith("md5:") and len(meta["sha256"]) == 64
    server.shutdown()  # the publisher is gone: the second run must not need it
    server.server_close()
    second = run(args, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]  # same split, same metrics


def test_converted_movielens_has_recboles_ml1m_fields(publisher, tmp_path):
    _, base = publisher
    folder = fetch_dataset("ml-tiny", str(tmp_path / "data"), sources(tmp_path, base + "/ml-tiny.zip"), retries=0)
    read = lambda suffix: (tmp_path / "data" / "ml-tiny" / f"ml-tiny.{suffix}").read_text(encoding="utf-8").splitlines()  # noqa: E731
    assert read("inter")[:2] == ["user_id:token\titem_id:token\trating:float\ttimestamp:float", "1\t2\t3\t978300000"]
    assert read("user")[:2] == [
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
        "1\t18\tF\t1\t10001",
    ]
    assert read("item")[:2] == [
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq",
        "1\tCaf\u00e9 Film 1\t1961\tDrama Comedy",
    ]
    assert folder == str(tmp_path / "data" / "ml-tiny")


@pytest.mark.parametrize("case", ["checksum", "404", "500", "refused", "cut"])
def test_failures_are_one_line_and_leave_the_folder_as_it_was(publisher, tmp_path, case):
    _, base = publisher
    url = {
        "checksum": base + "/ml-tiny.zip",
        "404": base + "/404/ml-tiny.zip",
        "500": base + "/500/ml-tiny.zip",
        "refused": "http://127.0.0.1:9/ml-tiny.zip",
        "cut": base + "/cut/ml-tiny.zip",
    }[case]
    registry_file = sources(tmp_path, url, "md5:" + "0" * 32 if case == "checksum" else None)
    data = tmp_path / "data"
    data.mkdir()
    (data / "other").mkdir()
    before = sorted(os.walk(data))
    with pytest.raises(DataFetchError) as err:
        fetch_dataset("ml-tiny", str(data), registry_file, retries=0)
    message = str(err.value)
    assert url in message and "\n" not in message and "yourself" in message
    assert sorted(os.walk(data)) == before


@pytest.mark.slow
def test_cli_failure_is_exit_2_without_traceback(publisher, tmp_path):
    _, base = publisher
    proc = run(
        [
            "data",
            "fetch",
            "ml-tiny",
            f"--data_path={tmp_path / 'data'}",
            f"--data_sources={sources(tmp_path, base + '/404/ml-tiny.zip')}",
        ],
        tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("recbole_ext: error: ")]
    assert len(errors) == 1 and "HTTP 404" in errors[0], proc.stderr
    assert not (tmp_path / "data").exists()


def test_download_never_says_so(tmp_path):
    from recbole_ext.pipeline import Run

    path = sources(tmp_path, "http://127.0.0.1:9/ml-tiny.zip", "md5:" + "0" * 32)
    run = Run.resolve(
        "GRU4Rec",
        "ml-tiny",
        config_dict={"data_path": str(tmp_path / "data"), "download": "never", "data_sources": path},
    )
    with pytest.raises(DatasetNotFoundError, match="download is 'never'"):
        run.locate_data()
    assert not (tmp_path / "data").exists()


def test_amazon_k_core_and_order(tmp_path):
    """k = 2 by hand: u4, i3, i4, i5 go in the first round, u3 (left with one item) in the second;
    each user's reviews in time order, same-second ones in file order, users by first appearance."""
    reviews = [
        ("u1", "i1", 3),
        ("u1", "i2", 1),
        ("u1", "i3", 2),
        ("u2", "i1", 4),
        ("u2", "i2", 4),
        ("u3", "i1", 6),
        ("u3", "i4", 7),
        ("u4", "i5", 1),
    ]
    raw = tmp_path / "raw"
    raw.mkdir()
    with gzip.open(raw / "reviews.json.gz", "wt", encoding="utf-8") as f:
        for u, i, t in reviews:
            f.write(json.dumps({"reviewerID": u, "asin": i, "overall": 5.0, "unixReviewTime": t}) + "\n")
    out = tmp_path / "out"
    assert convert("amazon-reviews", str(raw), "az", str(out), k_core=2).counts == {"interactions": 4}
    rows = [line.split("\t") for line in (out / "az" / "az.inter").read_text().splitlines()[1:]]
    assert [(u, i, t) for u, i, _, t in rows] == [
        ("u1", "i2", "1"),
        ("u1", "i1", "3"),
        ("u2", "i1", "4"),
        ("u2", "i2", "4"),
    ]


@pytest.mark.slow
def test_data_commands_list_fetch_and_stats(publisher, tmp_path):
    _, base = publisher
    registry_file = sources(tmp_path, base + "/ml-tiny.zip")
    common = [f"--data_path={tmp_path / 'data'}", f"--data_sources={registry_file}"]
    listed = run(["data", "list", *common], tmp_path)
    assert listed.returncode == 0 and any(
        line.startswith("ml-tiny") and "downloaded on first use" in line for line in listed.stdout.splitlines()
    ), listed.stdout
    assert run(["data", "fetch", "ml-tiny", *common], tmp_path).returncode == 0
    stats = run(["data", "stats", "ml-tiny", *common], tmp_path)
    figures = json.loads(stats.stdout)
    assert (figures["users"], figures["items"], figures["interactions"]) == (40, 30, 480)
    assert figures["mean_sequence_length"] == 12 and figures["max_sequence_length"] == 12
    assert figures["sparsity"] == round(1 - 480 / (40 * 30), 6)
    assert set(figures["sha256"]) == {"ml-tiny.inter", "ml-tiny.user", "ml-tiny.item"}
    again = run(["data", "list", *common], tmp_path)
    assert any(line.startswith("ml-tiny") and "on disk" in line for line in again.stdout.splitlines())


@pytest.mark.parametrize(
    "case,needle,requests",
    [
        ("404", "HTTP 404", 1),
        ("500", "HTTP 500 (tried 3 times)", 3),
        ("refused", "connection refused", 0),
        ("cut", "connection closed after", 3),
    ],
)
def test_a_failed_download_is_one_line_retried_only_where_it_helps(publisher, tmp_path, capfd, case, needle, requests):
    """No pooch lines before ours; a refused connection or a 404 is not retried, a 5xx answer and
    a cut transfer are; a file cut short is never kept, even without a published hash."""
    _, base = publisher
    url = {
        "404": base + "/404/ml-tiny.zip",
        "500": base + "/500/ml-tiny.zip",
        "refused": "http://127.0.0.1:9/ml-tiny.zip",
        "cut": base + "/cut/ml-tiny.zip",
    }[case]
    path = tmp_path / "sources.yaml"
    path.write_text(f"ml-tiny:\n  url: {url}\n  hash: ~\n  format: movielens-1m\n  terms: test data\n")
    from recbole_ext.cli import main

    capfd.readouterr()
    assert main(["data", "fetch", "ml-tiny", f"--data_path={tmp_path / 'data'}", f"--data_sources={path}"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbole_ext: error:") and needle in err[0], err
    assert sum(Publisher.hits.values()) == requests
    assert not (tmp_path / "data").exists()


def test_a_damaged_cached_file_is_removed_not_reused(publisher, tmp_path):
    _, base = publisher
    registry_file = tmp_path / "sources.yaml"
    registry_file.write_text(f"ml-tiny:\n  url: {base}/ml-tiny.zip\n  hash: ~\n  format: movielens-1m\n  terms: t\n")
    registry_file = str(registry_file)
    cache = tmp_path / "data" / ".downloads"
    cache.mkdir(parents=True)
    (cache / "ml-tiny.zip").write_bytes(Publisher.files["ml-tiny.zip"][:500])  # a cut copy of an earlier run
    with pytest.raises(DataFetchError, match="incomplete or damaged"):
        fetch_dataset("ml-tiny", str(tmp_path / "data"), registry_file, retries=0)
    assert not (cache / "ml-tiny.zip").exists()
    assert fetch_dataset("ml-tiny", str(tmp_path / "data"), registry_file, retries=0)  # fetched anew


def test_a_failed_conversion_removes_what_it_fetched_and_a_fetch_says_one_line(publisher, tmp_path, capfd):
    """A zip that is whole but not what its format needs: one line, and the download goes too
    (the next run fetches anew, not the same wrong file). A good fetch prints one line."""
    _, base = publisher
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-tiny/readme.txt", "no ratings here")
    Publisher.files["wrong.zip"] = buf.getvalue()
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(f"ml-tiny:\n  url: {base}/wrong.zip\n  hash: ~\n  format: movielens-1m\n  terms: t\n")
    with pytest.raises(DataFetchError, match="cannot convert the downloaded file"):
        fetch_dataset("ml-tiny", str(tmp_path / "data"), str(wrong), retries=0)
    assert not (tmp_path / "data").exists()
    capfd.readouterr()
    fetch_dataset("ml-tiny", str(tmp_path / "data"), sources(tmp_path, base + "/ml-tiny.zip"), retries=0)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recbole_ext: fetched ") and "ml-tiny.zip" in err[0], err


def test_a_file_url_is_copied_and_a_missing_one_is_one_line(tmp_path):
    local = tmp_path / "ml-tiny.zip"
    local.write_bytes(ml1m_zip())
    Publisher.files = {"ml-tiny.zip": local.read_bytes()}
    folder = fetch_dataset("ml-tiny", str(tmp_path / "data"), sources(tmp_path, local.as_uri()), retries=0)
    assert os.path.isfile(os.path.join(folder, "ml-tiny.inter"))
    missing = sources(tmp_path, (tmp_path / "gone.zip").as_uri())
    with pytest.raises(DataFetchError, match="no file at") as err:
        fetch_dataset("ml-tiny", str(tmp_path / "other"), missing, retries=0)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- Amazon reviews + metadata
def amazon_sources(tmp_path, reviews: str, meta: str = None, name: str = "amazon.yaml") -> str:
    """A user registry file with one Amazon entry (2-core) at the file:// URLs of ``reviews`` and
    ``meta`` (no ``meta_url`` without it)."""
    path = tmp_path / name
    meta_key = f"  meta_url: {pathlib.Path(meta).as_uri()}\n  meta_hash: ~\n" if meta else ""
    path.write_text(
        f"az:\n  url: {pathlib.Path(reviews).as_uri()}\n  hash: ~\n{meta_key}"
        "  format: amazon-reviews\n  k_core: 2\n  terms: test data\n"
    )
    return str(path)


def test_amazon_fetch_joins_the_metadata_into_the_item_file(tmp_path, capfd):
    reviews, meta = write_amazon(str(tmp_path / "publisher"))
    capfd.readouterr()
    folder = fetch_dataset("az", str(tmp_path / "data"), amazon_sources(tmp_path, reviews, meta), retries=0)
    assert read(os.path.join(folder, "az.item")) == AMAZON_ITEM  # i5 (outside the 2-core) and zz dropped
    assert len(read(os.path.join(folder, "az.inter"))) == 8
    recorded = json.loads((tmp_path / "data" / "az" / "az.meta.json").read_text())
    assert recorded["counts"] == {"interactions": 7, "items_with_features": 3}
    assert recorded["meta_url"] == pathlib.Path(meta).as_uri() and len(recorded["meta_sha256"]) == 64
    assert sorted(recorded["atomic_files_sha256"]) == ["az.inter", "az.item"]
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "reviews_Tiny_5" in err[0] and "meta_Tiny" in err[1], err
    assert sorted(os.listdir(tmp_path / "data" / ".downloads")) == ["meta_Tiny.json.gz", "reviews_Tiny_5.json.gz"]


def test_a_malformed_metadata_line_fails_the_fetch_in_one_line(tmp_path):
    reviews, meta = write_amazon(str(tmp_path / "publisher"), meta_lines=[AMAZON_META[0], "{'asin': 'i1', 'tit"])
    data = tmp_path / "data"
    with pytest.raises(DataFetchError) as err:
        fetch_dataset("az", str(data), amazon_sources(tmp_path, reviews, meta), retries=0)
    message = str(err.value)
    assert message.startswith(pathlib.Path(meta).as_uri() + ": cannot convert the downloaded file: ")
    assert "meta_Tiny.json.gz, line 2: not a metadata record" in message and "\n" not in message
    assert not data.exists()  # both downloads went with it


def test_a_later_fetch_adds_the_item_file_to_a_data_set_fetched_without_it(tmp_path):
    """A source without meta_url converts as before (no .item, no meta keys); once it has one,
    ``data fetch`` joins the products to the .inter on disk, which stays as it was. A copy placed
    by hand (no metadata of ours) is left alone."""
    reviews, meta = write_amazon(str(tmp_path / "publisher"))
    data = str(tmp_path / "data")
    folder = fetch_dataset("az", data, amazon_sources(tmp_path, reviews, name="old.yaml"), retries=0)
    assert sorted(os.listdir(folder)) == ["az.inter", "az.meta.json"]
    assert not any(k.startswith("meta_") for k in json.loads(open(os.path.join(folder, "az.meta.json")).read()))
    inter = open(os.path.join(folder, "az.inter")).read()
    fetch_dataset("az", data, amazon_sources(tmp_path, reviews, meta), retries=0)
    assert (
        read(os.path.join(folder, "az.item")) == AMAZON_ITEM and open(os.path.join(folder, "az.inter")).read() == inter
    )
    recorded = json.loads(open(os.path.join(folder, "az.meta.json")).read())
    assert recorded["counts"] == {"interactions": 7, "items_with_features": 3} and "meta_sha256" in recorded
    assert sorted(recorded["atomic_files_sha256"]) == ["az.inter", "az.item"]
    by_hand = tmp_path / "hand" / "az"
    by_hand.mkdir(parents=True)
    (by_hand / "az.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n")
    fetch_dataset("az", str(tmp_path / "hand"), amazon_sources(tmp_path, reviews, meta), retries=0)
    assert sorted(os.listdir(tmp_path / "hand")) == ["az"] and os.listdir(by_hand) == ["az.inter"]


def test_meta_url_is_for_amazon_reviews_only(tmp_path):
    from recbole_ext.data.sources import registry
    from recbole_ext.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text("x:\n  url: http://h/x.zip\n  hash: ~\n  format: movielens-1m\n  meta_url: http://h/m.gz\n")
    with pytest.raises(ConfigError, match="meta_url is read by format amazon-reviews only"):
        registry(str(path))


def test_stats_held_out_items_ties_and_popularity(tmp_path):
    """``data stats``' held-out figures: the test item is each user's last by time, equal times
    keep file order (and count as tied), popularity is interactions in the file."""
    from recbole_ext.data.stats import dataset_stats

    folder = tmp_path / "toy"
    folder.mkdir()
    rows = ["a\tx\t1", "a\tz\t2", "a\ty\t2", "b\tx\t5", "b\ty\t3", "c\tx\t1"]
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")
    held = dataset_stats(str(folder), "toy")["held_out"]
    # test items: a -> y (tied with z, file order), b -> x (time 5), c -> x
    assert held["test_time_tied_share"] == round(1 / 3, 4)
    assert held["test_item_popularity_mean"] == round((2 + 3 + 3) / 3, 2)
    assert held["valid_item_popularity_mean"] == round((1 + 2) / 2, 2)  # a -> z, b -> y
    import hashlib

    assert held["test_pairs_sha256"] == hashlib.sha256(b"a\ty\nb\tx\nc\tx").hexdigest()


def test_stats_held_out_items_compare_times_as_a_run_does(tmp_path):
    """Times near 1e9 seconds less than 64 s apart are one float32 value, as RecBole keeps a float
    column: ``data stats`` holds out what a run holds out (file order decides), not the float64
    order of the text, and agrees with the data card's leave-one-out figures."""
    import numpy as np

    from recbole_ext.data.cards import sequences
    from recbole_ext.data.stats import dataset_stats, read_interactions

    folder = tmp_path / "toy"
    folder.mkdir()
    # user a: z at 1e9+10 comes before y at 1e9+3 in the file; in float32 both are 1e9
    rows = ["a\tx\t999999000", "a\tz\t1000000010", "a\ty\t1000000003", "b\tx\t5", "b\ty\t9"]
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")
    assert float(np.float32(1000000010)) == float(np.float32(1000000003))
    held = dataset_stats(str(folder), "toy")["held_out"]
    assert held["test_pairs_sha256"] == hashlib.sha256(b"a\ty\nb\ty").hexdigest()  # float64 would say a -> z
    assert held["test_time_tied_share"] == 0.5
    seq = sequences(read_interactions(str(folder), "toy"))  # ids in file order: x 0, z 1, y 2
    assert [int(seq.items[end - 1]) for end in seq.starts[1:]] == [2, 2]  # the card's last items: y, y
