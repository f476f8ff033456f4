// Package backtest replays rule sets over past data, as `nemesis rules
// backtest` does: what each rule set would have answered at every step of a
// window, and what KEDA and the HPA would have run on those answers.
//
// The data come from range queries (one per distinct rendered query over
// the whole window, which metrics.Client splits into requests of at most
// 11,000 points) against Prometheus, or against package memprom's engine
// over a rules-test file's input_series. Each step then goes through the
// scaler's own decision path, not a copy of it: rules.RuleSet's Render,
// EvaluateWith and Decide, and Outcome.Active with the queued override, so
// that the scaler, rules eval, rules test and rules backtest agree for the
// same inputs. The answers feed package hpasim, the pure simulation of the
// KEDA operator and the HPA controller; the built-ins current and ready
// are that simulation's replicas and ready pods, one simulation per rule
// set.
//
// Every check of the input (the window, the queries' answers) happens
// before the first step, so a run either fails with an *InputError or
// produces a whole result; nothing is written before that.
package backtest
