"""Firewall traffic counted for long ranges: hourly and daily rollups, and the reads that combine them with raw rows.

Reads (`evaluation_counts`, `latency_percentiles`, `blocked_patterns`) split a period in three:

- the whole hours inside it that lie before `RollupCursor(hour).complete_until` come from `EvaluationRollup`,
  `LatencyRollup` and `PatternRollup` rows — daily ones for whole days before the day cursor, when the answer is
  not counted per hour;
- the partial hour at each end, and everything after the cursor, come from `Evaluation` rows;
- periods counted per minute (three hours or less) read `Evaluation` rows only.

So counts are always exact and never stale: a rollup is only trusted where it is complete. Each part is grouped in
SQL; what comes back is at most one row per bucket and combination (or latency bin), merged here.

Latency percentiles over rollups come from a histogram over log-spaced bins (`BINS`, ratio `BIN_RATIO`): the value
of a rank is taken as the geometric middle of its bin and interpolated between the two ranks around the wanted
position, as `percentile_cont` interpolates between values. Each middle is within a factor √BIN_RATIO of the value it
stands for, so the estimate is within that factor of the exact percentile: half a bin, under 4.9 % with a ratio of
1.1 (plus 0.005 ms below 0.01 ms; beyond 120 s it says only "at least 120 s"). When no rollup covers any part of the
period the exact percentile of the raw rows is returned instead.

Building: `rollup_hours` recomputes the hourly rows of every organization for a range of whole hours and
`rollup_days` the daily rows from the hourly ones, each chunk deleted and re-inserted in one transaction (a reader
never sees half an hour). `rollup_recent` (the periodic job) rolls from the cursor to the last complete hour;
`rebuild` recomputes any range. Hours are the time zone's hours (UTC hours unless TIME_ZONE is offset by a fraction
of an hour), days start at TIME_ZONE's midnight. An evaluation written more than ANALYTICS_ROLLUP_GRACE_S after its
hour ended (it cannot happen to `created_at`, set on insert, short of a transaction that long) is counted again only
by a `rebuild` of its hour.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, Count, F, IntegerField, Min, Model, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Cast, Floor, Ln, TruncDay, TruncHour
from django.utils import timezone

from analytics.models import EvaluationRollup, Granularity, LatencyRollup, PatternRollup, RollupCursor
from firewall.choices import Decision
from firewall.models import Evaluation

if TYPE_CHECKING:
    from accounts.models import Organization
    from analytics.selectors import Period

DIMENSIONS = ("direction", "decision", "threat_type", "severity", "decided_by", "application", "api_key_id")
HOUR = timedelta(hours=1)

# Latency bins: 0 holds [0, 0.01 ms); bin i in 1..BIN_COUNT holds [0.01 · r^(i-1), 0.01 · r^i) ms; the last
# (OVERFLOW_BIN) holds everything from 120 s up.
BIN_RATIO = 1.1
BIN_MIN_MS = 0.01
BIN_MAX_MS = 120_000.0
BIN_COUNT = math.ceil(math.log(BIN_MAX_MS / BIN_MIN_MS) / math.log(BIN_RATIO))
OVERFLOW_BIN = BIN_COUNT + 1
BIN_TOP_MS = BIN_MIN_MS * BIN_RATIO**BIN_COUNT
BINS: tuple[tuple[float, float], ...] = (
    (0.0, BIN_MIN_MS),
    *((BIN_MIN_MS * BIN_RATIO ** (i - 1), BIN_MIN_MS * BIN_RATIO**i) for i in range(1, BIN_COUNT + 1)),
    (BIN_TOP_MS, math.inf),
)

CURSOR_CACHE_KEY = "analytics:rollup-cursors"
CURSOR_CACHE_S = 30
_LOCK_KEY = 0x616E726F  # the advisory lock that serializes rollup writers on PostgreSQL


# --- time -------------------------------------------------------------------------------------------------------


def _zone() -> tzinfo:
    return ZoneInfo(settings.TIME_ZONE)


def _hour_zone() -> tzinfo:
    """The zone hours are cut in: UTC when TIME_ZONE is a whole number of hours off it (no ambiguous local hours at
    a DST change), else TIME_ZONE itself (India, Newfoundland…)."""
    zone = _zone()
    probes = (datetime(2025, 1, 15, tzinfo=UTC), datetime(2025, 7, 15, tzinfo=UTC))
    if all(probe.astimezone(zone).utcoffset() % HOUR == timedelta(0) for probe in probes):
        return UTC
    return zone


def floor_hour(at: datetime) -> datetime:
    local = at.astimezone(_hour_zone())
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def ceil_hour(at: datetime) -> datetime:
    start = floor_hour(at)
    return start if start == at else start + HOUR


def floor_day(at: datetime) -> datetime:
    zone = _zone()
    return datetime.combine(at.astimezone(zone).date(), time(), tzinfo=zone).astimezone(UTC)


def ceil_day(at: datetime) -> datetime:
    start = floor_day(at)
    return start if start == at else _next_day(start)


def _next_day(day: datetime) -> datetime:
    zone = _zone()
    return datetime.combine(day.astimezone(zone).date() + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


def _ranges_q(ranges: Iterable[tuple[datetime, datetime]], field_name: str) -> Q:
    parts = [Q(**{f"{field_name}__gte": start, f"{field_name}__lt": end}) for start, end in ranges]
    if not parts:
        raise ValueError("No time range to read.")
    q = parts[0]
    for part in parts[1:]:
        q |= part
    return q


# --- reading ----------------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Which parts of a period come from raw rows, hourly rollups and daily rollups (half-open ranges)."""

    raw: list[tuple[datetime, datetime]] = field(default_factory=list)
    hours: list[tuple[datetime, datetime]] = field(default_factory=list)
    days: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def rolled_up(self) -> bool:
        return bool(self.hours or self.days)

    def raw_rows(self, organization: Organization) -> QuerySet[Evaluation] | None:
        if not self.raw:
            return None
        return Evaluation.objects.for_org(organization).filter(_ranges_q(self.raw, "created_at")).order_by()

    def rollup_rows(self, model: type[Model], organization: Organization) -> Iterator[tuple[str, QuerySet]]:
        """(granularity, its rollup rows in the plan's ranges), hourly first."""
        for granularity, ranges in ((Granularity.HOUR, self.hours), (Granularity.DAY, self.days)):
            if ranges:
                yield (
                    granularity,
                    model.objects.for_org(organization)  # type: ignore[attr-defined]
                    .filter(granularity=granularity)
                    .filter(_ranges_q(ranges, "bucket"))
                    .order_by(),
                )


