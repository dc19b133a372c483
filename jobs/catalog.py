"""Write the feature catalog: every declared feature, what it means, its data, and its value in the champion.

    spark-submit jobs/catalog.py [--warehouse URI] [--out DIR]

One row per feature of the declarations (gold.features_file, conf/features.yaml):
name, description, owner, entity (group and key columns), window, operation, source,
type, `since`, the first as-of day whose gold snapshot holds data of its group, its
null and default (no history) share in the training set (train.table, newest
version), its share of the champion's importance and, for features an ablation of
the champion's training run left out, that ablation's NE minus the full XGBoost's
(positive: the features were worth that much). Written as features.md and
features.html (inline CSS, no external assets: readable offline) under
<warehouse>/catalog, or --out. Parts whose data does not exist yet (no training set,
no champion) show "-" and the page says why.
"""
from __future__ import annotations

import sys

from jobs.runtime.cli import base_parser, check_storage_uri, run_main
from jobs.runtime.spark import get_spark
from jobs.stages.catalog import run_catalog
from pipelines.config import AppConfig


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n\n")[0], needs_date=False)
    parser.add_argument("--out", help="folder for features.md and features.html (default: <warehouse>/catalog)")

    def body(args, cfg: AppConfig) -> int:
        out = check_storage_uri(args.out, "--out") if args.out else None
        spark = get_spark(cfg.spark, args.master)
        print(run_catalog(spark, cfg, out)["html"])
        return 0

    return run_main(parser, body, argv)


if __name__ == "__main__":
    sys.exit(main())
