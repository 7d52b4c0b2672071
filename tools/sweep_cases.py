"""The sweep's cases: RecBole's own model test list (``tests/model/test_model_auto.py`` of
RUCAIBox/RecBole 1.2.1: 137 cases over 90 models, config variants included), the settings every
case shares, and the optional packages some models need."""

from typing import Dict, List

from sweep_data import LOAD_COL  # tests/sweep_data.py (tools/sweep.py puts tests/ on the path)

# RecBole's overall.yaml default, restored for RecBole's cases (see the module docstring).
RECBOLE_DEFAULT_NEG = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0}

# module to import -> pip package; models -> modules they need
PIP_NAMES = {
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "faiss": "faiss-cpu",
    "dgl": "dgl",
    "torch_scatter": "torch-scatter",
}
OPTIONAL_PACKAGES: Dict[str, List[str]] = {
    # recbole.model.exlib_recommender imports both libraries, so each model needs both
    "LightGBM": ["lightgbm", "xgboost"],
    "XGBoost": ["xgboost", "lightgbm"],
    "NCL": ["faiss"],
    "KGAT": ["dgl"],
    "KGIN": ["torch_scatter"],
    "MCCLK": ["torch_scatter"],
}

_G, _C, _S, _K = "general", "context", "sequential", "knowledge"
_NONE = None  # train_neg_sample_args: None, as in RecBole's test cases

# (type, config) per case, in RecBole's order; taken from RecBole's tests/model/test_model_auto.py
RECBOLE_CASES: List[tuple] = [
    (_G, {"model": "Pop"}),
    (_G, {"model": "Random"}),
    (_G, {"model": "ItemKNN", "knn_method": "item"}),
    (_G, {"model": "ItemKNN", "knn_method": "user"}),
    (_G, {"model": "AsymKNN", "knn_method": "item"}),
    (_G, {"model": "AsymKNN", "knn_method": "user"}),
    (_G, {"model": "BPR"}),
    (
        _G,
        {
            "model": "BPR",
            "train_neg_sample_args": {
                "distribution": "uniform",
                "sample_num": 1,
                "alpha": 1.0,
                "dynamic": True,
                "candidate_num": 2,
            },
        },
    ),
    (_G, {"model": "NeuMF"}),
    (_G, {"model": "ConvNCF"}),
    (_G, {"model": "DMF"}),
    (_G, {"model": "DMF", "inter_matrix_type": "rating"}),
    (_G, {"model": "FISM"}),
    (_G, {"model": "FISM", "split_to": 10, "alpha": 0.5}),
    (_G, {"model": "NAIS"}),
    (_G, {"model": "NAIS", "algorithm": "concat", "split_to": 10, "alpha": 0.5, "beta": 0.1}),
    (_G, {"model": "SpectralCF"}),
    (_G, {"model": "GCMC"}),
    (_G, {"model": "GCMC", "accum": "stack", "sparse_feature": False}),
    (_G, {"model": "NGCF"}),
    (_G, {"model": "LightGCN"}),
    (_G, {"model": "DGCF"}),
    (_G, {"model": "LINE"}),
    (_G, {"model": "EASE"}),
    (_G, {"model": "MultiDAE", "train_neg_sample_args": _NONE}),
    (_G, {"model": "MultiVAE", "train_neg_sample_args": _NONE}),
    (_G, {"model": "ENMF", "train_neg_sample_args": _NONE}),
    (_G, {"model": "MacridVAE", "train_neg_sample_args": _NONE}),
    (_G, {"model": "CDAE", "train_neg_sample_args": _NONE}),
    (_G, {"model": "NNCF"}),
    (_G, {"model": "RecVAE", "train_neg_sample_args": _NONE}),
    (_G, {"model": "SLIMElastic"}),
    (_G, {"model": "SGL"}),
    (_G, {"model": "ADMMSLIM"}),
    (_G, {"model": "SimpleX", "aggregator": "mean"}),
    (_G, {"model": "SimpleX", "aggregator": "user_attention"}),
    (_G, {"model": "SimpleX", "aggregator": "self_attention"}),
    (_G, {"model": "NCEPLRec"}),
    (_G, {"model": "NCL", "num_clusters": 100}),
    (_G, {"model": "DiffRec"}),
    (_G, {"model": "DiffRec", "time-aware": True}),
    (_G, {"model": "LDiffRec"}),
    (_G, {"model": "LDiffRec", "time-aware": True}),
]
for _m, _extra in [
    ("LR", {}),
    ("FM", {}),
    ("NFM", {}),
    ("DeepFM", {}),
    ("xDeepFM", {}),
    ("xDeepFM", {"direct": True}),
    ("AFM", {}),
    ("FNN", {}),
    ("PNN", {}),
    ("PNN", {"use_inner": True, "use_outer": True}),
    ("PNN", {"use_inner": False, "use_outer": False}),
    ("DSSM", {}),
    ("WideDeep", {}),
    ("AutoInt", {}),
    ("FFM", {}),
    ("FwFM", {}),
    ("DCN", {}),
    ("DCNV2", {}),
    (
        "XGBoost",
        {
            "xgb_params": {"booster": "gbtree", "objective": "binary:logistic", "eval_metric": ["auc", "logloss"]},
            "xgb_num_boost_round": 1,
        },
    ),
    (
        "LightGBM",
        {
            "lgb_params": {"boosting": "gbdt", "objective": "binary", "metric": ["auc", "binary_logloss"]},
            "lgb_num_boost_round": 1,
        },
    ),
    ("FiGNN", {}),
    ("KD_DAGFM", {}),
    ("EulerNet", {}),
]:
    RECBOLE_CASES.append((_C, {"model": _m, "threshold": {"rating": 4}, **_extra}))