def _bucket_of(period: Period, field: str, granularity: str | None = None) -> Any:
    """The SQL of a row's bucket in the period's series. A rollup row of the series' own granularity already starts
    its bucket: its column is read as is, which spares the database a truncation and Python a time-zone conversion
    per row (thousands on a month of latency histograms)."""
    return F(field) if granularity == period.bucket else period.truncate(field)


def cursors(*, fresh: bool = False) -> dict[str, datetime]:
    """`{granularity: complete_until}` of the rollups built so far. Readers take it from the cache (a page reads it
    once, not once per chart): a cursor older than the truth only means more raw rows read, never a wrong count,
    because a chunk of rollups is replaced in one transaction. Writers read the table (`fresh`)."""
    found = None if fresh else cache.get(CURSOR_CACHE_KEY)
    if found is None:
        found = dict(RollupCursor.objects.values_list("granularity", "complete_until"))
        if not fresh:
            cache.set(CURSOR_CACHE_KEY, found, CURSOR_CACHE_S)
    return found


def _forget_cursors() -> None:
    """Drop the cached cursors now and again at commit (a reader in between may have cached the old ones)."""
    cache.delete(CURSOR_CACHE_KEY)
    transaction.on_commit(lambda: cache.delete(CURSOR_CACHE_KEY))


