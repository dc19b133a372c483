"""The generated world: users, ads, campaigns, publishers and their hidden effects.

Hidden columns (``*_bias``, ``activity``) drive the click model and never reach
the landing files; the dimension snapshots carry only the contract's fields.
"""
from __future__ import annotations

from datetime import timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.dev.generator.rng import index, normal, pick, uniform
from pipelines.config import GeneratorConfig

SEGMENTS = ["sports_fans", "tech_enthusiasts", "travelers", "parents", "gamers", "shoppers",
            "finance_savvy", "foodies"]
USER_BIAS_SD = 0.35   # the hidden per-user log-odds shift: normal(0, this)
AD_CATEGORIES = ["auto", "finance", "travel", "retail", "gaming", "food", "tech", "health", "fashion", "sports"]
PUB_CATEGORIES = ["news", "sports", "entertainment", "tech", "lifestyle", "finance", "gaming", "travel"]
DEVICES = ["mobile", "desktop", "tablet", "ctv", "other"]
DEVICE_WEIGHTS = [0.55, 0.30, 0.08, 0.04, 0.03]
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "JP", "CA", "AU", "ES"]
COUNTRY_WEIGHTS = [0.35, 0.10, 0.09, 0.07, 0.12, 0.08, 0.06, 0.05, 0.04, 0.04]
# Real-looking user agents per device; none matches a default bot pattern
# (the generator checks this against the configured list before it starts).
USER_AGENTS = {
    "mobile": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/{v}.0.0.0 Safari/537.36",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.0 Mobile/15E148 Safari/604.1",
    "ctv": "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
           "SamsungBrowser/5.0 Chrome/{v}.0.0.0 TV Safari/537.36",
    "other": "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
}
BOT_USER_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.31.0",
    "curl/8.4.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
    "Wget/1.21.4",
    "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
]
USER_ACTIVITY_ALPHA = 1.6  # Pareto tail of impressions per user per day
USER_ACTIVITY_MIN = 3.0


def user_agent_for(device: F.Column, version: F.Column) -> F.Column:
    expr = None
    for name, template in USER_AGENTS.items():
        head, _, tail = template.partition("{v}")
        tail_head, _, tail_tail = tail.partition("{v}")
        ua = F.concat(F.lit(head), version, F.lit(tail_head),
                      *([version, F.lit(tail_tail)] if "{v}" in tail else []))
        expr = F.when(device == name, ua) if expr is None else expr.when(device == name, ua)
    return expr


def ip_for(seed: int, key: F.Column) -> F.Column:
    octet = [(F.floor(uniform(seed, f"ip{i}", key) * 223) + 11).cast("int").cast("string") for i in range(4)]
    hextet = [F.lower(F.hex(F.floor(uniform(seed, f"ip6{i}", key) * 65535).cast("int"))) for i in range(5)]
    v4 = F.concat_ws(".", *octet)
    v6 = F.concat_ws(":", F.lit("2001"), F.lit("db8"), *hextet, F.lit("1"))
    return F.when(uniform(seed, "ipv", key) < 0.1, v6).otherwise(v4)


