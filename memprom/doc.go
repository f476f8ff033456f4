// Package memprom evaluates PromQL offline: an in-memory series store and
// Prometheus' own PromQL engine over it, for `nemesis rules test` (a test
// file's input_series) and `nemesis rules backtest --series FILE`.
//
// The engine is the real one, package promql of
// github.com/prometheus/prometheus, so a rule set's queries mean offline
// what they mean against a server. Only promql, its parser, storage and
// model are imported: not promql/promqltest, rules or tsdb, which pull the
// service-discovery SDKs into the binary (internal/buildcheck checks the
// import graph).
//
// # Series
//
// [Storage] holds float series. [Storage.AddSeries] reads promtool's
// input_series notation (`0+10x5 4x3 _ stale`) with Prometheus' parser
// (ParseSeriesDesc) and places the i-th value at start + i×interval, as
// `promtool test rules` does with start at the Unix epoch ([Epoch]): `_`
// is no sample and `stale` a staleness marker. [Storage.Add] takes samples
// directly, for series read from elsewhere.
//
// # Queries
//
// [Engine.Query] answers an instant query as a metrics.Result, the shape a
// real Prometheus' answer takes in package metrics, and
// [Engine.QueryRange] a range query as []metrics.Series. The engine looks
// back 5 minutes for a sample and has Prometheus' default features (the @
// modifier, negative offsets), no experimental ones. [ParseLabels],
// [Samples] and [EqualSamples] compare a promql_expr_test's exp_samples
// with an answer as promtool does.
//
// # Differences from promtool 2.42
//
// The engine is Prometheus v3 (module v0.314.0, Prometheus 3.14); Debian's
// promtool is 2.42. For the same input series, memprom's answers equal
// promtool's bit for bit at eval times that fall between samples, for
// rate, increase, irate, delta, deriv, predict_linear, the *_over_time
// functions but avg_over_time, histogram_quantile over classic buckets,
// absent, `or vector(0)`, offset, staleness markers, series that just stop
// (5m lookback), `_` gaps and time() (the test TestAgainstPromtool runs
// promtool to show it). The differences found, each shown by
// TestPromtoolCanFail making promtool fail where memprom answers:
//
//   - Range selectors are left-open since 3.0: at eval time t, [5m] takes
//     the samples in (t-5m, t], 2.42 those in [t-5m, t]. At an eval time
//     on a sample's timestamp a range may hold one sample less.
//   - The lookback delta is left-open too: a sample exactly 5m old no
//     longer counts, so a series that stopped is gone 5m after its last
//     sample, where 2.42 still shows it at that instant.
//   - Subqueries evaluate their inner expression at multiples of their
//     step, so with a step equal to the series' interval the inner range
//     selectors fall on sample timestamps and the two points above apply
//     even when the outer eval time lies between samples.
//   - sum and avg (since 2.54 and 2.55) and avg_over_time (2.55) use Kahan
//     summation, and avg and avg_over_time divide the sum once (since
//     3.5) instead of keeping an incremental mean: answers can differ from
//     2.42's in the last bits (20.8 against 20.799999999999997). promtool
//     2.42 compares values exactly; promtool 3.5 and later offers
//     fuzzy_compare (one float step), which [EqualSamples] supports.
//   - holt_winters is gone (3.0): it is double_exponential_smoothing behind
//     the experimental-functions flag, which memprom does not enable.
//
// Where memprom itself departs from promtool, on purpose:
//
//   - Two input series with the same labels are merged (as [Storage.Add]
//     does for chunks of one series; two different values at one time are
//     an error); promtool silently keeps only the last definition.
//   - Native histogram values (`{{…}}`) are refused: rules read floats.
//   - A query may hold 50,000,000 samples (Prometheus' default), not
//     promtool's 10,000, so that a week-long backtest fits.
//   - [EqualSamples] takes NaN to equal NaN; promtool never matches an
//     expected NaN.
//   - topk and bottomk between equal values keep the series first in
//     label order; promtool's pick depends on the order its series were
//     created in, which is random from run to run, so a test should not
//     rely on it.
//   - A values string may expand to at most [MaxSeriesSamples] samples.
//
// From Prometheus' changelog, not exercised here: since 3.0 the regex `.`
// matches a newline in label matchers.
package memprom
