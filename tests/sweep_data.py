"""The sweep's data set (``tools/sweep.py``; ``tests/test_sweep.py``): every kind of RecBole
field, user and item features, a knowledge graph, and blank cells in every kind of field."""

from __future__ import annotations

import os
from typing import List

import numpy as np

DATASET = "sweep"
#: the columns of every file of the data set, as RecBole's ``load_col``
LOAD_COL = {
    "inter": ["user_id", "item_id", "rating", "timestamp"],
    "user": ["user_id", "age", "gender", "occupation", "income"],
    "item": ["item_id", "release_year", "class", "price", "price_hist"],
    "kg": ["head_id", "relation_id", "tail_id"],
    "link": ["item_id", "entity_id"],
}


def write_sweep_dataset(root: str, n_users: int = 200, n_items: int = 200, per_user: int = 12, seed: int = 0) -> str:
    """Write the sweep data set ``root/sweep/sweep.{inter,user,item,kg,link}``; returns ``root``.

    Fields: ``user_id, item_id`` (token), ``rating, timestamp`` (float); users: ``age, gender,
    occupation`` (token), ``income`` (float); items: ``release_year`` (token), ``class``
    (token_seq), ``price`` (float), ``price_hist`` (float_seq); a knowledge graph of 8 relations
    with ``.link`` for 90% of the items. Blank cells: one rating in
    ``.inter``; a gender and an income in ``.user``; a release year, a class, a price and a
    price history in ``.item``; ten users and ten items have no feature row at all.
    """
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, DATASET)
    os.makedirs(folder, exist_ok=True)
    _interactions(folder, rng, n_users, n_items, per_user)
    _users(folder, rng, n_users)
    _items(folder, rng, n_items)
    _knowledge_graph(folder, rng, n_items)
    return root


def _write(folder: str, suffix: str, header: List[str], rows: List[List[str]]) -> None:
    with open(os.path.join(folder, f"{DATASET}.{suffix}"), "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


def _interactions(folder: str, rng, n_users: int, n_items: int, per_user: int) -> None:
    inter = []
    popularity = rng.zipf(1.3, n_items).astype(float)
    p = popularity / popularity.sum()
    t0 = 880_000_000
    for u in range(1, n_users + 1):
        n = int(rng.integers(per_user // 2, per_user * 3 // 2))
        items = rng.choice(np.arange(1, n_items + 1), size=n, replace=False, p=p)
        times = np.sort(rng.integers(t0, t0 + 10_000_000, size=n))
        for i, t in zip(items, times):
            inter.append([str(u), str(i), str(int(rng.integers(1, 6))), str(int(t))])
    inter[8][2] = ""  # blank rating -> column mean (a blank time is refused: sequential splits order by it)
    _write(folder, "inter", ["user_id:token", "item_id:token", "rating:float", "timestamp:float"], inter)


def _users(folder: str, rng, n_users: int) -> None:
    occupations = ["student", "engineer", "artist", "writer", "other"]
    users = []
    for u in range(1, n_users - 10 + 1):  # the last ten users have no feature row
        users.append(
            [
                str(u),
                str(int(rng.integers(15, 70))),
                rng.choice(["M", "F"]),
                rng.choice(occupations),
                f"{rng.uniform(10, 100):.2f}",
            ]
        )
    users[3][2] = ""  # blank gender -> padding token
    users[4][4] = ""  # blank income -> column mean
    _write(folder, "user", ["user_id:token", "age:token", "gender:token", "occupation:token", "income:float"], users)


def _items(folder: str, rng, n_items: int) -> None:
    genres = ["Action", "Comedy", "Drama", "Thriller", "Romance", "Sci-Fi", "Horror", "Animation"]
    items = []
    for i in range(1, n_items - 10 + 1):  # the last ten items have no feature row
        k = int(rng.integers(1, 4))
        hist = " ".join(f"{x:.2f}" for x in rng.uniform(1, 50, size=int(rng.integers(1, 5))))
        items.append(
            [
                str(i),
                str(int(rng.integers(1970, 2000))),
                " ".join(rng.choice(genres, size=k, replace=False)),
                f"{rng.uniform(1, 50):.2f}",
                hist,
            ]
        )
    items[2][1] = ""  # blank release year
    items[3][2] = ""  # blank class (token_seq)
    items[4][3] = ""  # blank price (float)
    items[5][4] = ""  # blank price history (float_seq)
    _write(
        folder,
        "item",
        ["item_id:token", "release_year:token", "class:token_seq", "price:float", "price_hist:float_seq"],
        items,
    )


def _knowledge_graph(folder: str, rng, n_items: int) -> None:
    n_linked = int(n_items * 0.9)
    _write(folder, "link", ["item_id:token", "entity_id:token"], [[str(i), f"m.{i}"] for i in range(1, n_linked + 1)])
    relations = [f"film.rel{r}" for r in range(8)]
    extra = [f"m.x{e}" for e in range(150)]
    kg, seen = [], set()
    entities = [f"m.{i}" for i in range(1, n_linked + 1)]
    while len(kg) < 3000:
        h = entities[int(rng.integers(len(entities)))]
        r = relations[int(rng.integers(len(relations)))]
        pool = extra if rng.random() < 0.7 else entities
        t = pool[int(rng.integers(len(pool)))]
        if (h, r, t) not in seen and h != t:
            seen.add((h, r, t))
            kg.append([h, r, t])
    _write(folder, "kg", ["head_id:token", "relation_id:token", "tail_id:token"], kg)