def _plan(period: Period, *, days: bool) -> _Plan:
    whole = _Plan(raw=[(period.since, period.until)])
    if period.bucket == "minute" or timezone.get_current_timezone_name() != settings.TIME_ZONE:
        return whole  # short periods are cheap raw; buckets of another zone do not line up with rollups
    complete = cursors()
    if Granularity.HOUR not in complete:
        return whole
    first, last = ceil_hour(period.since), min(floor_hour(period.until), complete[Granularity.HOUR])
    if first >= last:
        return whole
    plan = _Plan(raw=[(start, end) for start, end in ((period.since, first), (last, period.until)) if start < end])
    if days and Granularity.DAY in complete:
        first_day, last_day = ceil_day(first), min(floor_day(last), complete[Granularity.DAY])
        if first_day < last_day:
            plan.days = [(first_day, last_day)]
            plan.hours = [(start, end) for start, end in ((first, first_day), (last_day, last)) if start < end]
            return plan
    plan.hours = [(first, last)]
    return plan


def _check_dimensions(group_by: Sequence[str]) -> list[str]:
    if isinstance(group_by, str):
        raise ValueError(f"group_by is a sequence of dimensions, not the string {group_by!r}.")
    unknown = [name for name in group_by if name not in DIMENSIONS]
    if unknown:
        raise ValueError(f"Unknown dimension(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(DIMENSIONS)}.")
    return list(dict.fromkeys(group_by))