_BPR = {"loss_type": "BPR"}
RECBOLE_CASES += [
    (_S, {"model": "DIN"}),
    (_S, {"model": "DIEN"}),
    (_S, {"model": "FPMC"}),
    (_S, {"model": "GRU4Rec", "train_neg_sample_args": _NONE}),
    (_S, {"model": "GRU4RecCPR", "train_neg_sample_args": _NONE}),
    (_S, {"model": "GRU4Rec", **_BPR}),
    (_S, {"model": "NARM", "train_neg_sample_args": _NONE}),
    (_S, {"model": "NARM", **_BPR}),
    (_S, {"model": "STAMP", "train_neg_sample_args": _NONE}),
    (_S, {"model": "STAMP", **_BPR}),
    (_S, {"model": "Caser", "MAX_ITEM_LIST_LENGTH": 10, "reproducibility": False, "train_neg_sample_args": _NONE}),
    (_S, {"model": "Caser", **_BPR, "MAX_ITEM_LIST_LENGTH": 10, "reproducibility": False}),
    (_S, {"model": "NextItNet", "reproducibility": False, "train_neg_sample_args": _NONE}),
    (_S, {"model": "NextItNet", **_BPR, "reproducibility": False}),
    (_S, {"model": "TransRec"}),
    (_S, {"model": "SASRec", "train_neg_sample_args": _NONE}),
    (_S, {"model": "SASRecCPR", "train_neg_sample_args": _NONE}),
    (_S, {"model": "SASRec", **_BPR, "hidden_act": "relu"}),
    (_S, {"model": "SASRec", **_BPR, "hidden_act": "sigmoid"}),
    (_S, {"model": "SRGNN", "MAX_ITEM_LIST_LENGTH": 3, "train_neg_sample_args": _NONE}),
    (_S, {"model": "SRGNN", **_BPR, "MAX_ITEM_LIST_LENGTH": 3}),
    (_S, {"model": "GCSAN", "MAX_ITEM_LIST_LENGTH": 3, "train_neg_sample_args": _NONE}),
    (_S, {"model": "GCSAN", **_BPR, "hidden_act": "tanh", "MAX_ITEM_LIST_LENGTH": 3}),
    (_S, {"model": "GRU4RecF", "train_neg_sample_args": _NONE}),
    (_S, {"model": "GRU4RecF", "pooling_mode": "max", "train_neg_sample_args": _NONE}),
    (_S, {"model": "GRU4RecF", "pooling_mode": "sum", "train_neg_sample_args": _NONE}),
    (_S, {"model": "SASRecF", "train_neg_sample_args": _NONE}),
    (_S, {"model": "SASRecF", "pooling_mode": "max", "train_neg_sample_args": _NONE}),
    (_S, {"model": "SASRecF", "pooling_mode": "sum", "train_neg_sample_args": _NONE}),
    (_S, {"model": "HRM", "train_neg_sample_args": _NONE}),
    (_S, {"model": "HRM", **_BPR}),
    (_S, {"model": "NPE", "train_neg_sample_args": _NONE}),
    (_S, {"model": "NPE", **_BPR}),
    (_S, {"model": "SHAN", "train_neg_sample_args": _NONE, "transform": "inverse_itemseq"}),
    (_S, {"model": "SHAN", **_BPR, "transform": "inverse_itemseq"}),
    (_S, {"model": "HGN", "train_neg_sample_args": _NONE}),
    (_S, {"model": "HGN", **_BPR}),
    (_S, {"model": "FOSSIL", "train_neg_sample_args": _NONE}),
    (_S, {"model": "RepeatNet"}),
    (_S, {"model": "FDSA", "train_neg_sample_args": _NONE}),
    (_S, {"model": "FDSA", "pooling_mode": "max", "train_neg_sample_args": _NONE}),
    (_S, {"model": "FDSA", "pooling_mode": "sum", "train_neg_sample_args": _NONE}),
    (_S, {"model": "BERT4Rec", "train_neg_sample_args": _NONE, "transform": "mask_itemseq"}),
    (_S, {"model": "BERT4Rec", **_BPR, "hidden_act": "swish", "transform": "mask_itemseq"}),
    (_S, {"model": "LightSANs", "train_neg_sample_args": _NONE}),
    (_S, {"model": "LightSANs", **_BPR}),
    (_S, {"model": "SINE", "train_neg_sample_args": _NONE}),
    (_S, {"model": "SINE", **_BPR}),
    (_S, {"model": "SINE", "train_neg_sample_args": _NONE, "loss_type": "NLL"}),
    (_S, {"model": "CORE", "train_neg_sample_args": _NONE, "dnn_type": "trm"}),
    (_S, {"model": "CORE", "train_neg_sample_args": _NONE, "dnn_type": "ave"}),
    (_S, {"model": "FEARec", "train_neg_sample_args": _NONE}),
    (_K, {"model": "CKE"}),
    (_K, {"model": "CFKG"}),
    (_K, {"model": "CFKG", "loss_function": "transe"}),
    (_K, {"model": "KTUP", "train_rec_step": 1, "train_kg_step": 1, "epochs": 2}),
    (_K, {"model": "KTUP", "use_st_gumbel": False, "L1_flag": True}),
    (_K, {"model": "KGAT"}),
    (_K, {"model": "KGAT", "aggregator_type": "gcn"}),
    (_K, {"model": "KGAT", "aggregator_type": "graphsage"}),
    (_K, {"model": "RippleNet"}),
    (_K, {"model": "MKR"}),
    (_K, {"model": "MKR", "use_inner_product": False}),
    (_K, {"model": "KGCN"}),
    (_K, {"model": "KGCN", "aggregator": "neighbor"}),
    (_K, {"model": "KGCN", "aggregator": "concat"}),
    (_K, {"model": "KGNNLS"}),
    (_K, {"model": "KGNNLS", "aggregator": "neighbor"}),
    (_K, {"model": "KGNNLS", "aggregator": "concat"}),
    (_K, {"model": "MCCLK"}),
    (_K, {"model": "KGIN"}),
]

# settings every case shares (RecBole's test_model.yaml: one epoch; plus small batches and the
# columns of the generated data set)
BASE_CONFIG = {
    "epochs": 1,
    "state": "ERROR",
    "show_progress": False,
    "train_batch_size": 1024,
    "eval_batch_size": 4096,
    "load_col": LOAD_COL,
    "numerical_features": ["income", "price", "price_hist"],
}