def users(spark: SparkSession, cfg: GeneratorConfig, n_users: int) -> DataFrame:
    s, uid = cfg.seed, F.col("id")
    activity = F.least(F.lit(float(cfg.max_user_impressions_per_day)),
                       USER_ACTIVITY_MIN * F.pow(1.0 - uniform(s, "act", uid), -1.0 / USER_ACTIVITY_ALPHA))
    device = pick(uniform(s, "dev", uid), DEVICES, DEVICE_WEIGHTS)
    return spark.range(n_users, numPartitions=max(1, min(64, n_users // 200_000 + 1))).select(
        uid.alias("user_idx"),
        F.format_string("u%08d", uid).alias("user_id"),
        pick(uniform(s, "seg", uid), SEGMENTS, [1.0] * len(SEGMENTS)).alias("segment"),
        device.alias("device_type"),
        pick(uniform(s, "geo", uid), COUNTRIES, COUNTRY_WEIGHTS).alias("geo"),
        (F.lit(cfg.start_date).cast("timestamp")
         - F.make_interval(days=F.floor(uniform(s, "created", uid) * 900).cast("int"))).alias("created_at"),
        activity.alias("activity"),
        (USER_BIAS_SD * normal(s, "ubias", uid)).alias("user_bias"),
        user_agent_for(device, (F.floor(uniform(s, "uav", uid) * 8) + 116).cast("string")).alias("user_agent"),
        ip_for(s, uid).alias("ip"),
    )


def expected_user_activity(cfg: GeneratorConfig) -> float:
    """Mean impressions per user-day (closed form of the capped Pareto, times the day factor's mean 1)."""
    cap, xm, a = float(cfg.max_user_impressions_per_day), USER_ACTIVITY_MIN, USER_ACTIVITY_ALPHA
    if cap <= xm:
        return cap
    # E[min(cap, X)] for X ~ Pareto(xm, a): xm*a/(a-1) - xm^a * cap^(1-a) / (a-1)
    return xm * a / (a - 1) - (xm ** a) * cap ** (1 - a) / (a - 1)


def campaigns(spark: SparkSession, cfg: GeneratorConfig) -> DataFrame:
    s, cid = cfg.seed, F.col("id")
    start = F.lit(cfg.start_date)
    return spark.range(cfg.n_campaigns, numPartitions=1).select(
        F.format_string("cmp%05d", cid).alias("campaign_id"),
        F.format_string("adv%04d", index(uniform(s, "adv", cid), cfg.n_advertisers, 1.5)).alias("advertiser_id"),
        pick(uniform(s, "obj", cid), ["awareness", "traffic", "conversions"], [0.3, 0.4, 0.3]).alias("objective"),
        F.round(1000 + uniform(s, "budget", cid) * 99000, 2).alias("budget"),
        F.date_sub(start, F.floor(uniform(s, "cstart", cid) * 60).cast("int")).alias("start_date"),
        F.date_add(start, (F.floor(uniform(s, "cend", cid) * 90) + 30).cast("int")).alias("end_date"),
    )


def ads(spark: SparkSession, cfg: GeneratorConfig) -> DataFrame:
    s, aid = cfg.seed, F.col("id")
    return spark.range(cfg.n_ads, numPartitions=1).select(
        aid.alias("ad_idx"),
        F.format_string("ad%06d", aid).alias("ad_id"),
        F.format_string("cmp%05d", index(uniform(s, "cmp", aid), cfg.n_campaigns)).alias("campaign_id"),
        pick(uniform(s, "ctype", aid), ["banner", "video", "native"], [0.6, 0.2, 0.2]).alias("creative_type"),
        pick(uniform(s, "acat", aid), AD_CATEGORIES, [1.0] * len(AD_CATEGORIES)).alias("category"),
        (0.4 * normal(s, "abias", aid)).alias("ad_bias"),
    )


def publishers(spark: SparkSession, cfg: GeneratorConfig) -> DataFrame:
    s, pid = cfg.seed, F.col("id")
    return spark.range(cfg.n_publishers, numPartitions=1).select(
        pid.alias("pub_idx"),
        F.format_string("pub%05d", pid).alias("publisher_id"),
        F.format_string("Publisher %d", pid).alias("name"),
        pick(uniform(s, "pcat", pid), PUB_CATEGORIES, [1.0] * len(PUB_CATEGORIES)).alias("category"),
        F.format_string("site%d.example", pid).alias("domain"),
        (0.25 * normal(s, "pbias", pid)).alias("pub_bias"),
    )


def affinities(spark: SparkSession, cfg: GeneratorConfig) -> tuple[DataFrame, DataFrame]:
    """Hidden cross-entity effects a flat per-entity model cannot see.

    (segment, ad category) and (publisher category, ad category) each add a
    fixed log-odds shift to the click probability.
    """
    seg = spark.createDataFrame([(x,) for x in SEGMENTS], "segment string")
    pcat = spark.createDataFrame([(x,) for x in PUB_CATEGORIES], "pub_category string")
    acat = spark.createDataFrame([(x,) for x in AD_CATEGORIES], "ad_category string")
    seg_aff = seg.crossJoin(acat).select(
        "segment", "ad_category", (0.5 * normal(cfg.seed, "aff_seg", "segment", "ad_category")).alias("aff_seg"))
    pub_aff = pcat.crossJoin(acat).select(
        "pub_category", "ad_category",
        (0.4 * normal(cfg.seed, "aff_pub", "pub_category", "ad_category")).alias("aff_pub"))
    return seg_aff, pub_aff


def days(spark: SparkSession, cfg: GeneratorConfig) -> DataFrame:
    rows = [(i, cfg.start_date + timedelta(days=i)) for i in range(cfg.days)]
    return spark.createDataFrame(rows, "day_idx int, day date")