def _sort_key(values: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    """Ordered by value, an absent value (no API key) last, as PostgreSQL orders NULLs."""
    return tuple((value is None, "" if value is None else value) for value in values)


def evaluation_counts(
    organization: Organization, period: Period, *, group_by: Sequence[str] = (), by_bucket: bool = False
) -> list[dict[str, Any]]:
    """Evaluations of the period per combination of `group_by` dimensions (and per bucket of the period, with
    `by_bucket`): `[{"bucket"?, <dimension>: value, …, "count", "latency_sum_ms"}]` ordered by bucket then dimensions.

    Only combinations that have evaluations appear; without any key (no dimension, no bucket) there is exactly one
    row, the total, as SQL's aggregate. Exact whatever the rollups' state."""
    dimensions = _check_dimensions(group_by)
    plan = _plan(period, days=not by_bucket or period.bucket == "day")
    keys = (["_bucket"] if by_bucket else []) + dimensions
    totals: dict[tuple[Any, ...], list[Any]] = {}

    def add(rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if not row["_n"]:
                continue
            total = totals.setdefault(tuple(row[key] for key in keys), [0, 0.0])
            total[0] += row["_n"]
            total[1] += row["_ms"] or 0.0

    def grouped(
        queryset: QuerySet, bucket_field: str, count: Any, latency: Any, granularity: str | None = None
    ) -> Iterable[dict[str, Any]]:
        if by_bucket:
            queryset = queryset.annotate(_bucket=_bucket_of(period, bucket_field, granularity))
        if not keys:
            return [queryset.aggregate(_n=count, _ms=latency)]
        return queryset.values(*keys).annotate(_n=count, _ms=latency)

    raw = plan.raw_rows(organization)
    if raw is not None:
        add(grouped(raw, "created_at", Count("pk"), Sum("latency_ms")))
    for granularity, rolled in plan.rollup_rows(EvaluationRollup, organization):
        add(grouped(rolled, "bucket", Sum("count"), Sum("latency_sum_ms"), granularity))
    if not keys:
        count, latency = totals.get((), (0, 0.0))
        return [{"count": count, "latency_sum_ms": round(latency, 3)}]
    names = ["bucket" if key == "_bucket" else key for key in keys]
    return [
        {**dict(zip(names, key, strict=True)), "count": count, "latency_sum_ms": round(latency, 3)}
        for key, (count, latency) in sorted(totals.items(), key=lambda item: _sort_key(item[0]))
    ]


def bin_expression(field_name: str = "latency_ms") -> Case:
    """The SQL of a latency's bin (`BINS`), the same on PostgreSQL and SQLite (Django gives SQLite LN and FLOOR)."""
    regular = Floor(Ln(F(field_name) / Value(BIN_MIN_MS)) / Value(math.log(BIN_RATIO))) + Value(1)
    return Case(
        When(**{f"{field_name}__lt": BIN_MIN_MS}, then=Value(0)),
        When(**{f"{field_name}__gte": BIN_TOP_MS}, then=Value(OVERFLOW_BIN)),
        default=Cast(regular, IntegerField()),
        output_field=IntegerField(),
    )


def bin_of(latency_ms: float) -> int:
    """The bin of one latency, as `bin_expression` computes it in SQL."""
    if latency_ms < BIN_MIN_MS:
        return 0
    if latency_ms >= BIN_TOP_MS:
        return OVERFLOW_BIN
    return min(BIN_COUNT, math.floor(math.log(latency_ms / BIN_MIN_MS) / math.log(BIN_RATIO)) + 1)


def _bin_middle(index: int) -> float:
    low, high = BINS[index]
    if index == 0:
        return high / 2
    if index == OVERFLOW_BIN:
        return low  # unbounded: "at least"
    return math.sqrt(low * high)


def histogram_percentiles(counts: dict[int, int], fractions: Sequence[float], digits: int = 2) -> dict[float, float]:
    """Percentiles of a histogram `{bin: count}`, interpolated between ranks like `percentile_cont` (see module)."""
    filled = sorted((index, n) for index, n in counts.items() if n > 0)
    if not filled:
        return {}
    ends, total = [], 0
    for _, n in filled:
        total += n
        ends.append(total)

    def value_at(rank: int) -> float:
        return _bin_middle(filled[bisect_right(ends, rank)][0])

    found = {}
    for fraction in fractions:
        position = fraction * (total - 1)
        lower = math.floor(position)
        low, high = value_at(lower), value_at(min(lower + 1, total - 1))
        found[fraction] = round(low + (high - low) * (position - lower), digits)
    return found


def latency_percentiles(
    organization: Organization,
    period: Period,
    fractions: Sequence[float] = (0.5, 0.95),
    *,
    by_bucket: bool = False,
) -> dict[Any, dict[float, float]]:
    """`{bucket or None: {fraction: ms}}` like `analytics.selectors.percentiles`: exact from raw rows when no rollup
    covers the period (short periods always), else from summed histograms within half a bin (see module)."""
    from analytics import selectors  # selectors reads through this module

    fractions = tuple(float(fraction) for fraction in fractions)
    for fraction in fractions:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"A percentile's fraction is between 0 and 1, got {fraction}.")
    plan = _plan(period, days=not by_bucket or period.bucket == "day")
    if not plan.rolled_up:
        rows = Evaluation.objects.for_org(organization).filter(_ranges_q(plan.raw, "created_at"))
        return selectors.percentiles(rows, "latency_ms", fractions, group_by=period.truncate() if by_bucket else None)
    histograms: dict[Any, dict[int, int]] = {}

    def add(queryset: QuerySet, bucket_field: str, bin_field: Any, count: Any, granularity: str | None = None) -> None:
        keys = ["_bin"]
        if by_bucket:
            queryset = queryset.annotate(_bucket=_bucket_of(period, bucket_field, granularity))
            keys.insert(0, "_bucket")
        for *bucket, found_bin, n in queryset.annotate(_bin=bin_field).values_list(*keys).annotate(_n=count):
            histogram = histograms.setdefault(bucket[0] if by_bucket else None, {})
            histogram[found_bin] = histogram.get(found_bin, 0) + n

    raw = plan.raw_rows(organization)
    if raw is not None:
        add(raw, "created_at", bin_expression(), Count("pk"))
    for granularity, rolled in plan.rollup_rows(LatencyRollup, organization):
        add(rolled, "bucket", F("bin"), Sum("count"), granularity)
    found = {key: histogram_percentiles(histogram, fractions) for key, histogram in histograms.items()}
    return {key: values for key, values in found.items() if values}


def blocked_patterns(organization: Organization, period: Period, limit: int = 10) -> list[dict[str, Any]]:
    """`[{"text_hash", "threat_type", "count"}]`: the texts blocked most often in the period, most first (ties by
    hash). The parts are added up and ranked in one SQL statement (UNION ALL), however many distinct texts."""
    if limit < 1:
        return []
    plan = _plan(period, days=True)
    parts: list[QuerySet] = []
    raw = plan.raw_rows(organization)
    if raw is not None:
        parts.append(
            raw.filter(decision=Decision.BLOCKED)
            .exclude(text_hash="")
            .values(h=F("text_hash"), t=F("threat_type"))
            .annotate(n=Count("pk"))
        )
    for _granularity, rolled in plan.rollup_rows(PatternRollup, organization):
        parts.append(rolled.values(h=F("text_hash"), t=F("threat_type")).annotate(n=Sum("count")))
    sqls, params = [], []
    for part in parts:
        sql, part_params = part.query.sql_with_params()
        sqls.append(sql)
        params.extend(part_params)
    statement = (
        f"SELECT h, MAX(t), SUM(n) FROM ({' UNION ALL '.join(sqls)}) parts "  # noqa: S608 - Django's own SQL
        "GROUP BY h ORDER BY SUM(n) DESC, h LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*params, int(limit)])
        return [{"text_hash": h, "threat_type": t, "count": int(n)} for h, t, n in cursor.fetchall()]


# --- building ---------------------------------------------------------------------------------------------------


def _lock() -> None:
    """Serialize writers (the job and a rebuild) so that two never delete and insert the same hours at once; SQLite
    already allows one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _chunks(start: datetime, end: datetime, step: timedelta) -> Iterator[tuple[datetime, datetime]]:
    while start < end:
        yield start, min(start + step, end)
        start = start + step


def _day_chunks(start: datetime, end: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
    while start < end:
        stop = start
        for _ in range(days):
            stop = _next_day(stop)
        yield start, min(stop, end)
        start = stop


def _insert(model: type[Model], rows: Iterable[dict[str, Any]], **fixed: Any) -> int:
    """bulk_create the grouped rows in batches (never the whole result in memory)."""
    batch, written = [], 0
    for row in rows:
        batch.append(model(**fixed, **row))
        if len(batch) >= 2000:
            written += len(model.objects.bulk_create(batch))  # type: ignore[attr-defined]
            batch = []
    if batch:
        written += len(model.objects.bulk_create(batch))  # type: ignore[attr-defined]
    return written


def _rename(rows: Iterable[dict[str, Any]], **names: str) -> Iterator[dict[str, Any]]:
    for row in rows:
        yield {names.get(key, key): value for key, value in row.items()}


def _write_hours(start: datetime, end: datetime) -> dict[str, int]:
    """Replace the hourly rows of [start, end) (whole hours) by the evaluations' counts. Inside a transaction."""
    for model in (EvaluationRollup, LatencyRollup, PatternRollup):
        model.objects.filter(granularity=Granularity.HOUR, bucket__gte=start, bucket__lt=end).delete()
    evaluations = (
        Evaluation.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by()
        .annotate(_bucket=TruncHour("created_at", tzinfo=_hour_zone()))
    )
    hour = {"granularity": Granularity.HOUR}
    counts = evaluations.values("organization_id", "_bucket", *DIMENSIONS).annotate(
        _n=Count("pk"), _ms=Sum("latency_ms")
    )
    latency = evaluations.annotate(_bin=bin_expression()).values("organization_id", "_bucket", "_bin")
    patterns = evaluations.filter(decision=Decision.BLOCKED).exclude(text_hash="")
    return {
        "evaluation_rows": _insert(
            EvaluationRollup,
            _rename(counts.iterator(), _bucket="bucket", _n="count", _ms="latency_sum_ms"),
            **hour,
        ),
        "latency_rows": _insert(
            LatencyRollup,
            _rename(latency.annotate(_n=Count("pk")).iterator(), _bucket="bucket", _bin="bin", _n="count"),
            **hour,
        ),
        "pattern_rows": _insert(
            PatternRollup,
            _rename(
                patterns.values("organization_id", "_bucket", "text_hash", "threat_type")
                .annotate(_n=Count("pk"))
                .iterator(),
                _bucket="bucket",
                _n="count",
            ),
            **hour,
        ),
    }


def _write_days(start: datetime, end: datetime) -> dict[str, int]:
    """Replace the daily rows of [start, end) (whole days) by the sums of their hourly rows. Inside a transaction."""
    for model in (EvaluationRollup, LatencyRollup, PatternRollup):
        model.objects.filter(granularity=Granularity.DAY, bucket__gte=start, bucket__lt=end).delete()

    def hourly(model: type[Model]) -> QuerySet:
        return (
            model.objects.filter(granularity=Granularity.HOUR, bucket__gte=start, bucket__lt=end)  # type: ignore[attr-defined]
            .order_by()
            .annotate(_bucket=TruncDay("bucket", tzinfo=_zone()))
        )

    day = {"granularity": Granularity.DAY}
    counts = hourly(EvaluationRollup).values("organization_id", "_bucket", *DIMENSIONS)
    latency = hourly(LatencyRollup).values("organization_id", "_bucket", "bin")
    patterns = hourly(PatternRollup).values("organization_id", "_bucket", "text_hash", "threat_type")
    return {
        "evaluation_rows": _insert(
            EvaluationRollup,
            _rename(
                counts.annotate(_n=Sum("count"), _ms=Sum("latency_sum_ms")).iterator(),
                _bucket="bucket",
                _n="count",
                _ms="latency_sum_ms",
            ),
            **day,
        ),
        "latency_rows": _insert(
            LatencyRollup, _rename(latency.annotate(_n=Sum("count")).iterator(), _bucket="bucket", _n="count"), **day
        ),
        "pattern_rows": _insert(
            PatternRollup,
            _rename(patterns.annotate(_n=Sum("count")).iterator(), _bucket="bucket", _n="count"),
            **day,
        ),
    }


def _add(summary: dict[str, int], written: dict[str, int]) -> None:
    for key, value in written.items():
        summary[key] = summary.get(key, 0) + value


def _set_cursor(granularity: str, until: datetime) -> None:
    RollupCursor.objects.update_or_create(granularity=granularity, defaults={"complete_until": until})
    _forget_cursors()


def _extend_cursor(granularity: str, start: datetime, end: datetime) -> None:
    """Move the cursor to `end` after [start, end) was rolled up, if that leaves no hole before it: the cursor
    already reached `start`, or there is nothing older to roll up."""
    current = cursors(fresh=True).get(granularity)
    if current is not None:
        if start <= current < end:
            _set_cursor(granularity, end)
    elif not Evaluation.objects.filter(created_at__lt=start).exists():
        _set_cursor(granularity, end)


def rollup_hours(since: datetime, until: datetime, *, advance_cursor: bool = False) -> dict[str, int]:
    """Recompute the hourly rows of every organization for the whole hours in [since, until), one transaction per
    ANALYTICS_ROLLUP_CHUNK_HOURS hours (moving the hour cursor along, with `advance_cursor`)."""
    summary = {"hours": 0, "evaluation_rows": 0, "latency_rows": 0, "pattern_rows": 0}
    first, last = ceil_hour(since), floor_hour(until)
    for start, end in _chunks(first, last, HOUR * max(1, settings.ANALYTICS_ROLLUP_CHUNK_HOURS)):
        with transaction.atomic():
            _lock()
            _add(summary, _write_hours(start, end))
            if advance_cursor:
                _extend_cursor(Granularity.HOUR, start, end)
        summary["hours"] += int((end - start) / HOUR)
    return summary


def rollup_days(since: datetime, until: datetime, *, advance_cursor: bool = False) -> dict[str, int]:
    """Recompute the daily rows for the whole days (TIME_ZONE) in [since, until) from the hourly rows, which must be
    complete for them; a week per transaction."""
    summary = {"days": 0, "evaluation_rows": 0, "latency_rows": 0, "pattern_rows": 0}
    for start, end in _day_chunks(ceil_day(since), floor_day(until), 7):
        with transaction.atomic():
            _lock()
            _add(summary, _write_days(start, end))
            if advance_cursor:
                _extend_cursor(Granularity.DAY, start, end)
        summary["days"] += round((end - start) / timedelta(days=1))
    return summary


def _catch_up_days(touched: tuple[datetime, datetime] | None = None) -> dict[str, int]:
    """Bring the daily rows up to the hour cursor's last whole day, and redo already-complete days whose hours
    `touched` (a rebuild) changed."""
    complete = cursors(fresh=True)
    if Granularity.HOUR not in complete:
        return {}
    end = floor_day(complete[Granularity.HOUR])
    day_cursor = complete.get(Granularity.DAY)
    summary: dict[str, int] = {}
    if touched and day_cursor:
        _add(summary, rollup_days(floor_day(touched[0]), min(ceil_day(touched[1]), day_cursor)))
    if day_cursor is None:
        oldest = EvaluationRollup.objects.filter(granularity=Granularity.HOUR).aggregate(first=Min("bucket"))["first"]
        start = floor_day(oldest) if oldest else end
        if start >= end:
            _set_cursor(Granularity.DAY, end)
            return summary
    else:
        start = day_cursor
    if start < end:
        _add(summary, rollup_days(start, end, advance_cursor=True))
    return summary


def _last_complete_hour(now: datetime | None) -> datetime:
    now = now or timezone.now()
    return floor_hour(now - timedelta(seconds=settings.ANALYTICS_ROLLUP_GRACE_S))


def _oldest_evaluation() -> datetime | None:
    return Evaluation.objects.aggregate(first=Min("created_at"))["first"]


def _summary(hours: dict[str, int], days: dict[str, int]) -> dict[str, Any]:
    complete = cursors(fresh=True)
    return {
        "hours": hours.get("hours", 0),
        "days": days.get("days", 0),
        "rows_written": {
            key: hours.get(key, 0) + days.get(key, 0) for key in ("evaluation_rows", "latency_rows", "pattern_rows")
        },
        "complete_until": {name: value.isoformat() for name, value in sorted(complete.items())},
    }


def rollup_recent(now: datetime | None = None) -> dict[str, Any]:
    """Roll up every hour from the cursor (the first run: from the oldest evaluation) to the last one that ended
    ANALYTICS_ROLLUP_GRACE_S ago, then the days they complete; the periodic job. Returns a summary."""
    end = _last_complete_hour(now)
    start = cursors(fresh=True).get(Granularity.HOUR)
    if start is None:
        oldest = _oldest_evaluation()
        start = floor_hour(oldest) if oldest else end
        if start >= end:
            _set_cursor(Granularity.HOUR, end)
    hours = rollup_hours(start, end, advance_cursor=True) if start < end else {}
    return _summary(hours, _catch_up_days())


def rebuild(
    since: datetime | None = None, until: datetime | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """Recompute the rollups of [since, until), widened to whole hours and at most to the last complete hour; by
    default everything (rows of no longer existing evaluations go too). The cursors move to `until` when that
    leaves no hole before it. Idempotent."""
    last = _last_complete_hour(now)
    first_hour = floor_hour(since) if since else None
    end = min(ceil_hour(until), last) if until else last
    if first_hour is None:
        oldest = _oldest_evaluation()
        first_hour = min(floor_hour(oldest), end) if oldest else end
        with transaction.atomic():
            _lock()
            for model in (EvaluationRollup, LatencyRollup, PatternRollup):
                model.objects.filter(bucket__lt=first_hour).delete()
            RollupCursor.objects.all().delete()
            _forget_cursors()
            _set_cursor(Granularity.HOUR, first_hour)
        if first_hour >= end:  # nothing stored yet: complete as it is
            _set_cursor(Granularity.HOUR, end)
            return _summary({}, _catch_up_days())
    if first_hour >= end:
        raise ValueError(f"Nothing to rebuild between {first_hour.isoformat()} and {end.isoformat()}.")
    hours = rollup_hours(first_hour, end, advance_cursor=True)
    return _summary(hours, _catch_up_days(touched=(first_hour, end)))
